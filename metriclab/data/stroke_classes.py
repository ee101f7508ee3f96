"""New training characters recombined from real drawers' pen strokes.

Rotated and mirrored characters as new classes were the cheap gains on Omniglot's validation
alphabets: more classes teach a metric more than more exemplars of the same ones. Pen strokes
allow new classes that are neither: a *recombined* class takes the first part of character A's
ink and the rest of character B's, both of one alphabet (Lake et al. 2015 generate new
characters from an alphabet's stroke parts in the same spirit, Bayesian program learning's
type level). The cut is by ink share, a fraction ``cut`` of the drawing's total path length in
drawing order, so a part is never empty whatever the stroke counts; a stroke crossing the cut
is cut there. Exemplar ``j`` of the new class joins drawer ``j``'s A and drawer ``j``'s B (the
``j``-th item of each class in id order; Omniglot's ids end in the drawer's number), so the class
keeps real human variability: each exemplar is how one person drew those parts.

:func:`recombination_table` is the seeded class table (which A, B and cut); :func:`recombined`
draws it as :class:`~metriclab.data.images.LabeledImages` beside the training set.
``parts="strokes"`` cuts between whole strokes instead (the first strokes of A, the last of B)
and keeps only drawers who drew both characters with their most common stroke count. Even
then drawers order and split their strokes differently (for 30 % of drawer pairs of one
Omniglot character, one's first strokes look more like the other's last ones), so a class
joined drawer by drawer mixes part combinations: label noise that collapsed batch-hard
training. ``one_drawer`` builds every exemplar from one drawer pair's parts instead (a
consistent character; its variety then comes from augmentation). Both see only the drawings
passed in: the caller passes the training split's, never a held-out item's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from metriclab.data.images import LabeledImages
from metriclab.data.render import OMNIGLOT_FRAME, OMNIGLOT_PEN, PackedStrokes, render
from metriclab.data.strokes import Drawing, resample_drawing

#: The id and class-name stem of recombined classes (no "@": that marks class copies).
PREFIX = "recombined"
#: The fewest exemplars a recombined class should have (a triplet batch draws 4 per class).
MIN_EXEMPLARS = 4


@dataclass(frozen=True)
class Recipe:
    """One recombined class: the head (ink share ``[0, cut)``) of class ``first``'s drawings
    and the tail (``[cut, 1]``) of class ``second``'s, both class indices of one group."""

    first: int
    second: int
    cut: float


def ink_parts(drawing: Drawing, cut: float) -> tuple[Drawing, Drawing]:
    """``drawing`` split at ink share ``cut`` ∈ (0, 1): (the path before it, the path after it).

    Path length is counted stroke after stroke in drawing order; the stroke that crosses the cut
    is cut at the nearest sample (so resample first for a fine cut). Both parts hold at least one
    point: a drawing of one point gives that point to both.
    """
    if not 0 < cut < 1:
        raise ValueError(f"cut must lie strictly between 0 and 1, got {cut}")
    lengths = [np.linalg.norm(np.diff(s, axis=0), axis=1) for s in drawing.strokes]
    # Each point's arc position in the whole drawing (pen-up moves not counted).
    offsets = np.cumsum([0.0] + [float(seg.sum()) for seg in lengths])
    positions = [
        offsets[i] + np.concatenate([[0.0], np.cumsum(seg)]) for i, seg in enumerate(lengths)
    ]
    at = cut * offsets[-1]
    head, tail = [], []
    for stroke, position in zip(drawing.strokes, positions, strict=True):
        before = position < at
        if before.all():
            head.append(stroke)
        elif not before.any():
            tail.append(stroke)
        else:
            split = int(before.sum())
            # The cut point belongs to both parts, so neither part's pen jumps.
            head.append(stroke[: split + 1])
            tail.append(stroke[split:])
    if not head:
        head = [drawing.strokes[0][:1]]
    if not tail:
        tail = [drawing.strokes[-1][-1:]]
    return Drawing(tuple(head)), Drawing(tuple(tail))


def stroke_parts(drawing: Drawing, cut: float) -> tuple[Drawing, Drawing]:
    """``drawing`` split between whole strokes: (its first ``h`` strokes, its strokes from ``t``
    on), ``h = clamp(round(cut·S), 1, S)`` and ``t = clamp(round(cut·S), 0, S − 1)`` of its
    ``S`` strokes, so both parts hold at least one stroke (a one-stroke drawing gives it to both).
    """
    if not 0 < cut < 1:
        raise ValueError(f"cut must lie strictly between 0 and 1, got {cut}")
    count = len(drawing.strokes)
    at = round(cut * count)
    head = drawing.strokes[: min(max(at, 1), count)]
    tail = drawing.strokes[min(max(at, 0), count - 1) :]
    return Drawing(tuple(head)), Drawing(tuple(tail))


#: How a recipe cuts its two characters: by ink share, or between whole strokes.
PARTS = {"ink": ink_parts, "strokes": stroke_parts}


