"""New exemplars of a character from its drawers' pen strokes: perturb the strokes, then draw them.

People who draw a character again vary in ways an image warp cannot imitate: each stroke turns,
stretches and shifts a little on its own, its path wobbles smoothly, the pen is thicker or
thinner, and the strokes' relations change slightly (Lake et al. 2015 model exactly these as
the token-level variability of Bayesian program learning). :class:`StrokeJitter` draws those
changes for a batch at once, seeded by a ``torch.Generator``; :class:`StrokeAugmentation` is the
training augmentation (``data.augment: strokes``) that replaces a share of a batch's images by
renderings of their own drawing's perturbed strokes and warps the rest as Koch et al. 2015 do.

It reads the batch's item ids (``reads_items``), finds each item's drawing by id in a
:class:`StrokeBank` (items without one keep their image), and applies the rotations and mirror
images of :func:`~metriclab.data.augment.rotations_as_classes` / ``mirrors_as_classes`` named by the
id's ``@rot<angle>`` / ``@mirror`` suffixes to the rendering, so class augmentation works on top.
Evaluation never augments: it sees the original images only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from metriclab.data.augment import AUGMENTATIONS, KochAffine, affine_matrices
from metriclab.data.images import LabeledImages
from metriclab.data.render import OMNIGLOT_FRAME, OMNIGLOT_PEN, PackedStrokes, render
from metriclab.data.stroke_classes import (
    MIN_EXEMPLARS,
    PARTS,
    Exemplars,
    recombination_table,
    recombined,
)
from metriclab.data.stroke_maps import CHANNELS, WEIGHTED, class_copy_points, stroke_maps
from metriclab.data.strokes import Drawing, omniglot_strokes, resample_drawing


class StrokeBank:
    """Drawings resampled at a uniform arc length and packed once, gathered per batch by index.

    ``ids[i]`` is drawing ``i``'s item id; :meth:`gather` packs any list of them in O(points).
    """

    def __init__(self, drawings: dict[str, Drawing], spacing: float = 2.0) -> None:
        if not drawings:
            raise ValueError("a stroke bank needs at least one drawing")
        self.ids = tuple(drawings)
        self.row = {item: i for i, item in enumerate(self.ids)}
        self.packed = PackedStrokes.pack([resample_drawing(d, spacing) for d in drawings.values()])
        strokes_per = torch.bincount(self.packed.drawing, minlength=len(self.ids))
        points_per_stroke = torch.bincount(self.packed.stroke)
        self.stroke_count = strokes_per
        self.stroke_start = torch.cumsum(strokes_per, 0) - strokes_per
        points_per = torch.zeros(len(self.ids), dtype=torch.int64)
        points_per.index_add_(0, self.packed.drawing, points_per_stroke)
        self.point_count = points_per
        self.point_start = torch.cumsum(points_per, 0) - points_per

    @staticmethod
    def load(
        paths: Sequence[str | Path], spacing: float = 2.0, items: Iterable[str] | None = None
    ) -> StrokeBank:
        """The bank of the Omniglot stroke zips or folders ``paths`` (keyed by image item id),
        only of the drawings ``items`` names when given."""
        return StrokeBank(omniglot_strokes(list(paths), items=items), spacing)

    def __len__(self) -> int:
        return len(self.ids)

    def gather(self, rows: torch.Tensor) -> PackedStrokes:
        """Drawings ``rows`` ``(B,)`` as one packed batch, in that order."""
        counts = self.point_count[rows]
        points_idx = _ranges(self.point_start[rows], counts)
        owner = torch.repeat_interleave(torch.arange(len(rows)), counts)
        # Strokes renumbered 0 … S−1 in gathered order (a drawing asked twice gets two copies).
        strokes = self.stroke_count[rows]
        first_new = torch.cumsum(strokes, 0) - strokes
        stroke = self.packed.stroke[points_idx] - self.stroke_start[rows][owner] + first_new[owner]
        return PackedStrokes(
            points=self.packed.points[points_idx],
            stroke=stroke,
            along=self.packed.along[points_idx],
            drawing=torch.repeat_interleave(torch.arange(len(rows)), strokes),
            count=len(rows),
        )


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``cat(arange(s, s + c) for s, c)`` without a Python loop."""
    owner = torch.repeat_interleave(torch.arange(len(counts)), counts)
    offsets = torch.cumsum(counts, 0) - counts
    return starts[owner] + torch.arange(len(owner)) - offsets[owner]


