"""Per-image training augmentations for photos, built from ``torchvision.transforms.v2``.

Registered in :data:`~metriclab.data.augment.AUGMENTATIONS` (``data.augment``) beside Koch's
batched affine for characters:

- ``photo``: random resized crop (area 35–100 %, aspect 3/4–4/3, back to the decoded size),
  horizontal flip, colour jitter (brightness, contrast, saturation ±0.4): the standard recipe of
  metric learning on photos (e.g. Musgrave et al. 2020, "A Metric Learning Reality Check", and
  the ImageNet recipe of Szegedy et al. 2015 that it follows).
- ``crop_flip``: the same crop and flip without colour jitter (for greyscale or colour-true sets).
- ``flip``: horizontal flip only.

Each of them takes ``erase``, the probability of random erasing (Zhong et al. 2020, "Random
Erasing Data Augmentation", AAAI; their setting: probability 0.5, a rectangle of 2–40 % of the
image at aspect 0.3–3.3 filled with random values), which occludes a part of the image so the
model cannot lean on any one region (``data.augment_params={erase: 0.5}``; default 0, off).

Each image gets its own draw. torchvision's random transforms read the global torch generator,
so the batch's seed (from the objective's per-step generator) is set inside a forked RNG state:
a seed gives the same augmented batch in memory or on disk, in one process or on every rank, and
the rest of the program's random stream is untouched. Evaluation uses no augmentation: images are
decoded and resized to ``data.size`` as in training.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from metriclab.data.augment import AUGMENTATIONS

#: Random erasing's rectangle: its share of the image area and its aspect ratio (Zhong et al.).
ERASED_AREA = (0.02, 0.4)
ERASED_ASPECT = (0.3, 3.3)


class PhotoAugment:
    """uint8 ``(B, C, H, W)`` and a generator → uint8 ``(B, C, H, W)``, each image augmented.

    Args:
        crop: random resized crop back to ``H × W`` with this range of kept area (``None``: off).
        flip: probability of a horizontal flip.
        jitter: brightness, contrast and saturation jitter strength (0: off); saturation only
            touches 3-channel images.
        erase: probability of random erasing, applied last (0: off; module docstring).
    """

    def __init__(
        self,
        crop: tuple[float, float] | None = (0.35, 1.0),
        flip: float = 0.5,
        jitter: float = 0.4,
        erase: float = 0.0,
    ) -> None:
        if crop is not None and not 0.0 < crop[0] <= crop[1] <= 1.0:
            raise ValueError(f"crop must be an area range within (0, 1], got {crop}")
        if not 0.0 <= flip <= 1.0 or jitter < 0:
            raise ValueError(f"flip must lie in [0, 1] and jitter be ≥ 0, got {flip}, {jitter}")
        if not 0.0 <= erase <= 1.0:
            raise ValueError(f"erase is a probability and must lie in [0, 1], got {erase}")
        self.crop, self.flip, self.jitter, self.erase = crop, flip, jitter, erase

    def _pipeline(self, height: int, width: int, channels: int) -> v2.Compose:
        steps: list[torch.nn.Module] = []
        if self.crop is not None:
            steps.append(
                v2.RandomResizedCrop(
                    (height, width), scale=self.crop, ratio=(3 / 4, 4 / 3), antialias=True
                )
            )
        if self.flip:
            steps.append(v2.RandomHorizontalFlip(self.flip))
        if self.jitter:
            saturation = self.jitter if channels == 3 else 0.0
            steps.append(v2.ColorJitter(self.jitter, self.jitter, saturation))
        if self.erase:
            # value="random": each erased pixel gets its own random value, as in the paper.
            erasing = v2.RandomErasing(self.erase, ERASED_AREA, ERASED_ASPECT, value="random")
            steps.append(erasing)
        return v2.Compose(steps)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"expected a uint8 (B, C, H, W) batch, got {images.dtype} {tuple(images.shape)}"
            )
        pipeline = self._pipeline(images.shape[2], images.shape[3], images.shape[1])
        seed = int(torch.randint(2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.stack([pipeline(image) for image in images])


def crop_flip(erase: float = 0.0) -> PhotoAugment:
    """``photo`` without colour jitter."""
    return PhotoAugment(jitter=0.0, erase=erase)


def flip_only(erase: float = 0.0) -> PhotoAugment:
    """A horizontal flip with probability 1/2 (and random erasing when ``erase`` > 0)."""
    return PhotoAugment(crop=None, jitter=0.0, erase=erase)


AUGMENTATIONS.register("photo", PhotoAugment)
AUGMENTATIONS.register("crop_flip", crop_flip)
AUGMENTATIONS.register("flip", flip_only)
