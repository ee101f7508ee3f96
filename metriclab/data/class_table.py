"""The tables every sampler draws from: items grouped by class, and classes grouped into pools.

Labels are grouped into a padded ``(C, max_count)`` member table once; each draw is then a handful
of array operations over all episodes or pairs at once, never a Python loop over classes. A pool
is the set of classes one draw may mix: a group such as an Omniglot alphabet (within-group
sampling), or all classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def as_numpy_labels(
    labels: torch.Tensor | np.ndarray | Sequence[int], name: str = "labels"
) -> np.ndarray:
    """``labels`` as a 1-D int64 array of non-negative indices."""
    array = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ValueError(f"{name} must be a 1-D integer array, got {array.dtype} {array.shape}")
    if array.size and array.min() < 0:
        raise ValueError(f"{name} must be non-negative indices, got {array.min()}")
    return array.astype(np.int64, copy=False)


def episode_rng(seed: int, epoch: int = 0) -> np.random.Generator:
    """The generator of one epoch: epoch 0 is ``default_rng(seed)``, epoch ``e`` its ``e``-th child stream.

    Child streams (``SeedSequence`` spawn keys) are independent of the root and of each other, so
    every epoch differs, yet each is fixed by ``(seed, epoch)`` on any machine.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    if epoch == 0:
        return np.random.default_rng(int(seed))
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(epoch),)))


def distinct_positions(rng: np.random.Generator, sizes: np.ndarray, n: int) -> np.ndarray:
    """``(E, n)`` distinct positions in ``[0, sizes[e])`` per row, a uniform ordered draw.

    Rows whose pool is large (``size ≥ n²``, so a collision has probability < 1/2) draw ``n``
    integers and redraw the whole row on a collision: O(n), which makes 5-of-1000 cheap. Small
    pools sort ``size`` random keys instead. Both are exactly uniform over ordered n-tuples.
    """
    out = np.empty((len(sizes), n), dtype=np.int64)
    sparse = sizes >= n * n
    rows = np.flatnonzero(sparse)
    while rows.size:
        draws = rng.integers(0, sizes[rows, None], size=(rows.size, n))
        out[rows] = draws
        ordered = np.sort(draws, axis=1)
        rows = rows[(ordered[:, 1:] == ordered[:, :-1]).any(axis=1)]
    dense = np.flatnonzero(~sparse)
    if dense.size:
        width = int(sizes[dense].max())
        keys = rng.random((dense.size, width))
        keys[np.arange(width) >= sizes[dense, None]] = 2.0
        out[dense] = np.argsort(keys, axis=1)[:, :n]
    return out


@dataclass(frozen=True)
class ClassTable:
    """Items grouped by class: ``members[c, :counts[c]]`` are the positions of class ``c``.

    Attributes:
        members: ``(C, max_count)`` int64, padded with -1.
        counts: ``(C,)`` int64, the number of items of each class (0 for absent labels).
    """

    members: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_labels(cls, labels: torch.Tensor | np.ndarray) -> ClassTable:
        array = as_numpy_labels(labels)
        num_classes = int(array.max()) + 1 if array.size else 0
        counts = np.bincount(array, minlength=num_classes).astype(np.int64)
        order = np.argsort(array, kind="stable")
        starts = np.cumsum(counts) - counts
        rank = np.arange(array.size) - np.repeat(starts, counts)
        members = np.full((num_classes, int(counts.max(initial=0))), -1, dtype=np.int64)
        members[array[order], rank] = order
        return cls(members=members, counts=counts)

    def draw(self, rng: np.random.Generator, classes: np.ndarray, per_class: int) -> np.ndarray:
        """``per_class`` distinct items of each class in ``classes`` (any shape ``S``) → ``S + (per_class,)``.

        A partial Fisher–Yates shuffle (Durstenfeld 1964) of every class's member row at once:
        ``per_class`` steps of whole-array operations, with no per-row sort. Step ``j`` swaps slot
        ``j`` with a slot drawn from ``[j, count)`` as ``floor(u · (count − j))``, ``u`` a 53-bit
        uniform, so the draw is uniform over ordered tuples up to a bias below ``count · 2⁻⁵³``.
        """
        rows = classes.size
        counts = self.counts[classes].reshape(-1)
        # Transposed so that slot j of every row is one contiguous array.
        slots = np.ascontiguousarray(self.members[classes].reshape(rows, -1).T)
        flat = slots.reshape(-1)
        uniforms = rng.random((per_class, rows))
        column = np.arange(rows)
        for j in range(per_class):
            span = counts - j
            pick = np.minimum((uniforms[j] * span).astype(np.int64), span - 1) + j
            where = pick * rows + column
            chosen = flat[where]
            flat[where] = slots[j].copy()
            slots[j] = chosen
        return slots[:per_class].T.reshape(*classes.shape, per_class)

    def require(
        self, per_class: int, needed: str, class_names: Sequence[str] | None = None
    ) -> None:
        """Raise naming the first present class with fewer than ``per_class`` items.

        ``needed`` names the settings that ask for them, e.g. ``"k_shot + n_query"``.
        """
        short = np.flatnonzero((self.counts > 0) & (self.counts < per_class))
        if len(short):
            c = int(short[0])
            name = repr(class_names[c]) if class_names is not None and c < len(class_names) else c
            raise ValueError(
                f"class {name} has only {self.counts[c]} item{'s' if self.counts[c] != 1 else ''}, fewer than {needed} = {per_class}; "
                f"lower {needed.replace(' + ', ' or ')}, or leave the class out "
                "(LabeledImages.select_classes)"
            )