@dataclass(frozen=True)
class StrokeJitter:
    """Token-level variability of a drawing, in pixels of its frame (Omniglot: 105).

    Per stroke: rotation by U[−``stroke_rotation``, …] degrees, shear U[−``stroke_shear``, …],
    scale U[1 − ``stroke_scale``, 1 + ``stroke_scale``] per axis, all about the stroke's centre,
    and a shift by U[−``stroke_shift``, …] pixels per axis, which changes the relations between
    strokes; a smooth displacement along the path, linear between ``knots`` control points with
    N(0, ``noise``²) pixel offsets. Per drawing: a global affine about the frame's centre
    (``rotation``, ``shear``, ``scale``, ``translate`` as above) and a pen width factor
    U[``pen``]. ``strength`` multiplies every amplitude but the pen's.
    """

    stroke_rotation: float = 8.0
    stroke_shear: float = 0.1
    stroke_scale: float = 0.1
    stroke_shift: float = 2.5
    noise: float = 1.5
    knots: int = 4
    rotation: float = 10.0
    shear: float = 0.15
    scale: float = 0.12
    translate: float = 4.0
    pen: tuple[float, float] = (0.7, 1.3)
    strength: float = 1.0
    frame: float = OMNIGLOT_FRAME

    def __post_init__(self) -> None:
        for name in ("stroke_rotation", "stroke_shear", "stroke_shift", "noise", "rotation",
                     "shear", "translate", "strength"):  # fmt: skip
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
        for name in ("stroke_scale", "scale"):
            value = getattr(self, name) * self.strength
            if not 0 <= value < 1:
                raise ValueError(f"{name} × strength must lie in [0, 1), got {value}")
        if self.knots < 2:
            raise ValueError(f"knots must be at least 2 control points, got {self.knots}")
        low, high = self.pen
        if not 0 < low <= high:
            raise ValueError(f"pen must be (low, high) with 0 < low ≤ high, got {self.pen}")

    def _affine(
        self, count: int, rotation: float, shear: float, scale: float, shift: float,
        generator: torch.Generator,
    ) -> torch.Tensor:  # fmt: skip
        """``(count, 2, 3)`` maps: θ, ρx, ρy, sx, sy, tx, ty uniform within ± the amplitudes."""
        k = self.strength
        half = torch.tensor(
            [rotation * k, shear * k, shear * k, scale * k, scale * k, shift * k, shift * k],
            dtype=torch.float64,
        )
        values = (2 * torch.rand((count, 7), generator=generator, dtype=torch.float64) - 1) * half
        values[:, 3:5] += 1.0
        return affine_matrices(values).to(torch.float32)

    def perturb(
        self, packed: PackedStrokes, generator: torch.Generator
    ) -> tuple[PackedStrokes, torch.Tensor]:
        """Perturbed strokes and a pen width factor ``(B,)`` per drawing."""
        points, stroke = packed.points, packed.stroke
        strokes = int(stroke.max()) + 1 if len(stroke) else 0
        local = self._affine(
            strokes, self.stroke_rotation, self.stroke_shear, self.stroke_scale,
            self.stroke_shift, generator,
        )  # fmt: skip
        sums = torch.zeros(strokes, 2).index_add_(0, stroke, points)
        centre = sums / torch.bincount(stroke, minlength=strokes).clamp_min(1)[:, None]
        knots = torch.randn((strokes, self.knots, 2), generator=generator) * (
            self.noise * self.strength
        )
        where = packed.along * (self.knots - 1)
        left = where.floor().clamp(max=self.knots - 2).to(torch.int64)
        w = (where - left)[:, None]
        wobble = knots[stroke, left] * (1 - w) + knots[stroke, left + 1] * w
        m = local[stroke]
        offset = (points - centre[stroke])[:, :, None]
        moved = (m[:, :, :2] @ offset).squeeze(2) + centre[stroke] + m[:, :, 2] + wobble
        whole = self._affine(
            packed.count, self.rotation, self.shear, self.scale, self.translate, generator
        )[packed.drawing[stroke]]
        middle = self.frame / 2
        moved = (
            (whole[:, :, :2] @ (moved - middle)[:, :, None]).squeeze(2) + middle + whole[:, :, 2]
        )
        low, high = self.pen
        pens = low + (high - low) * torch.rand(packed.count, generator=generator)
        return packed.with_points(moved), pens


