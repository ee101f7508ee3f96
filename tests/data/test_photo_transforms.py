"""Photo augmentations: seeded, shape- and dtype-preserving, and each part does what it says."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.config import resolve_config
from metriclab.data import AUGMENTATIONS, PhotoAugment
from metriclab.data.augment import build_augmentation


def _batch(seed: int, channels: int = 3, n: int = 6, size: int = 20) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)


@settings(max_examples=20, deadline=None)
@given(
    st.integers(0, 2**31),
    st.sampled_from([1, 3]),
    st.sampled_from(["photo", "crop_flip", "flip"]),
    st.sampled_from([0.0, 0.5]),
)
def test_seeded_uint8_same_shape(seed: int, channels: int, name: str, erase: float) -> None:
    augment = build_augmentation(name, {"erase": erase})
    images = _batch(seed % 1000, channels)
    a = augment(images, torch.Generator().manual_seed(seed))
    b = augment(images, torch.Generator().manual_seed(seed))
    assert a.dtype == torch.uint8 and a.shape == images.shape
    assert torch.equal(a, b)


def test_the_global_random_stream_is_left_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    PhotoAugment()(_batch(0), torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3), expected)


def test_flip_gives_each_image_or_its_mirror_and_draws_per_image() -> None:
    images = _batch(1, n=64)
    out = PhotoAugment(crop=None, jitter=0.0)(images, torch.Generator().manual_seed(0))
    same = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54  # p = 0.5 per image, not one coin for the batch


def test_full_area_square_crop_without_flip_or_jitter_is_the_identity() -> None:
    images = _batch(2)
    augment = PhotoAugment(crop=(1.0, 1.0), flip=0.0, jitter=0.0)
    # Area 1 at aspect within [3/4, 4/3] of a square image can only be the whole image.
    assert torch.equal(augment(images, torch.Generator().manual_seed(0)), images)


def test_erasing_fills_one_rectangle_of_the_papers_size_with_random_values() -> None:
    images = torch.full((40, 1, 30, 30), 128, dtype=torch.uint8)
    out = PhotoAugment(crop=None, flip=0.0, jitter=0.0, erase=1.0)(
        images, torch.Generator().manual_seed(0)
    )
    shares = []
    for image in out[:, 0]:
        rows, cols = torch.nonzero(image != 128, as_tuple=True)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        box = torch.zeros_like(image, dtype=torch.bool)
        box[top:bottom, left:right] = True
        assert torch.all(image[~box] == 128)  # nothing outside the rectangle moves
        assert image[box].float().std() > 40  # random values, not one fill colour
        shares.append(float(box.float().mean()))
    # Zhong et al.'s 2–40 % of the area (a little above 0.4 from rounding the sides to pixels).
    assert min(shares) >= 0.02 and max(shares) <= 0.45
    assert max(shares) - min(shares) > 0.1  # the size is drawn per image


def test_erasing_probability_is_per_image_and_zero_leaves_the_stream_as_before() -> None:
    images = torch.full((64, 1, 16, 16), 128, dtype=torch.uint8)
    out = PhotoAugment(crop=None, flip=0.0, jitter=0.0, erase=0.5)(
        images, torch.Generator().manual_seed(3)
    )
    erased = int((out != 128).flatten(1).any(1).sum())
    assert 16 < erased < 48
    batch = _batch(4, n=16)
    before = PhotoAugment(crop=None, jitter=0.0)(batch, torch.Generator().manual_seed(7))
    assert torch.equal(build_augmentation("flip")(batch, torch.Generator().manual_seed(7)), before)
    off = build_augmentation("flip", {"erase": 0.0})(batch, torch.Generator().manual_seed(7))
    assert torch.equal(off, before)


def test_registered_and_named_by_the_config() -> None:
    assert {"photo", "crop_flip", "flip"} <= set(AUGMENTATIONS)
    assert resolve_config("digits-siamese", ["data.augment=photo"]).data.augment == "photo"


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="crop must be an area range"):
        PhotoAugment(crop=(0.0, 1.0))
    with pytest.raises(
        ValueError, match=r"erase is a probability and must lie in \[0, 1\], got 1.5"
    ):
        build_augmentation("flip", {"erase": 1.5})
    with pytest.raises(ValueError, match="data.augment=flip does not take; it takes erase"):
        build_augmentation("flip", {"jitter": 0.2})
