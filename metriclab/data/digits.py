"""The built-in default data set: scikit-learn's bundled handwritten digits (no download)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from metriclab.data.images import LabeledImages
from metriclab.data.preprocess import Preprocess
from metriclab.data.registry import DATA_SETS, DataSetSpec, LoadRequest


def digits(size: int = 16) -> LabeledImages:
    """The 1,797 8×8 digits of scikit-learn (UCI optdigits), 10 classes, as uint8 ``(N, 1, size, size)``.

    The 17 grey levels (0–16) are scaled to 0–255. ``size`` > 8 upsamples bilinearly so that
    four 2×2 poolings (Conv-4) still leave a spatial map. Item ids are ``"digits:<index>"``.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 (the native resolution), got {size}")
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) * (255.0 / 16.0)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    return LabeledImages(
        images=images,
        labels=labels,
        class_names=tuple(str(c) for c in range(10)),
        item_ids=tuple(f"digits:{i}" for i in range(len(labels))),
        description=f"digits(size={size})",
        # Ink is already the high value (0 = background), so nothing is inverted.
        preprocess=Preprocess(size=size, channels=1, invert=False),
    )


def _load(request: LoadRequest) -> LabeledImages:
    return digits(size=16 if request.size is None else request.size)


DATA_SETS.register(
    "digits",
    DataSetSpec(
        loader=_load,
        paths="none",
        size=16,
        channels=1,
        invert=False,
        help="scikit-learn's bundled 8×8 handwritten digits, 10 classes, no download",
    ),
)
