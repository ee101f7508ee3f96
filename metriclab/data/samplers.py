"""Seeded, vectorised class samplers: N-way K-shot episodes and P×K class-balanced batches.

Every sampler takes a ``seed`` and draws from its own ``numpy.random.Generator``, so the same seed
gives the same indices on any machine. Episodes are drawn ``CHUNK`` at a time as a few array
operations (see :mod:`metriclab.data.class_table`), so ``sample_episodes`` and iterating an
:class:`EpisodeSampler` with the same seed give the same episodes. Episodic training follows
Vinyals et al. (2016) and Snell et al. (2017); P×K batches follow Hermans et al. (2017).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Sampler

from metriclab.data.class_table import (
    ClassTable,
    Pools,
    check_count,
    check_shard,
    episode_rng,
)
from metriclab.data.pair_samplers import PairSampler, TripletSampler

__all__ = [
    "ClassBalancedSampler",
    "ClassTable",
    "Episode",
    "EpisodeSampler",
    "PairSampler",
    "TripletSampler",
    "sample_episodes",
    "split_episode",
]

Labels = torch.Tensor | np.ndarray
#: Episodes drawn per vectorised step; part of the sampling scheme, so changing it changes episodes.
CHUNK = 1024


@dataclass(frozen=True)
class ClassDraw:
    """Validated tables for drawing ``n_way`` classes × ``per_class`` distinct items, many at a time."""

    table: ClassTable
    pools: Pools
    n_way: int
    per_class: int

    @classmethod
    def build(
        cls,
        labels: Labels,
        n_way: int,
        per_class: int,
        names: tuple[str, str],
        groups: Labels | None = None,
        class_names: Sequence[str] | None = None,
        group_names: Sequence[str] = (),
    ) -> ClassDraw:
        """``names`` are the user-facing names of ``n_way`` and ``per_class`` for error messages."""
        table = ClassTable.from_labels(labels)
        table.require(per_class, names[1], class_names)
        present = np.flatnonzero(table.counts > 0)
        if n_way > len(present):
            raise ValueError(
                f"{names[0]}={n_way} exceeds the {len(present)} classes; "
                f"choose {names[0]} between 1 and {len(present)}"
            )
        pools = Pools.build(present, len(table.counts), groups, group_names)
        group, size = pools.largest()
        if size < n_way:
            raise ValueError(
                f"{names[0]}={n_way} exceeds the classes of every group: the largest group, "
                f"{group!r}, has {size}; lower {names[0]} to at most {size} or draw across groups"
            )
        return cls(table, pools, n_way, per_class)

    def draw(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Classes ``(count, N)`` and items ``(count, N, per_class)`` of ``count`` draws."""
        pools = self.pools.choose(rng, count, self.n_way)
        classes = self.pools.distinct(rng, pools, self.n_way)
        return classes, self.table.draw(rng, classes, self.per_class)

    def chunks(self, seed: int, epoch: int, count: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``count`` draws of epoch ``epoch``, ``CHUNK`` at a time."""
        rng = episode_rng(seed, epoch)
        for start in range(0, count, CHUNK):
            yield self.draw(rng, min(CHUNK, count - start))


def sample_episodes(
    labels: Labels,
    n_way: int,
    k_shot: int,
    n_query: int,
    episodes: int,
    seed: int,
    groups: Labels | None = None,
    class_names: Sequence[str] | None = None,
    group_names: Sequence[str] = (),
    epoch: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``episodes`` N-way K-shot tasks with Q queries per class, all at once.

    Returns positions into ``labels``: classes ``(E, N)``, support ``(E, N, K)``, query ``(E, N, Q)``.
    Classes are distinct within an episode; support and query never share an item. Every class
    needs at least K + Q items. With ``groups`` (``(C,)``, the group of each class, e.g. an
    alphabet) each episode takes all its classes from one group, drawn with probability
    proportional to its number of classes (see :meth:`Pools.choose`).
    """
    for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
        check_count(name, value)
    check_count("episodes", episodes)
    draw = ClassDraw.build(
        labels, n_way, k_shot + n_query, ("n_way", "k_shot + n_query"), groups, class_names,
        group_names,
    )  # fmt: skip
    parts = list(draw.chunks(seed, epoch, episodes))
    classes = np.concatenate([p[0] for p in parts])
    items = np.concatenate([p[1] for p in parts])
    return classes, items[..., :k_shot], items[..., k_shot:]


class Episode(NamedTuple):
    """One episode as tensors; targets are episode-local class indices ``0..N-1``.

    Attributes:
        support: ``(N·K, …)`` class-major (the K items of class 0 first).
        support_targets: ``(N·K,)`` int64.
        query: ``(N·Q, …)`` class-major.
        query_targets: ``(N·Q,)`` int64.
        classes: ``(N,)`` the data set labels of the episode's classes, or ``None`` without labels.
    """

    support: torch.Tensor
    support_targets: torch.Tensor
    query: torch.Tensor
    query_targets: torch.Tensor
    classes: torch.Tensor | None


def split_episode(
    items: torch.Tensor, n_way: int, k_shot: int, n_query: int, labels: torch.Tensor | None = None
) -> Episode:
    """Split ``(N·(K+Q), …)`` items in :class:`EpisodeSampler` order into an :class:`Episode`.

    ``labels`` ``(N·(K+Q),)``, if given, must be constant within each class block.
    """
    per_class = k_shot + n_query
    if items.shape[0] != n_way * per_class:
        raise ValueError(
            f"an episode of {n_way}-way {k_shot}-shot with {n_query} queries has "
            f"{n_way * per_class} items, got {items.shape[0]}; pass one batch of EpisodeSampler"
        )
    blocks = items.reshape(n_way, per_class, *items.shape[1:])
    classes = None
    if labels is not None:
        grid = torch.as_tensor(labels).reshape(n_way, per_class)
        if (grid != grid[:, :1]).any():
            raise ValueError(
                "episode items are not grouped by class; keep EpisodeSampler's order "
                "(use it as batch_sampler, without shuffling)"
            )
        classes = grid[:, 0]
    return Episode(
        support=blocks[:, :k_shot].flatten(0, 1),
        support_targets=torch.arange(n_way).repeat_interleave(k_shot),
        query=blocks[:, k_shot:].flatten(0, 1),
        query_targets=torch.arange(n_way).repeat_interleave(n_query),
        classes=classes,
    )


class EpisodeSampler(Sampler[list[int]]):
    """A batch sampler of N-way K-shot episodes: each batch is one episode's item positions.

    A batch lists ``N·(K+Q)`` positions class by class: for each class its K support items, then
    its Q queries (:func:`split_episode` and :meth:`collate` undo this). Iterating twice gives the
    same episodes; :meth:`set_epoch` moves to another fixed set, as ``DistributedSampler`` does.
    Epoch 0 gives exactly the episodes of :func:`sample_episodes` with the same arguments.
    With ``world_size`` processes, rank ``r`` takes episodes ``r, r + world_size, …``.

    Args:
        labels: ``(M,)`` class index of each item.
        groups: optional ``(C,)`` group of each class; each episode then stays within one group.
        class_names, group_names: names used in error messages.
    """

    def __init__(
        self,
        labels: Labels,
        n_way: int,
        k_shot: int,
        n_query: int,
        episodes: int,
        seed: int,
        groups: Labels | None = None,
        *,
        class_names: Sequence[str] | None = None,
        group_names: Sequence[str] = (),
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
            check_count(name, value)
        check_count("episodes", episodes)
        check_shard(rank, world_size, episodes, "episodes")
        self.draw = ClassDraw.build(
            labels,
            n_way,
            k_shot + n_query,
            ("n_way", "k_shot + n_query"),
            groups,
            class_names,
            group_names,
        )
        episode_rng(seed)  # validates the seed now rather than at the first iteration
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.episodes, self.seed, self.epoch = episodes, seed, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        """Use the episodes of ``epoch`` from now on (epoch 0 is the default)."""
        episode_rng(self.seed, epoch)
        self.epoch = epoch

    def __len__(self) -> int:
        return self.episodes // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        start = 0
        for _classes, items in self.draw.chunks(self.seed, self.epoch, self.episodes):
            flat = items.reshape(len(items), -1)
            yield from flat[(self.rank - start) % self.world_size :: self.world_size].tolist()
            start += len(items)

    def split(self, items: torch.Tensor, labels: torch.Tensor | None = None) -> Episode:
        """Split one episode's ``(N·(K+Q), …)`` items into an :class:`Episode`."""
        return split_episode(items, self.n_way, self.k_shot, self.n_query, labels)

    def collate(self, samples: Sequence[tuple[torch.Tensor, int | torch.Tensor]]) -> Episode:
        """``collate_fn`` for a ``DataLoader(dataset, batch_sampler=sampler)`` of ``(x, label)`` items."""
        items = torch.stack([torch.as_tensor(x) for x, _ in samples])
        labels = torch.as_tensor([int(y) for _, y in samples], dtype=torch.int64)
        return self.split(items, labels)


class ClassBalancedSampler(Sampler[list[int]]):
    """P classes × K items per batch, for triplet mining (Hermans et al. 2017, "batch hard").

    Each batch lists ``n_classes · n_samples`` positions class by class; every class needs
    ``n_samples`` items. With ``groups`` a batch takes all its classes from one group (harder
    negatives). With ``world_size`` processes every rank draws the same global batch and keeps a
    contiguous block of ``n_classes / world_size`` whole classes, so each rank can mine positives.
    """

    def __init__(
        self,
        labels: Labels,
        n_classes: int,
        n_samples: int,
        batches: int,
        seed: int,
        groups: Labels | None = None,
        *,
        class_names: Sequence[str] | None = None,
        group_names: Sequence[str] = (),
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        check_count("n_classes", n_classes)
        check_count("n_samples", n_samples)
        check_count("batches", batches)
        check_shard(rank, world_size, n_classes, "n_classes")
        self.draw = ClassDraw.build(
            labels,
            n_classes,
            n_samples,
            ("n_classes", "n_samples"),
            groups,
            class_names,
            group_names,
        )
        episode_rng(seed)
        self.batches, self.seed, self.epoch = batches, seed, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        """Use the batches of ``epoch`` from now on (epoch 0 is the default)."""
        episode_rng(self.seed, epoch)
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        share = self.draw.n_way // self.world_size
        mine = slice(self.rank * share, (self.rank + 1) * share)
        for _classes, items in self.draw.chunks(self.seed, self.epoch, self.batches):
            yield from items[:, mine].reshape(len(items), -1).tolist()
