"""Seeded, vectorised pair and triplet samplers (Siamese: Koch et al. 2015; triplet: Schroff et al. 2015).

Each batch is drawn whole with one ``numpy.random.Generator``; :meth:`set_epoch` moves to another
fixed sequence of batches. With ``world_size`` processes every rank draws the same global batch
and keeps the positions ``rank, rank + world_size, …`` of it, so the ranks together see exactly
the global batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from metriclab.data.class_table import ClassTable, Pools, check_count, check_shard, episode_rng

Labels = torch.Tensor | np.ndarray


class _BatchSampler:
    """Shared bookkeeping: validation, epochs, sharding of ``(B,)`` arrays."""

    def __init__(
        self,
        labels: Labels,
        batch_size: int,
        batches: int,
        seed: int,
        groups: Labels | None,
        group_names: Sequence[str],
        rank: int,
        world_size: int,
        min_batch: int,
    ) -> None:
        check_count("batch_size", batch_size, minimum=min_batch)
        check_count("batches", batches)
        check_shard(rank, world_size, batch_size, "batch_size")
        episode_rng(seed)
        self.table = ClassTable.from_labels(labels)
        present = np.flatnonzero(self.table.counts >= 1)
        self.pools = Pools.build(present, len(self.table.counts), groups, group_names)
        # Classes that can start a different-class pair: their pool has another class.
        self.mixable = present[self.pools.sizes[self.pools.pool_of[present]] >= 2]
        self.within_group = groups is not None
        self.batch_size, self.batches, self.seed, self.epoch = batch_size, batches, seed, 0
        self.rank, self.world_size = rank, world_size

    def _no_mixable(self) -> ValueError:
        group, size = self.pools.largest()
        return ValueError(
            f"within-group sampling needs a group with at least two classes, but the largest "
            f"group, {group!r}, has {size}; pass groups=None or use data with larger groups"
        )

    def set_epoch(self, epoch: int) -> None:
        """Use the batches of ``epoch`` from now on (epoch 0 is the default)."""
        episode_rng(self.seed, epoch)
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        rng = episode_rng(self.seed, self.epoch)
        for _ in range(self.batches):
            arrays = self.draw(rng, self.batch_size)
            yield tuple(a[self.rank :: self.world_size] for a in arrays)

    def draw(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, ...]:
        raise NotImplementedError


class PairSampler(_BatchSampler):
    """Balanced same/different pairs, ``batch_size`` per batch, for ``batches`` batches.

    Half of each batch (rounded down) are same-class pairs of two distinct items, the rest are
    pairs of two different classes: the first class uniform, the second uniform over the others
    (over the other classes of the same group when ``groups``, ``(C,)``, is given: harder
    negatives, e.g. characters of one alphabet). Iterating yields ``(first, second, same)``: two
    ``(B,)`` int64 position arrays and a ``(B,)`` bool array. Iterating twice gives the same batches.
    """

    def __init__(
        self,
        labels: Labels,
        batch_size: int,
        batches: int,
        seed: int,
        groups: Labels | None = None,
        *,
        group_names: Sequence[str] = (),
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(
            labels, batch_size, batches, seed, groups, group_names, rank, world_size, min_batch=2
        )
        self.pairable = np.flatnonzero(self.table.counts >= 2)
        present = int((self.table.counts >= 1).sum())
        if len(self.pairable) < 1 or present < 2:
            raise ValueError(
                "pairs need at least one class with two items and at least two classes; "
                f"got {present} classes, {len(self.pairable)} with two or more items"
            )
        if not len(self.mixable):
            raise self._no_mixable()

    def draw(
        self, rng: np.random.Generator, count: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One global batch of ``count`` pairs drawn with ``rng``: same pairs first."""
        n_same = count // 2
        n_diff = count - n_same
        same_classes = rng.choice(self.pairable, size=n_same)
        same_items = self.table.draw(rng, same_classes, 2)
        first_class = rng.choice(self.mixable, size=n_diff)
        second_class = self.pools.other(rng, first_class)
        first = self.table.draw(rng, first_class, 1)[:, 0]
        second = self.table.draw(rng, second_class, 1)[:, 0]
        return (
            np.concatenate([same_items[:, 0], first]),
            np.concatenate([same_items[:, 1], second]),
            np.concatenate([np.ones(n_same, dtype=bool), np.zeros(n_diff, dtype=bool)]),
        )


class TripletSampler(_BatchSampler):
    """``(anchor, positive, negative)`` position triples, ``batch_size`` per batch.

    The anchor class is uniform over the classes with two or more items (whose group has another
    class, when ``groups`` is given); anchor and positive are two distinct items of it; the
    negative is an item of another class, uniform (of the same group with ``groups``). Iterating
    yields three ``(B,)`` int64 arrays.
    """

    def __init__(
        self,
        labels: Labels,
        batch_size: int,
        batches: int,
        seed: int,
        groups: Labels | None = None,
        *,
        group_names: Sequence[str] = (),
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(
            labels, batch_size, batches, seed, groups, group_names, rank, world_size, min_batch=1
        )
        if int((self.table.counts >= 1).sum()) < 2 or not (self.table.counts >= 2).any():
            raise ValueError(
                "triplets need at least one class with two items and at least two classes; "
                f"got {int((self.table.counts >= 1).sum())} classes, "
                f"{int((self.table.counts >= 2).sum())} with two or more items"
            )
        self.anchorable = self.mixable[self.table.counts[self.mixable] >= 2]
        if not len(self.anchorable):
            raise ValueError(
                "within-group triplets need a class with two items in a group with another "
                "class, and no group has one; pass groups=None or use data with larger groups"
            )

    def draw(
        self, rng: np.random.Generator, count: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One global batch of ``count`` triples drawn with ``rng``."""
        anchor_class = rng.choice(self.anchorable, size=count)
        pair = self.table.draw(rng, anchor_class, 2)
        negative = self.table.draw(rng, self.pools.other(rng, anchor_class), 1)[:, 0]
        return pair[:, 0], pair[:, 1], negative
