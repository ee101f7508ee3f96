"""Class augmentation (rotated and mirrored copies as new classes) and seeded, batched random affine
distortion."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from metriclab.data.images import LabeledImages
from metriclab.registry import Registry

RIGHT_ANGLES = (90, 180, 270)


def rotations_as_classes(
    data: LabeledImages, angles: Sequence[int] = RIGHT_ANGLES
) -> LabeledImages:
    """The original classes plus, for each angle, every class rotated by that angle as a new class.

    Santoro et al. 2016 and Vinyals et al. 2016 grow Omniglot's 1,623 characters fourfold this
    way. Rotations are exact (``torch.rot90``), counter-clockwise as displayed. The class for
    source class ``c`` and the ``k``-th angle (k = 1, 2, …) is ``c + k · C``, named
    ``"<name>@rot<angle>"``; item ids get the same suffix and each new class keeps the group of its
    source. Apply it to the training split only, after splitting: a rotated copy of a test class
    in training would leak that class.
    """
    angles = tuple(int(a) for a in angles)
    if not angles or len(set(angles)) != len(angles) or not set(angles) <= set(RIGHT_ANGLES):
        raise ValueError(f"angles must be distinct values among {RIGHT_ANGLES}, got {angles}")
    height, width = data.images.shape[2:]
    if height != width and any(a % 180 for a in angles):
        raise ValueError(
            f"rotating by 90 or 270 degrees needs square images, got {height}×{width}; load the "
            f"data with a size"
        )
    copies = [
        (f"@rot{angle}", torch.rot90(data.images, angle // 90, dims=(2, 3))) for angle in angles
    ]
    return _copies_as_classes(data, copies, f"rotations {angles}")


def mirrors_as_classes(data: LabeledImages) -> LabeledImages:
    """The original classes plus every class mirrored left to right as a new class.

    The same idea as :func:`rotations_as_classes`: a mirrored character is, in general, another
    character (think of b and d), so mirroring doubles the training classes. After rotations by
    90, 180 and 270 degrees it completes the eight symmetries of the square. The class for source
    class ``c`` is ``c + C``, named ``"<name>@mirror"``; item ids get the same suffix and each new
    class keeps the group of its source. A left-right symmetric character's mirror class repeats
    it, as the 180-degree class of a point-symmetric one does. Apply it to the training split
    only, after splitting, for the reason :func:`rotations_as_classes` gives.
    """
    return _copies_as_classes(
        data, [("@mirror", torch.flip(data.images, dims=(3,)))], "mirror images"
    )


def _copies_as_classes(
    data: LabeledImages, copies: Sequence[tuple[str, torch.Tensor]], what: str
) -> LabeledImages:
    """``data`` plus each ``(suffix, images)`` copy as new classes, in blocks of C classes.

    Copy k's (k = 1, 2, …) class for source class ``c`` is ``c + k · C``, named
    ``"<name><suffix>"``; item ids get the suffix and each new class keeps its source's group.
    """
    return LabeledImages(
        images=torch.cat([data.images, *(images for _, images in copies)]),
        labels=torch.cat(
            [data.labels, *(data.labels + k * data.num_classes for k in range(1, len(copies) + 1))]
        ),
        class_names=data.class_names
        + tuple(f"{name}{suffix}" for suffix, _ in copies for name in data.class_names),
        item_ids=data.item_ids
        + tuple(f"{item}{suffix}" for suffix, _ in copies for item in data.item_ids),
        groups=None if data.groups is None else data.groups.repeat(len(copies) + 1),
        group_names=data.group_names,
        description=f"{data.description} + {what}",
        preprocess=data.preprocess,
    )


def affine_matrices(params: torch.Tensor) -> torch.Tensor:
    """Forward maps ``(B, 2, 3)`` in pixel units about the image centre from ``(B, 7)`` parameters.

    Columns of ``params``: θ (degrees), ρx, ρy, sx, sy, tx, ty (pixels). The linear part is
    ``R(θ) · [[1, ρx], [ρy, 1]] · diag(sx, sy)`` in image coordinates (x right, y down), where
    positive θ turns counter-clockwise as displayed; then the image moves by ``(tx, ty)``.
    """
    theta = torch.deg2rad(params[:, 0])
    cos, sin = torch.cos(theta), torch.sin(theta)
    rotate = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    one = torch.ones_like(theta)
    shear = torch.stack(
        [torch.stack([one, params[:, 1]], -1), torch.stack([params[:, 2], one], -1)], -2
    )
    linear = rotate @ shear @ torch.diag_embed(params[:, 3:5])
    return torch.cat([linear, params[:, 5:7, None]], dim=2)


def warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply one forward affine map per image with a single batched ``grid_sample`` call.

    ``images`` ``(B, C, H, W)`` uint8 or float; ``matrices`` ``(B, 2, 3)`` from
    :func:`affine_matrices`. Bilinear sampling; pixels that come from outside the image are 0
    (background of white-on-black images). The result has the dtype of ``images`` (uint8 is
    rounded).
    """
    batch, _, height, width = images.shape
    matrices = matrices.to(torch.float64)
    inverse = torch.linalg.inv(matrices[:, :, :2])
    # grid_sample works in normalised coordinates: pixel offset from the centre u = D · x_norm.
    half = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
    linear = inverse * half[None, None, :] / half[None, :, None]
    shift = -(inverse @ matrices[:, :, 2:]).squeeze(2) / half
    theta = torch.cat([linear, shift[:, :, None]], dim=2)
    source = images.to(torch.float32) if images.dtype == torch.uint8 else images
    grid = F.affine_grid(
        theta.to(source.dtype).to(images.device), [batch, 1, height, width], align_corners=False
    )
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if images.dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out


