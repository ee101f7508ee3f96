import math
import re

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision.transforms import InterpolationMode

from metriclab.data import (
    AUGMENTATIONS,
    KochAffine,
    LabeledImages,
    affine_matrices,
    mirrors_as_classes,
    rotations_as_classes,
    tta_views,
    warp,
)
from metriclab.data.augment import (
    TTA_VIEWS,
    AffineFlip,
    affine_flip_views,
    build_augmentation,
    flip_views,
)


def grouped(
    num_classes: int = 3, per_class: int = 4, height: int = 6, width: int = 6
) -> LabeledImages:
    generator = torch.Generator().manual_seed(0)
    n = num_classes * per_class
    return LabeledImages(
        images=torch.randint(0, 256, (n, 1, height, width), dtype=torch.uint8, generator=generator),
        labels=torch.arange(num_classes).repeat_interleave(per_class),
        class_names=tuple(f"A{c % 2}/character{c:02d}" for c in range(num_classes)),
        item_ids=tuple(f"item{i}.png" for i in range(n)),
        groups=torch.arange(num_classes) % 2,
        group_names=("A0", "A1"),
        description="grouped",
    )


PIL_TURNS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


def test_every_rotated_class_holds_its_sources_turned_by_its_own_angle() -> None:
    """learn2learn's late binding gave every class the last angle; here each class keeps its own."""
    data = grouped()
    angles = (90, 180, 270)
    rotated = rotations_as_classes(data, angles)
    assert rotated.num_classes == 4 * data.num_classes
    assert len(rotated) == 4 * len(data)
    source_of = {item: i for i, item in enumerate(data.item_ids)}
    for position, item in enumerate(rotated.item_ids):
        name = rotated.class_names[int(rotated.labels[position])]
        source_id, _, suffix = item.partition("@rot")
        source = source_of[source_id]
        assert name.partition("@rot")[0] == data.class_names[int(data.labels[source])]
        assert name.partition("@rot")[2] == suffix
        picture = Image.fromarray(data.images[source, 0].numpy())
        if suffix:  # PIL's ROTATE_n turns counter-clockwise, the documented direction.
            picture = picture.transpose(PIL_TURNS[int(suffix)])
        assert np.array_equal(rotated.images[position, 0].numpy(), np.asarray(picture)), item
        label = int(rotated.labels[position])
        assert rotated.groups[label] == data.groups[int(data.labels[source])]


def test_rotation_classes_are_numbered_by_angle_block() -> None:
    data = grouped()
    rotated = rotations_as_classes(data, (180,))
    assert rotated.class_names[data.num_classes + 1] == f"{data.class_names[1]}@rot180"
    assert rotated.item_ids[len(data) + 2] == f"{data.item_ids[2]}@rot180"
    assert torch.equal(rotated.labels[len(data) :], data.labels + data.num_classes)


def test_rotation_angles_are_checked() -> None:
    with pytest.raises(ValueError, match="angles must be distinct values among"):
        rotations_as_classes(grouped(), (45,))
    with pytest.raises(ValueError, match="angles must be distinct"):
        rotations_as_classes(grouped(), (90, 90))
    with pytest.raises(ValueError, match="needs square images, got 6×4"):
        rotations_as_classes(grouped(width=4), (90,))
    assert len(rotations_as_classes(grouped(width=4), (180,))) == 24