def class_copy(item_id: str) -> tuple[str, int, bool]:
    """``(source id, quarter turns, mirrored)`` of an item id with ``@rot<angle>`` / ``@mirror``
    suffixes (:func:`~metriclab.data.augment.rotations_as_classes` then ``mirrors_as_classes``)."""
    source, *suffixes = item_id.split("@")
    turns, mirrored = 0, False
    for suffix in suffixes:
        if suffix == "mirror":
            mirrored = True
        elif suffix.startswith("rot") and suffix[3:].isdigit():
            turns = int(suffix[3:]) // 90
        else:
            return item_id, 0, False  # an id that merely contains "@": not a class copy
    return source, turns, mirrored


def _as_copies(images: torch.Tensor, copies: Sequence[tuple[int, bool]]) -> torch.Tensor:
    """Each image ``(B, C, H, W)`` rotated then mirrored as its class copy says (exact ops)."""
    out = images.clone()
    for kind in set(copies):
        if kind == (0, False):
            continue
        turns, mirrored = kind
        rows = torch.tensor([i for i, c in enumerate(copies) if c == kind])
        group = torch.rot90(images[rows], turns, dims=(2, 3)) if turns else images[rows]
        out[rows] = torch.flip(group, dims=(3,)) if mirrored else group
    return out


