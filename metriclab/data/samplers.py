"""Seeded, vectorised index samplers: episodes and balanced pairs.

Every sampler takes a ``seed`` and draws from its own ``numpy.random.Generator``, so the same seed
gives the same indices on any machine. Labels are grouped into a padded ``(C, max_count)`` member
table once; each draw is then a handful of array operations, never a Python loop over classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


def _as_numpy_labels(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    array = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {array.dtype} {array.shape}")
    if array.size and array.min() < 0:
        raise ValueError("labels must be non-negative class indices")
    return array.astype(np.int64, copy=False)


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
        array = _as_numpy_labels(labels)
        num_classes = int(array.max()) + 1 if array.size else 0
        counts = np.bincount(array, minlength=num_classes).astype(np.int64)
        order = np.argsort(array, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(array.size) - np.repeat(starts, counts)
        members = np.full((num_classes, int(counts.max(initial=0))), -1, dtype=np.int64)
        members[array[order], rank] = order
        return cls(members=members, counts=counts)

    def draw(self, rng: np.random.Generator, classes: np.ndarray, per_class: int) -> np.ndarray:
        """``per_class`` distinct items of each class in ``classes`` (any shape ``S``) → ``S + (per_class,)``."""
        counts = self.counts[classes]
        keys = rng.random((*classes.shape, self.members.shape[1]))
        # Padding slots get key 2 > any real key, so the first `per_class` sorted slots are real items.
        keys[np.arange(self.members.shape[1]) >= counts[..., None]] = 2.0
        slots = np.argsort(keys, axis=-1)[..., :per_class]
        return np.take_along_axis(self.members[classes], slots, axis=-1)


def sample_episodes(
    labels: torch.Tensor | np.ndarray,
    n_way: int,
    k_shot: int,
    n_query: int,
    episodes: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``episodes`` N-way K-shot tasks with Q queries per class, all at once.

    Returns positions into ``labels``: classes ``(E, N)``, support ``(E, N, K)``, query ``(E, N, Q)``.
    Support and query of one class never share an item.
    """
    for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    table = ClassTable.from_labels(labels)
    eligible = np.flatnonzero(table.counts >= k_shot + n_query)
    if len(eligible) < n_way:
        short = np.flatnonzero((table.counts > 0) & (table.counts < k_shot + n_query))
        hint = f"; class {short[0]} has only {table.counts[short[0]]} items" if len(short) else ""
        raise ValueError(
            f"n_way={n_way} needs {n_way} classes with at least k_shot + n_query = "
            f"{k_shot + n_query} items, but only {len(eligible)} have that many{hint}"
        )
    rng = np.random.default_rng(seed)
    picks = np.argsort(rng.random((episodes, len(eligible))), axis=1)[:, :n_way]
    classes = eligible[picks]
    items = table.draw(rng, classes, k_shot + n_query)
    return classes, items[..., :k_shot], items[..., k_shot:]


class PairSampler:
    """Balanced same/different pairs, ``batch_size`` per batch, for ``batches`` batches.

    Half of each batch (rounded down) are same-class pairs of two distinct items, the rest are
    pairs from two different classes drawn uniformly. Iterating yields ``(first, second, same)``:
    two ``(B,)`` int64 position arrays and a ``(B,)`` bool array. Iterating twice gives the same
    batches.
    """

    def __init__(
        self, labels: torch.Tensor | np.ndarray, batch_size: int, batches: int, seed: int
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}")
        if batches < 1:
            raise ValueError(f"batches must be at least 1, got {batches}")
        self.table = ClassTable.from_labels(labels)
        self.pairable = np.flatnonzero(self.table.counts >= 2)
        self.present = np.flatnonzero(self.table.counts >= 1)
        if len(self.pairable) < 1 or len(self.present) < 2:
            raise ValueError(
                "pairs need at least one class with two items and at least two classes; "
                f"got {len(self.present)} classes, {len(self.pairable)} with two or more items"
            )
        self.batch_size = batch_size
        self.batches = batches
        self.seed = seed

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        rng = np.random.default_rng(self.seed)
        for _ in range(self.batches):
            yield self.draw(rng, self.batch_size)

    def draw(
        self, rng: np.random.Generator, count: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batch of ``count`` pairs drawn with ``rng``."""
        n_same = count // 2
        n_diff = count - n_same
        same_classes = rng.choice(self.pairable, size=n_same)
        same_items = self.table.draw(rng, same_classes, 2)
        first_class = rng.choice(self.present, size=n_diff)
        # Shift by 1..C-1 positions in the list of present classes: uniform over the other classes.
        where = np.searchsorted(self.present, first_class)
        shift = rng.integers(1, len(self.present), size=n_diff)
        second_class = self.present[(where + shift) % len(self.present)]
        first = self.table.draw(rng, first_class, 1)[:, 0]
        second = self.table.draw(rng, second_class, 1)[:, 0]
        return (
            np.concatenate([same_items[:, 0], first]),
            np.concatenate([same_items[:, 1], second]),
            np.concatenate([np.ones(n_same, dtype=bool), np.zeros(n_diff, dtype=bool)]),
        )