def recombination_table(
    labels: torch.Tensor,
    groups: torch.Tensor | None,
    count: int,
    seed: int,
    cut: tuple[float, float] = (0.35, 0.65),
    accept: Callable[[Recipe], bool] | None = None,
    disjoint: bool = False,
) -> list[Recipe]:
    """``count`` distinct recipes drawn with ``seed``: ordered pairs (A, B ≠ A) of classes of one
    group in a seeded random order, each with a cut uniform in ``cut``, the first ``count``
    that ``accept`` takes (all when None).

    ``disjoint``: no class lends strokes to two recipes, so no two recombined classes share a
    part (each exemplar of two such "siblings" would hold the very same drawer's strokes, a
    near-duplicate negative that batch-hard mining picks first); at most half the classes'
    count of recipes then exist.

    ``labels`` ``(N,)`` are the items' classes (only classes with items are used); ``groups``
    ``(C,)`` each class's group, or None for one group. Deterministic in its arguments.
    """
    low, high = cut
    if not 0 < low <= high < 1:
        raise ValueError(f"cut must be (low, high) with 0 < low ≤ high < 1, got {cut}")
    if count < 0:
        raise ValueError(f"the number of recombined classes must be ≥ 0, got {count}")
    present = sorted(set(labels.tolist()))
    members: dict[int, list[int]] = {}
    for c in present:
        members.setdefault(0 if groups is None else int(groups[c]), []).append(c)
    pairs = [(a, b) for g in sorted(members) for a in members[g] for b in members[g] if a != b]
    if count > len(pairs):
        raise ValueError(
            f"asked for {count} recombined classes but the training classes allow only "
            f"{len(pairs)} ordered pairs within a group; ask for at most {len(pairs)}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    cuts = rng.uniform(low, high, size=len(pairs))
    table: list[Recipe] = []
    used: set[int] = set()
    for i in order.tolist():
        if len(table) == count:
            break
        recipe = Recipe(pairs[i][0], pairs[i][1], float(cuts[i]))
        if disjoint and {recipe.first, recipe.second} & used:
            continue
        if accept is None or accept(recipe):
            table.append(recipe)
            used |= {recipe.first, recipe.second}
    if len(table) < count:
        which = "disjoint pairs" if disjoint else "pairs"
        raise ValueError(
            f"asked for {count} recombined classes but only {len(table)} {which} of training "
            f"classes have enough matching drawings; ask for at most {len(table)}"
        )
    return table


class Exemplars:
    """Which drawings make each recipe's exemplars.

    ``parts="ink"``: exemplar ``j`` joins class A's ``j``-th drawn item and class B's ``j``-th
    (id order; Omniglot's ids end in the drawer's number). ``parts="strokes"``: only drawers
    whose drawing of A has A's most common stroke count and whose drawing of B has B's, so
    every exemplar cuts the same strokes (people who draw a character with another number of
    strokes usually draw it in another order too).
    """

    def __init__(self, data: LabeledImages, drawings: Mapping[str, Drawing], parts: str) -> None:
        if parts not in PARTS:
            raise ValueError(f"parts must be one of {sorted(PARTS)}, got {parts!r}")
        self.parts = parts
        self.by_class: dict[int, list[str | None]] = {}
        for item, label in sorted(zip(data.item_ids, data.labels.tolist(), strict=True)):
            self.by_class.setdefault(label, []).append(item if item in drawings else None)
        self.typical: dict[int, int] = {}
        if parts == "strokes":
            for label, items in self.by_class.items():
                counts = [len(drawings[i].strokes) for i in items if i is not None]
                if counts:  # the most common count; the smaller on a tie
                    values, times = np.unique(counts, return_counts=True)
                    self.typical[label] = int(values[int(np.argmax(times))])
        self.drawings = drawings

    def _fits(self, item: str | None, label: int) -> bool:
        if item is None:
            return False
        return self.parts == "ink" or len(self.drawings[item].strokes) == self.typical[label]

    def proper(self, recipe: Recipe) -> bool:
        """Whether both of ``recipe``'s parts are less than their whole character: cut between
        strokes, a character usually drawn in one stroke gives all of itself, and the new class
        would then hold a whole training character (a superset of its parent). Cuts by ink share
        are always proper."""
        if self.parts == "ink":
            return True
        return min(self.typical.get(recipe.first, 0), self.typical.get(recipe.second, 0)) >= 2

    def pairs(self, recipe: Recipe) -> list[tuple[str, str]]:
        """``(A's item, B's item)`` of every exemplar of ``recipe``, in drawer order."""
        firsts = self.by_class.get(recipe.first, [])
        seconds = self.by_class.get(recipe.second, [])
        return [
            (a, b)
            for a, b in zip(firsts, seconds, strict=False)
            if self._fits(a, recipe.first) and self._fits(b, recipe.second)
        ]  # type: ignore[misc]


def recombined_drawings(
    data: LabeledImages,
    drawings: Mapping[str, Drawing],
    table: list[Recipe],
    parts: str = "ink",
    one_drawer: bool = False,
) -> dict[str, tuple[int, Drawing]]:
    """``{item id: (recipe index, drawing)}``: each exemplar of recipe ``k`` (:class:`Exemplars`)
    joins the head of its A drawing and the tail of its B drawing, cut as ``parts`` says.

    ``one_drawer``: every exemplar joins the *first* matching drawer pair's parts (as many
    exemplars as there are pairs), so the class is one consistent character and its variety
    comes from augmentation alone. Drawers order and split a character's strokes differently,
    so "the first ``h`` strokes" names different parts for different drawers: a class joined
    drawer by drawer mixes several part combinations, some of which look like a parent.

    Ids are ``"<group or class>/recombinedKKKK/JJ"`` (``JJ`` the exemplar's drawer position);
    items of ``data`` without a drawing in ``drawings`` are skipped.
    """
    exemplars = Exemplars(data, drawings, parts)
    split = PARTS[parts]
    out: dict[str, tuple[int, Drawing]] = {}
    for k, recipe in enumerate(table):
        stem = _stem(data, recipe.first)
        pairs = exemplars.pairs(recipe)
        if one_drawer:
            pairs = pairs[:1] * len(pairs)
        for j, (a, b) in enumerate(pairs):
            head, _ = split(drawings[a], recipe.cut)
            _, tail = split(drawings[b], recipe.cut)
            out[f"{stem}/{PREFIX}{k:04d}/{j:02d}"] = (k, Drawing(head.strokes + tail.strokes))
    return out


def _stem(data: LabeledImages, label: int) -> str:
    """The group's name (Omniglot: the alphabet) of class ``label``, else its class name's first part."""
    if data.groups is not None and data.group_names:
        return data.group_names[int(data.groups[label])]
    return data.class_names[label].split("/")[0]


def recombined(
    data: LabeledImages,
    drawings: Mapping[str, Drawing],
    table: list[Recipe],
    pen_width: float = OMNIGLOT_PEN,
    frame: float = OMNIGLOT_FRAME,
    spacing: float = 2.0,
    parts: str = "ink",
    one_drawer: bool = False,
) -> tuple[LabeledImages, dict[str, Drawing]]:
    """``data`` plus the recombined classes of ``table`` drawn at its image size, and the new
    items' drawings by id (for stroke augmentation to re-draw them too).

    New class ``k`` is class ``data.num_classes + k``, named ``"<stem>/recombinedKKKK"`` in the
    group of its first part; its images are uint8 ``(n_k, C, H, W)`` renderings (ink bright on
    black, grey copied to every channel) of ``spacing``-resampled strokes with pen ``pen_width``,
    cut as ``parts`` (:data:`PARTS`: ``"ink"`` share or whole ``"strokes"``) says, from one
    drawer pair for all exemplars when ``one_drawer`` (:func:`recombined_drawings`). A recipe
    whose classes have no matching drawings adds an empty class (sampled never); pass
    :func:`recombination_table` an ``accept`` that asks for :data:`MIN_EXEMPLARS` to avoid it.
    """
    size, channels = data.images.shape[2], data.images.shape[1]
    if data.images.shape[3] != size:
        raise ValueError(f"recombined classes need square images, got {tuple(data.images.shape)}")
    resampled = {item: resample_drawing(d, spacing / 4) for item, d in drawings.items()}
    made = recombined_drawings(data, resampled, table, parts, one_drawer)
    ids = list(made)
    chunks = [torch.zeros(0, 1, size, size)]
    for start in range(0, len(ids), 256):  # bounded memory
        part = [made[item][1] for item in ids[start : start + 256]]
        chunks.append(render(PackedStrokes.pack(part), size, pen_width, frame))
    images = (torch.cat(chunks) * 255).round_().to(torch.uint8).expand(-1, channels, -1, -1)
    labels = torch.tensor([data.num_classes + made[i][0] for i in ids], dtype=torch.int64)
    names = tuple(f"{_stem(data, r.first)}/{PREFIX}{k:04d}" for k, r in enumerate(table))
    groups = None
    if data.groups is not None:
        groups = torch.cat([data.groups, data.groups[[r.first for r in table]].reshape(-1)])
    joined = LabeledImages(
        images=torch.cat([data.images, images.contiguous()]),
        labels=torch.cat([data.labels, labels.reshape(-1)]),
        class_names=data.class_names + names,
        item_ids=data.item_ids + tuple(ids),
        groups=groups,
        group_names=data.group_names,
        description=f"{data.description} + {len(table)} recombined-stroke classes",
        preprocess=data.preprocess,
    )
    return joined, {item: made[item][1] for item in ids}


__all__ = [
    "MIN_EXEMPLARS",
    "PARTS",
    "Exemplars",
    "Recipe",
    "ink_parts",
    "recombination_table",
    "recombined",
    "recombined_drawings",
    "stroke_parts",
]