def _cut_range(value: object) -> tuple[float, float]:
    """``recombined_cut`` as ``(low, high)`` with 0 < low ≤ high < 1, or one sentence saying so."""
    try:
        low, high = (float(x) for x in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        low = high = math.nan
    if not 0 < low <= high < 1:
        raise ValueError(
            f"recombined_cut must be two shares [low, high] with 0 < low ≤ high < 1, got {value!r}; "
            "e.g. data.augment_params.recombined_cut=[0.35,0.65]"
        )
    return low, high


class StrokeAugmentation:
    """``data.augment: strokes``: share ``p`` of a batch re-drawn from perturbed strokes.

    Args:
        strokes: Omniglot stroke zips or folders (``strokes_background_small1.zip`` …); without
            them, or for an item without a drawing, the image is only warped.
        p: the probability that an item with a drawing is replaced by a rendering of its own
            drawing's strokes perturbed by :class:`StrokeJitter`; the others get Koch et al.'s
            affine (when ``affine``), so ``p`` mixes original and stroke-rendered exemplars.
        strength: :class:`StrokeJitter`'s ``strength``.
        pen_width: the pen in frame pixels (5 matches the shipped Omniglot images).
        spacing: arc-length resampling of the strokes, frame pixels.
        affine: warp the items that are not re-drawn (:class:`~metriclab.data.augment.KochAffine`).
        affine_redrawn: warp the re-drawn items too, after drawing: stroke jitter then adds
            stroke-level variation on top of the image-level augmentation every item gets.
        recombined: this many new training classes recombined from the training items' strokes
            (:mod:`metriclab.data.stroke_classes`: head of one character's ink, tail of
            another's of the same alphabet, from one drawer pair or drawer by drawer as
            ``recombined_one_drawer`` says), added by
            :meth:`new_classes` before rotations and mirror images as classes; 0 adds none.
        recombined_seed: the seed of the recombined classes' table.
        recombined_cut: the range of the share (of the ink, or of the strokes) at which the two
            characters are joined.
        recombined_parts: ``"strokes"`` (cut between whole strokes, drawers with the usual
            stroke counts only) or ``"ink"`` (cut at an ink share, every drawer).
        recombined_distinct: keep recombined classes apart from each other and from their
            parents: no training class lends strokes to two of them, and none holds a whole
            character (one-stroke characters are not cut between strokes). Without it, two
            classes that share one parent's part, or a class and the parent it contains, are
            near-duplicates that batch-hard mining keeps picking (BENCHMARKS, the collapse).
        recombined_one_drawer: every exemplar of a recombined class joins one drawer pair's
            parts, so the class is one consistent character (drawers order their strokes
            differently: joined drawer by drawer, a class mixes several part combinations);
            its exemplars then differ by augmentation only (Koch's affine, stroke jitter at p).
            The default; ``False`` joins drawer ``j``'s parts for exemplar ``j``, the label
            noise that collapsed batch-hard training (BENCHMARKS, issue 18 part 4).
        auxiliary: the weight of an auxiliary training target (0: none): a head on the
            backbone's feature map predicts each item's :mod:`~metriclab.data.stroke_maps`
            (stroke starts, drawing order, pen direction) from its own unperturbed strokes,
            turned as its class copy is (:meth:`auxiliary_targets`); training only.

    Nothing here holds random state: every draw comes from the generator passed in. Call
    ``augment(images, generator, item_ids)`` with uint8 ``(B, C, H, W)`` square images
    (``C`` = 1 or 3; renderings are grey) and the ids of the batch's items.
    """

    reads_items: ClassVar[bool] = True
    #: The auxiliary targets' channels (:data:`~metriclab.data.stroke_maps.CHANNELS`).
    auxiliary_channels: ClassVar[int] = len(CHANNELS)

    def __init__(
        self,
        strokes: Sequence[str] | None = None,
        p: float = 0.5,
        strength: float = 1.0,
        pen_width: float = OMNIGLOT_PEN,
        spacing: float = 2.0,
        affine: bool = True,
        affine_redrawn: bool = False,
        recombined: int = 0,
        recombined_seed: int = 0,
        recombined_cut: tuple[float, float] = (0.35, 0.65),
        recombined_parts: str = "strokes",
        recombined_distinct: bool = False,
        recombined_one_drawer: bool = True,
        auxiliary: float = 0.0,
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        if not pen_width > 0:
            raise ValueError(f"pen_width must be a positive number of pixels, got {pen_width}")
        if isinstance(strokes, str):
            strokes = [strokes]
        if recombined < 0:
            raise ValueError(f"recombined must be a number of classes ≥ 0, got {recombined}")
        if recombined and not strokes:
            raise ValueError(
                "recombined classes need the pen strokes: set data.augment_params.strokes to the "
                "stroke zips or folders"
            )
        if not (math.isfinite(auxiliary) and auxiliary >= 0):
            raise ValueError(f"auxiliary must be a loss weight ≥ 0, got {auxiliary}")
        if auxiliary and not strokes:
            raise ValueError(
                "an auxiliary stroke target needs the pen strokes: set "
                "data.augment_params.strokes to the stroke zips or folders"
            )
        self.auxiliary = float(auxiliary)
        self.strokes, self.spacing = list(strokes or []), spacing
        self._bank: StrokeBank | None = None
        #: The source ids :meth:`for_items` read, and the recombined items' drawings.
        self._sources: set[str] | None = None
        self._made: dict[str, Drawing] = {}
        self._drawings: dict[str, Drawing] = {}
        self.recombined, self.recombined_seed = int(recombined), int(recombined_seed)
        self.recombined_cut = _cut_range(recombined_cut)
        if recombined_parts not in PARTS:
            raise ValueError(
                f"recombined_parts must be one of {sorted(PARTS)}, got {recombined_parts!r}"
            )
        self.recombined_parts = recombined_parts
        self.recombined_distinct = bool(recombined_distinct)
        self.recombined_one_drawer = bool(recombined_one_drawer)
        self.jitter = StrokeJitter(strength=strength)
        self.p, self.pen_width = p, pen_width
        self.warp = KochAffine() if affine else None
        self.warp_redrawn = KochAffine() if affine_redrawn else None

    @property
    def bank(self) -> StrokeBank | None:
        """The drawings re-drawn from: those of :meth:`for_items` once it was called, else every
        drawing of ``strokes`` (read on first use); ``None`` without stroke files."""
        if self._bank is None and self.strokes:
            self._bank = StrokeBank.load(self.strokes, self.spacing)
        return self._bank

    def for_items(self, item_ids: Sequence[str]) -> None:
        """Read only the drawings of ``item_ids`` (the training items, class copies included):
        training then never parses, let alone sees, a held-out item's strokes."""
        if not self.strokes:
            return
        sources = {class_copy(item)[0] for item in item_ids} - set(self._made)
        if sources == self._sources:
            return  # already read (new_classes read them first)
        drawings = omniglot_strokes(self.strokes, items=sources)
        self._sources, self._made = sources, {}
        self._drawings = drawings
        self._bank = StrokeBank(drawings, self.spacing)

    def new_classes(self, data: LabeledImages) -> LabeledImages:
        """``data`` (the training split) plus ``recombined`` classes made from its items' strokes
        alone (:func:`~metriclab.data.stroke_classes.recombined`); their drawings join the bank,
        so ``p`` re-draws them like real items."""
        if not self.recombined:
            return data
        self.for_items(data.item_ids)
        exemplars = Exemplars(data, self._drawings, self.recombined_parts)
        distinct = self.recombined_distinct
        table = recombination_table(
            data.labels, data.groups, self.recombined, self.recombined_seed, self.recombined_cut,
            accept=lambda recipe: len(exemplars.pairs(recipe)) >= MIN_EXEMPLARS
            and (not distinct or exemplars.proper(recipe)),
            disjoint=distinct,
        )  # fmt: skip
        joined, made = recombined(
            data, self._drawings, table, self.pen_width, self.jitter.frame, self.spacing,
            self.recombined_parts, self.recombined_one_drawer,
        )  # fmt: skip
        self._made = made
        self._bank = StrokeBank({**self._drawings, **made}, self.spacing)
        return joined

    def auxiliary_targets(
        self, item_ids: Sequence[str], side: int
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        """Targets ``(B, 5, side, side)`` (:func:`~metriclab.data.stroke_maps.stroke_maps` of each
        item's own drawing, rotated and mirrored as its ``@rot``/``@mirror`` suffixes say), which
        items have a drawing ``(B,)`` bool, and the channels weighted by ink."""
        bank = self.bank
        targets = torch.zeros(len(item_ids), len(CHANNELS), side, side)
        if bank is None:
            return targets, torch.zeros(len(item_ids), dtype=torch.bool), WEIGHTED
        copies = [class_copy(item) for item in item_ids]
        rows = torch.tensor([bank.row.get(source, -1) for source, _, _ in copies])
        known = rows >= 0
        chosen = torch.nonzero(known).flatten()
        if len(chosen):
            packed = bank.gather(rows[chosen])
            owner = packed.drawing[packed.stroke]
            turns = torch.tensor([copies[i][1] for i in chosen.tolist()])[owner]
            mirrored = torch.tensor([copies[i][2] for i in chosen.tolist()])[owner]
            moved = class_copy_points(packed.points, turns, mirrored, self.jitter.frame)
            targets[chosen] = stroke_maps(packed.with_points(moved), side, self.jitter.frame)
        return targets, known, WEIGHTED

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        item_ids: Sequence[str] | None = None,
    ) -> torch.Tensor:
        if images.ndim != 4 or images.shape[2] != images.shape[3]:
            raise ValueError(f"expected square images (B, C, H, W), got {tuple(images.shape)}")
        if item_ids is not None and len(item_ids) != len(images):
            raise ValueError(f"got {len(item_ids)} item ids for {len(images)} images")
        chance = torch.rand(len(images), generator=generator)
        out = images if self.warp is None else self.warp(images, generator)
        bank = self.bank
        if bank is None or item_ids is None:
            return out
        copies = [class_copy(item) for item in item_ids]
        rows = torch.tensor([bank.row.get(source, -1) for source, _, _ in copies])
        chosen = torch.nonzero((chance < self.p) & (rows >= 0)).flatten()
        if len(chosen) == 0:
            return out
        packed, pens = self.jitter.perturb(bank.gather(rows[chosen]), generator)
        ink = render(packed, images.shape[2], pens * self.pen_width, self.jitter.frame)
        drawn = (ink * 255).round_().to(torch.uint8).expand(-1, images.shape[1], -1, -1)
        drawn = _as_copies(drawn, [copies[i][1:] for i in chosen.tolist()])
        if self.warp_redrawn is not None:
            drawn = self.warp_redrawn(drawn.contiguous(), generator)
        out = out.clone()
        out[chosen] = drawn.to(out.dtype) if out.dtype == torch.uint8 else drawn.float() / 255
        return out


AUGMENTATIONS.register("strokes", StrokeAugmentation)


def perturbed_renderings(
    drawings: Sequence[Drawing],
    size: int,
    seed: int,
    jitter: StrokeJitter | None = None,
    pen_width: float = OMNIGLOT_PEN,
    spacing: float = 2.0,
) -> torch.Tensor:
    """uint8 ``(B, 1, size, size)``: one perturbed rendering per drawing, seeded (for figures)."""
    jitter = jitter or StrokeJitter()
    bank = StrokeBank({str(i): d for i, d in enumerate(drawings)}, spacing)
    generator = torch.Generator().manual_seed(seed)
    packed, pens = jitter.perturb(bank.gather(torch.arange(len(bank))), generator)
    ink = render(packed, size, pens * pen_width, jitter.frame)
    return (ink * 255).round_().to(torch.uint8)


__all__ = [
    "StrokeAugmentation",
    "StrokeBank",
    "StrokeJitter",
    "class_copy",
    "perturbed_renderings",
]