@dataclass(frozen=True)
class Pools:
    """Classes partitioned into pools: one per group (within-group draws) or a single pool of all.

    Attributes:
        members: ``(P, max_size)`` class indices of each pool, padded with -1.
        sizes: ``(P,)`` number of classes in each pool (0 for a group without usable classes).
        pool_of: ``(C,)`` pool of each class, -1 for classes left out.
        rank: ``(C,)`` column of each class in its pool's row of ``members``.
        names: a name per pool, for error messages.
    """

    members: np.ndarray
    sizes: np.ndarray
    pool_of: np.ndarray
    rank: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def build(
        cls,
        classes: np.ndarray,
        num_classes: int,
        groups: torch.Tensor | np.ndarray | None = None,
        group_names: Sequence[str] = (),
    ) -> Pools:
        """Pools over ``classes`` (sorted class indices): by ``groups[class]``, or one pool if ``None``."""
        if groups is None:
            keys = np.zeros(len(classes), dtype=np.int64)
        else:
            group_of = as_numpy_labels(groups, "groups")
            if len(group_of) < num_classes:
                raise ValueError(
                    f"groups must give one group per class ({num_classes}), got {len(group_of)}"
                )
            keys = group_of[classes]
        table = ClassTable.from_labels(keys)
        members = np.where(table.members >= 0, classes[np.maximum(table.members, 0)], -1)
        pool_of = np.full(num_classes, -1, dtype=np.int64)
        rank = np.full(num_classes, -1, dtype=np.int64)
        rows, cols = np.nonzero(members >= 0)
        pool_of[members[rows, cols]] = rows
        rank[members[rows, cols]] = cols
        names = tuple(
            str(group_names[p]) if p < len(group_names) else f"group {p}"
            for p in range(len(table.counts))
        )
        return cls(members, table.counts, pool_of, rank, names if groups is not None else ("all",))

    def largest(self) -> tuple[str, int]:
        """Name and size of the largest pool."""
        p = int(np.argmax(self.sizes)) if len(self.sizes) else 0
        return (self.names[p], int(self.sizes[p])) if len(self.sizes) else ("none", 0)

    def choose(self, rng: np.random.Generator, count: int, min_size: int) -> np.ndarray:
        """``(count,)`` pools with at least ``min_size`` classes, drawn ∝ their size.

        Proportional to size, every usable class is equally likely to be drawn, as without pools.
        A single pool consumes no randomness, so ungrouped draws do not depend on this step.
        """
        if len(self.sizes) == 1:
            return np.zeros(count, dtype=np.int64)
        usable = np.flatnonzero(self.sizes >= min_size)
        weights = self.sizes[usable] / self.sizes[usable].sum()
        return usable[rng.choice(len(usable), size=count, p=weights)]

    def distinct(self, rng: np.random.Generator, pools: np.ndarray, n: int) -> np.ndarray:
        """``(E, n)`` distinct classes of pool ``pools[e]`` for each row, uniform."""
        return self.members[pools[:, None], distinct_positions(rng, self.sizes[pools], n)]

    def other(self, rng: np.random.Generator, classes: np.ndarray) -> np.ndarray:
        """For each class, another class of the same pool, uniform (the pool needs two classes)."""
        pools = self.pool_of[classes]
        sizes = self.sizes[pools]
        shift = rng.integers(1, sizes)
        return self.members[pools, (self.rank[classes] + shift) % sizes]


def check_count(name: str, value: int, minimum: int = 1) -> None:
    """Raise unless ``value`` is an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")


def check_shard(rank: int, world_size: int, total: int, what: str) -> None:
    """Raise unless ``rank`` of ``world_size`` processes can take an equal share of ``total`` ``what``."""
    check_count("world_size", world_size)
    check_count("rank", rank, minimum=0)
    if rank >= world_size:
        raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
    if total % world_size:
        raise ValueError(
            f"{what}={total} cannot be split evenly over world_size={world_size} processes; "
            f"choose a multiple of {world_size}"
        )