def test_every_mirror_class_holds_its_sources_flipped_left_to_right() -> None:
    data = grouped()
    mirrored = mirrors_as_classes(data)
    assert mirrored.num_classes == 2 * data.num_classes
    assert mirrored.class_names[: data.num_classes] == data.class_names
    assert torch.equal(mirrored.images[: len(data)], data.images)
    for position in range(len(data)):
        copy = len(data) + position
        assert mirrored.item_ids[copy] == f"{data.item_ids[position]}@mirror"
        source, label = int(data.labels[position]), int(mirrored.labels[copy])
        assert label == source + data.num_classes
        assert mirrored.class_names[label] == f"{data.class_names[source]}@mirror"
        assert mirrored.groups[label] == data.groups[source]
        picture = Image.fromarray(data.images[position, 0].numpy())
        flipped = np.asarray(picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        assert np.array_equal(mirrored.images[copy, 0].numpy(), flipped), data.item_ids[position]


def test_mirrors_after_rotations_give_the_eight_symmetries_of_the_square() -> None:
    data = grouped()
    classes = mirrors_as_classes(rotations_as_classes(data, (90, 180, 270)))
    assert classes.num_classes == 8 * data.num_classes
    # Each source image appears once under each symmetry, and no two symmetries coincide for an
    # image without symmetry of its own (random pixels).
    copies = classes.images.view(8, len(data), -1)
    for i in range(8):
        for j in range(i + 1, 8):
            assert not torch.equal(copies[i], copies[j]), (i, j)
    assert torch.equal(copies[6].view_as(data.images), torch.flip(data.images, dims=(2,)))


def reference_matrix(params: np.ndarray) -> np.ndarray:
    """Koch's T = (θ, ρx, ρy, sx, sy, tx, ty) written out by hand, rotation counter-clockwise."""
    angle, rho_x, rho_y, s_x, s_y, t_x, t_y = params
    a = math.radians(angle)
    rotation = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    linear = rotation @ np.array([[1.0, rho_x], [rho_y, 1.0]]) @ np.diag([s_x, s_y])
    return np.hstack([linear, [[t_x], [t_y]]])


def reference_warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Inverse mapping with hand-written bilinear interpolation, one output pixel at a time."""
    _, height, width = image.shape
    inverse = np.linalg.inv(matrix[:, :2])
    out = np.zeros_like(image)
    for i in range(height):
        for j in range(width):
            centred = np.array([j + 0.5 - width / 2, i + 0.5 - height / 2]) - matrix[:, 2]
            x, y = inverse @ centred + np.array([width / 2 - 0.5, height / 2 - 0.5])
            x0, y0 = math.floor(x), math.floor(y)
            for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
                weight = (1 - abs(x - xx)) * (1 - abs(y - yy))
                if 0 <= yy < height and 0 <= xx < width:
                    out[:, i, j] += weight * image[:, yy, xx]
    return out


def test_matrices_follow_the_written_formula() -> None:
    params = KochAffine(p=1.0).sample(16, torch.Generator().manual_seed(3))
    ours = affine_matrices(params).numpy()
    for row, matrix in zip(params.numpy(), ours, strict=True):
        np.testing.assert_allclose(matrix, reference_matrix(row), atol=1e-12)


def test_warp_matches_a_naive_loop() -> None:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand((6, 2, 9, 7), generator=generator, dtype=torch.float64)
    params = KochAffine(rotation=30, shear=0.3, translate=2.5, p=1.0).sample(6, generator)
    warped = warp(images, affine_matrices(params))
    for index in range(6):
        expected = reference_warp(images[index].numpy(), reference_matrix(params[index].numpy()))
        np.testing.assert_allclose(warped[index].numpy(), expected, atol=1e-9)


def test_warp_matches_torchvision_for_rotation_scale_translation() -> None:
    """torchvision's affine takes the angle clockwise (its docs), ours counter-clockwise."""
    images = torch.rand((1, 1, 11, 13), generator=torch.Generator().manual_seed(2))
    for angle, scale, tx, ty in ((7.0, 1.0, 0.0, 0.0), (-9.0, 1.13, 1.5, -0.5), (0, 0.8, 2, 2)):
        params = torch.tensor([[angle, 0, 0, scale, scale, tx, ty]], dtype=torch.float64)
        ours = warp(images, affine_matrices(params))
        theirs = TF.affine(
            images, -angle, [tx, ty], scale, [0.0, 0.0], interpolation=InterpolationMode.BILINEAR
        )
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_quarter_turn_equals_rot90() -> None:
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    params = torch.tensor([[90.0, 0, 0, 1, 1, 0, 0]], dtype=torch.float64).repeat(3, 1)
    assert torch.equal(warp(images, affine_matrices(params)), torch.rot90(images, 1, (2, 3)))


@settings(max_examples=40, deadline=None)
@given(st.integers(-3, 3), st.integers(-3, 3), st.integers(0, 2**31 - 1))
def test_integer_translation_is_an_exact_shift(tx: int, ty: int, seed: int) -> None:
    image = torch.randint(
        0, 256, (1, 1, 7, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )
    params = torch.tensor([[0.0, 0, 0, 1, 1, tx, ty]], dtype=torch.float64)
    shifted = torch.zeros_like(image)
    shifted[..., max(ty, 0) : 7 + min(ty, 0), max(tx, 0) : 9 + min(tx, 0)] = image[
        ..., max(-ty, 0) : 7 - max(ty, 0), max(-tx, 0) : 9 - max(tx, 0)
    ]
    assert torch.equal(warp(image, affine_matrices(params)), shifted)


def test_no_component_included_is_the_identity() -> None:
    images = torch.randint(0, 256, (5, 1, 12, 12), dtype=torch.uint8)
    assert torch.equal(KochAffine(p=0.0)(images, torch.Generator().manual_seed(0)), images)


def test_sampled_parameters_follow_koch() -> None:
    params = KochAffine().sample(20000, torch.Generator().manual_seed(0))
    identity = torch.tensor([0.0, 0, 0, 1, 1, 0, 0], dtype=torch.float64)
    included = (params != identity).double().mean(0)
    # Each of the seven components independently with probability 0.5: 4.5 standard errors.
    assert torch.all((included - 0.5).abs() < 4.5 * math.sqrt(0.25 / 20000))
    bounds = [(-10, 10), (-0.3, 0.3), (-0.3, 0.3), (0.8, 1.2), (0.8, 1.2), (-2, 2), (-2, 2)]
    for column, (low, high) in enumerate(bounds):
        assert low <= float(params[:, column].min()) and float(params[:, column].max()) <= high
    assert float(params[:, 0].abs().max()) > 9.9  # uniform over the whole range


def test_seeded_per_sample_and_dtype_preserving() -> None:
    augment = KochAffine()
    images = torch.randint(0, 256, (1, 1, 16, 16), dtype=torch.uint8).repeat(8, 1, 1, 1)
    first = augment(images, torch.Generator().manual_seed(5))
    again = augment(images, torch.Generator().manual_seed(5))
    other = augment(images, torch.Generator().manual_seed(6))
    assert first.dtype == torch.uint8 and torch.equal(first, again)
    assert not torch.equal(first, other)
    assert len({tuple(row.flatten().tolist()) for row in first}) > 1  # per sample, not per batch
    floats = augment(images.float() / 255, torch.Generator().manual_seed(5))
    assert floats.dtype == torch.float32
    assert (floats * 255 - first.float()).abs().max() <= 0.5 + 1e-3


def test_bad_augmentation_settings() -> None:
    with pytest.raises(ValueError, match="p must lie in"):
        KochAffine(p=1.5)
    with pytest.raises(ValueError, match="scale must be"):
        KochAffine(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="rotation must be"):
        KochAffine(rotation=-1)
    with pytest.raises(ValueError, match=r"expected images \(B, C, H, W\)"):
        KochAffine()(torch.zeros(3, 8, 8), torch.Generator())


def test_tta_views_are_identity_shifts_rotations_and_scalings() -> None:
    views = tta_views(28)
    assert views.shape == (9, 2, 3)
    torch.testing.assert_close(
        views[0], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=views.dtype)
    )
    # 1/28 of a 28-pixel image is one pixel: the four shifts are exact one-pixel moves.
    image = torch.randint(0, 256, (1, 1, 28, 28), dtype=torch.uint8)
    right = torch.zeros_like(image)
    right[..., 1:] = image[..., :-1]
    assert torch.equal(warp(image, views[1:2]), right)
    assert sorted(views[1:5, :, 2].abs().sum(1).tolist()) == [1.0] * 4
    # Rotations are pure rotations (orthonormal, det 1) by ±7°; scalings are (1 ± 0.1)·I.
    for view, angle in ((views[5], 7.0), (views[6], -7.0)):
        linear = view[:, :2]
        torch.testing.assert_close(linear @ linear.T, torch.eye(2, dtype=linear.dtype))
        assert math.degrees(math.atan2(linear[0, 1], linear[0, 0])) == pytest.approx(angle)
    torch.testing.assert_close(views[7, :, :2], 1.1 * torch.eye(2, dtype=views.dtype))
    torch.testing.assert_close(views[8, :, :2], 0.9 * torch.eye(2, dtype=views.dtype))


@pytest.mark.parametrize(("height", "width"), [(7, 7), (12, 9)])
def test_flip_views_are_the_image_and_its_exact_mirror(height: int, width: int) -> None:
    images = torch.randint(0, 256, (3, 2, height, width), dtype=torch.uint8)
    views = flip_views(height)
    assert views.shape == (2, 2, 3)
    assert torch.equal(warp(images, views[0].expand(3, 2, 3)), images)
    assert torch.equal(warp(images, views[1].expand(3, 2, 3)), torch.flip(images, dims=(3,)))


def test_affine_flip_views_mirror_each_affine_view_after_it() -> None:
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8).float()
    views = affine_flip_views(28)
    assert views.shape == (18, 2, 3)
    torch.testing.assert_close(views[:9], tta_views(28))
    for k in range(9):
        warped = warp(images, tta_views(28)[k].expand(2, 2, 3))
        mirrored = warp(images, views[9 + k].expand(2, 2, 3))
        # Away from the border, where zero padding enters differently, mirror∘view = flip(view).
        torch.testing.assert_close(
            mirrored[..., 4:-4, 4:-4], torch.flip(warped, dims=(3,))[..., 4:-4, 4:-4]
        )