def tta_views(
    size: int, shift: float = 1 / 28, rotation: float = 7.0, scale: float = 0.1
) -> torch.Tensor:
    """Nine fixed affine maps ``(9, 2, 3)`` for test-time augmentation of ``size``-pixel images.

    The identity, shifts by ``shift · size`` pixels left, right, up and down, rotations by
    ``±rotation`` degrees and isotropic scalings by ``1 ± scale``: the small distortions under
    which a handwritten character keeps its identity (Koch et al. 2015, §4.3 train with larger
    ones). Averaging a network's embeddings over these views (:func:`metriclab.evaluation.embed`
    with ``views=``) smooths out the network's sensitivity to where and how large a stroke is.
    The maps are in :func:`affine_matrices`' convention, ready for :func:`warp`.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1 pixel, got {size}")
    limits = {"shift": (shift, 0.5), "rotation": (rotation, 90.0), "scale": (scale, 1.0)}
    for name, (value, bound) in limits.items():
        if not (math.isfinite(value) and 0 <= value < bound):
            raise ValueError(f"{name} must lie in [0, {bound:g}), got {value}")
    pixels = shift * size
    identity = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    params = [identity]
    for dx, dy in ((pixels, 0.0), (-pixels, 0.0), (0.0, pixels), (0.0, -pixels)):
        params.append([0.0, 0.0, 0.0, 1.0, 1.0, dx, dy])
    for angle in (rotation, -rotation):
        params.append([angle, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    for factor in (1.0 + scale, 1.0 - scale):
        params.append([0.0, 0.0, 0.0, factor, factor, 0.0, 0.0])
    return affine_matrices(torch.tensor(params, dtype=torch.float64))


def flip_views(size: int) -> torch.Tensor:
    """Two fixed affine maps ``(2, 2, 3)``: the identity and the left-right mirror image.

    For photos whose mirror image shows the same class, such as frontal faces (the test-time
    flip of face verification since DeepFace, Taigman et al. 2014, and FaceNet, Schroff et al.
    2015), but not characters (b and d). ``size`` only keeps the signature of
    :func:`tta_views`: a mirror about the image centre is the same map at every size. Warped
    with :func:`warp`, the mirror view equals ``torch.flip(images, dims=(3,))`` exactly.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1 pixel, got {size}")
    identity = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    mirror = [0.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0]  # sx = −1: x ↦ −x about the centre
    return affine_matrices(torch.tensor([identity, mirror], dtype=torch.float64))


def affine_flip_views(size: int) -> torch.Tensor:
    """The nine :func:`tta_views` and their mirror images ``(18, 2, 3)`` (mirror applied last)."""
    views = tta_views(size)
    mirror = torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    return torch.cat([views, mirror @ views])


#: ``eval.tta_views`` names → ``size ↦ (V, 2, 3)`` affine maps for test-time augmentation
#: (used when ``eval.tta`` is on): ``affine`` the nine small distortions of characters,
#: ``flip`` the identity and the mirror image (faces), ``affine_flip`` both (18 views).
TTA_VIEWS: Registry[Callable[[int], torch.Tensor]] = Registry(
    "test-time view set", key="eval.tta_views"
)
TTA_VIEWS.register("affine", tta_views)
TTA_VIEWS.register("flip", flip_views)
TTA_VIEWS.register("affine_flip", affine_flip_views)