def test_affine_flip_mirrors_the_koch_distortion_of_each_chosen_image() -> None:
    images = torch.rand(6, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    seeded = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    # With every image mirrored, the output is the mirror of the same Koch distortion (same draws).
    mirrored = AffineFlip(flip=1.0)(images, seeded())
    torch.testing.assert_close(mirrored, torch.flip(KochAffine()(images, seeded()), dims=(3,)))
    assert torch.equal(AffineFlip(flip=0.0)(images, seeded()), KochAffine()(images, seeded()))
    # No distortion: each image is either itself or its exact mirror, about half of them mirrored.
    many = torch.rand(400, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    out = AffineFlip(KochAffine(p=0.0))(many, seeded())
    same = (out - many).abs().amax(dim=(1, 2, 3)) < 1e-5
    flipped = (out - torch.flip(many, dims=(3,))).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert bool((same | flipped).all()) and 150 < int(flipped.sum()) < 250
    with pytest.raises(ValueError, match=r"flip must lie in \[0, 1\]"):
        AffineFlip(flip=1.5)


def test_every_tta_view_set_starts_with_the_identity() -> None:
    for name in TTA_VIEWS.names():
        views = TTA_VIEWS.get(name)(16)
        assert views.ndim == 3 and views.shape[1:] == (2, 3)
        torch.testing.assert_close(
            views[0], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=views.dtype)
        )
    with pytest.raises(ValueError, match="size must be at least 1"):
        flip_views(0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size must be at least 1"),
        ({"size": 28, "shift": 0.5}, "shift must lie in [0, 0.5)"),
        ({"size": 28, "rotation": float("nan")}, "rotation must lie in [0, 90)"),
        ({"size": 28, "scale": -0.1}, "scale must lie in [0, 1)"),
    ],
)
def test_bad_tta_views(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        tta_views(**kwargs)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_every_registered_augmentation_applies(name: str) -> None:
    images = torch.randint(0, 256, (4, 1, 12, 12), dtype=torch.uint8)
    augment = AUGMENTATIONS.get(name)()
    if augment is None:  # "none": no step at all, so no random numbers are drawn
        assert name == "none"
        return
    out = augment(images, torch.Generator().manual_seed(0))
    again = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, again)
    assert not torch.equal(out, images)


def test_augmentation_names_come_from_the_registry() -> None:
    assert AUGMENTATIONS.key == "data.augment"
    assert isinstance(build_augmentation("affine"), KochAffine)
    assert build_augmentation("none") is None
    with pytest.raises(ValueError, match="unknown augmentation 'afine' for data.augment"):
        build_augmentation("afine")