@dataclass(frozen=True)
class KochAffine:
    """The random affine distortion of Koch, Zemel & Salakhutdinov 2015 (§4.3), per sample.

    θ ∈ [−10, 10] degrees, ρx, ρy ∈ [−0.3, 0.3], sx, sy ∈ [0.8, 1.2], tx, ty ∈ [−2, 2] pixels,
    each drawn uniformly and each of the seven components included independently with
    probability ``p`` = 0.5 (identity otherwise). The paper used 105×105 images: at 28 px,
    ``translate`` = 2 moves relatively 3.75 times further. Call ``augment(images, generator)``
    with ``(B, C, H, W)`` uint8 or float images; the same generator state gives the same output.
    """

    rotation: float = 10.0
    shear: float = 0.3
    scale: tuple[float, float] = (0.8, 1.2)
    translate: float = 2.0
    p: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rotation", "shear", "translate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
        low, high = self.scale
        if not 0 < low <= high:
            raise ValueError(f"scale must be (low, high) with 0 < low ≤ high, got {self.scale}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {self.p}")

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``(count, 7)`` float64 parameters θ, ρx, ρy, sx, sy, tx, ty (see :func:`affine_matrices`)."""
        uniform = torch.rand((count, 7), generator=generator, dtype=torch.float64)
        include = torch.rand((count, 7), generator=generator, dtype=torch.float64) < self.p
        low, high = self.scale
        half_widths = torch.tensor(
            [self.rotation, self.shear, self.shear, 0.0, 0.0, self.translate, self.translate],
            dtype=torch.float64,
        )
        values = (2.0 * uniform - 1.0) * half_widths
        values[:, 3:5] = low + (high - low) * uniform[:, 3:5]
        identity = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
        return torch.where(include, values, identity)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
        return warp(images, affine_matrices(self.sample(images.shape[0], generator)))


@dataclass(frozen=True)
class AffineFlip:
    """:class:`KochAffine`'s random distortion, then a left-right mirror with probability ``flip``.

    For photos whose mirror image shows the same class (frontal faces; not characters). The
    mirror is folded into each image's affine map, so every image is resampled once. Call
    ``augment(images, generator)`` with ``(B, C, H, W)`` uint8 or float images; the same
    generator state gives the same output.
    """

    affine: KochAffine = KochAffine()
    flip: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"flip must lie in [0, 1], got {self.flip}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
        matrices = affine_matrices(self.affine.sample(images.shape[0], generator))
        mirrored = torch.rand(images.shape[0], generator=generator, dtype=torch.float64) < self.flip
        mirror = torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        matrices = torch.where(mirrored[:, None, None], mirror @ matrices, matrices)
        return warp(images, matrices)


#: A per-sample augmentation: uint8 ``(B, C, H, W)`` and a generator → a batch of the same shape.
Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

#: ``data.augment`` names → factories (called with ``data.augment_params`` as keyword arguments);
#: ``none`` builds ``None`` (no augmentation step at all, so
#: no random numbers are drawn and the training stream is that of an unaugmented run).
AUGMENTATIONS: Registry[Callable[[], Augmentation | None]] = Registry(
    "augmentation", key="data.augment"
)
AUGMENTATIONS.register("none", lambda: None)
AUGMENTATIONS.register("affine", KochAffine)
AUGMENTATIONS.register("affine_flip", AffineFlip)


def check_augment_params(name: str, params: Mapping[str, Any]) -> None:
    """Refuse a ``data.augment_params`` key that augmentation ``name``'s factory does not take."""
    factory = AUGMENTATIONS.get(name)
    accepted = [
        p.name
        for p in inspect.signature(factory).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    for key in params:
        if key not in accepted:
            takes = f"it takes {', '.join(accepted)}" if accepted else "it takes none"
            raise ValueError(
                f"data.augment_params has {key!r}, which data.augment={name} does not take; {takes}"
            )


def build_augmentation(name: str, params: Mapping[str, Any] | None = None) -> Augmentation | None:
    """The augmentation ``name`` names (see :data:`AUGMENTATIONS`) built with ``params``
    (``data.augment_params``), or ``None`` for ``none``."""
    params = dict(params or {})
    check_augment_params(name, params)
    return AUGMENTATIONS.get(name)(**params)


def prepare_for_items(augment: Augmentation | None, item_ids: Sequence[str]) -> None:
    """Tell an augmentation that reads items (``reads_items = True``) which items it will be
    asked for, through its ``for_items`` method when it has one (so it loads only what the
    training split needs); any other augmentation is left as it is."""
    prepare = getattr(augment, "for_items", None)
    if getattr(augment, "reads_items", False) and prepare is not None:
        prepare(item_ids)


def with_new_classes(augment: Augmentation | None, data: LabeledImages) -> LabeledImages:
    """The training classes ``data`` plus those the augmentation makes, when it makes any.

    An augmentation may define ``new_classes(data) -> LabeledImages`` (e.g. characters
    recombined from the training items' pen strokes): it returns ``data`` with classes appended,
    built from ``data``'s items alone. Training calls it on the training split before rotations
    and mirror images as classes, so those copy the new classes too; any other augmentation
    leaves ``data`` as it is.
    """
    make = getattr(augment, "new_classes", None)
    return data if make is None else make(data)


def augment_items(
    augment: Augmentation, images: torch.Tensor, generator: torch.Generator,
    item_ids: Callable[[], Sequence[str]],
) -> torch.Tensor:  # fmt: skip
    """``augment(images, generator)``; an augmentation that declares ``reads_items = True``
    (it draws from what the items are, e.g. their pen strokes) also gets the batch's item ids.

    ``item_ids`` is called only for such an augmentation, so the others cost nothing more.
    """
    if getattr(augment, "reads_items", False):
        return augment(images, generator, item_ids())  # type: ignore[call-arg]
    return augment(images, generator)
