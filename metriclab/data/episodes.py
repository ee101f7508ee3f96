"""`EpisodeSet`: a fixed collection of N-way K-shot episodes that refers to items by stable id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from metriclab.data.episode_io import (
    encode_episodes,
    fingerprint,
    lines_sha256,
    read_episodes,
    write_episodes,
)
from metriclab.data.images import LabeledImages
from metriclab.data.samplers import sample_episodes

#: Meta keys that :meth:`EpisodeSet.summary` shows on other lines or leaves to the file.
_SHOWN_ELSEWHERE = (
    "data", "command", "config_data", "sampler", "n_way", "k_shot", "n_query", "episodes",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class EpisodeSet:
    """E episodes of N classes, K support and Q query items per class.

    Attributes:
        classes: ``(E, N)`` class names.
        support: ``(E, N, K)`` item ids.
        query: ``(E, N, Q)`` item ids.
        meta: how the set was made (data description, generator parameters, seed); JSON values.
    """

    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.support.ndim != 3 or self.query.ndim != 3 or self.classes.ndim != 2:
            raise ValueError(
                "episode arrays must be classes (E, N), support (E, N, K), query (E, N, Q)"
            )
        if (
            self.support.shape[:2] != self.classes.shape
            or self.query.shape[:2] != self.classes.shape
        ):
            raise ValueError(
                f"support {self.support.shape} and query {self.query.shape} must start with the "
                f"classes shape {self.classes.shape}"
            )

    @property
    def n_episodes(self) -> int:
        return self.classes.shape[0]

    @property
    def n_way(self) -> int:
        return self.classes.shape[1]

    @property
    def k_shot(self) -> int:
        return self.support.shape[2]

    @property
    def n_query(self) -> int:
        return self.query.shape[2]

    @property
    def item_ids(self) -> list[str]:
        """The sorted distinct item ids the set uses (its vocabulary on disk)."""
        return np.unique(np.concatenate([self.support.ravel(), self.query.ravel()])).tolist()

    @property
    def fingerprint(self) -> str:
        """``sha256:`` of :attr:`item_ids`, as in the file header."""
        return fingerprint(self.item_ids)

    @property
    def episodes_sha256(self) -> str:
        """sha256 of the episode lines as :meth:`save` writes them (the header's ``episodes_sha256``)."""
        return lines_sha256(encode_episodes(self.classes, self.support, self.query)[2])

    @classmethod
    def sample(
        cls,
        data: LabeledImages,
        n_way: int,
        k_shot: int,
        n_query: int,
        episodes: int,
        seed: int,
        within_group: bool = False,
    ) -> EpisodeSet:
        """Draw a seeded episode set from ``data`` (see :func:`sample_episodes`).

        ``within_group`` takes each episode's classes from one of ``data.groups`` (e.g. one
        Omniglot alphabet, the harder protocol of Lake et al. 2015).
        """
        if within_group and data.groups is None:
            raise ValueError(
                f"within_group needs data with groups (e.g. Omniglot alphabets), and "
                f"{data.description or 'the data'} has none; drop within_group"
            )
        classes, support, query = sample_episodes(
            data.labels,
            n_way,
            k_shot,
            n_query,
            episodes,
            seed,
            groups=data.groups if within_group else None,
            class_names=data.class_names,
            group_names=data.group_names,
        )
        ids = np.asarray(data.item_ids)
        names = np.asarray(data.class_names)
        return cls(
            classes=names[classes],
            support=ids[support],
            query=ids[query],
            meta={
                "data": data.description,
                "n_way": n_way,
                "k_shot": k_shot,
                "n_query": n_query,
                "episodes": episodes,
                "seed": seed,
                "within_group": within_group,
                "sampler": "metriclab.data.sample_episodes",
            },
        )

    @cached_property
    def _vocabulary(self) -> tuple[np.ndarray, np.ndarray]:
        """The sorted distinct item ids ``(V,)`` and, for support then query items flattened, the
        index of each in them ``(E·N·K + E·N·Q,)``; computed once, as the set is frozen."""
        items = np.concatenate([self.support.ravel(), self.query.ravel()]).astype(str)
        vocabulary, inverse = np.unique(items, return_inverse=True)
        return vocabulary, inverse.reshape(-1)

    def resolve(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the support ``(E, N, K)`` and query ``(E, N, Q)`` items within ``item_ids``.

        A duplicated id resolves to its last position. Raises ``ValueError`` naming the first
        (in sorted order) id that ``item_ids`` lacks.
        """
        # Only the V distinct ids are searched, in the data's sorted ids; a per-item dict lookup
        # over all E·N·(K+Q) items was a third of the time of episodic evaluation.
        vocabulary, inverse = self._vocabulary
        ids = np.asarray(item_ids, dtype=str)
        order = np.argsort(ids, kind="stable")  # stable: equal ids keep their order, last wins
        ranked = ids[order]
        slot = np.searchsorted(ranked, vocabulary, side="right") - 1
        found = slot >= 0
        if len(ranked):
            found &= ranked[slot.clip(0)] == vocabulary
        if not found.all():
            raise ValueError(
                f"episode item {vocabulary[~found][0].item()!r} is not in the data; evaluate on "
                f"the data set the episodes were made from ({self.meta.get('data', 'unknown')})"
            )
        positions = order[slot].astype(np.int64)[inverse]
        split = self.support.size
        return (
            positions[:split].reshape(self.support.shape),
            positions[split:].reshape(self.query.shape),
        )

    def check(self, data: LabeledImages, source: str = "episode set") -> None:
        """Raise unless every item is in ``data`` under the class the episodes give it."""
        try:
            support, query = self.resolve(data.item_ids)
        except ValueError as failure:
            raise ValueError(f"{source}: {failure}") from None
        names = np.asarray(data.class_names)
        labels = data.labels.numpy()
        for positions, ids in ((support, self.support), (query, self.query)):
            found = names[labels[positions]]
            wrong = np.argwhere(found != self.classes[..., None])
            if len(wrong):
                e, n, k = wrong[0]
                raise ValueError(
                    f"{source}: item {ids[e, n, k]!r} is class {found[e, n, k]!r} in the data "
                    f"but {self.classes[e, n]!r} in episode {e}; use the data set the episodes "
                    "were made from"
                )

    def save(self, path: str | Path) -> str:
        """Write the set atomically as a JSON-lines file (see :mod:`metriclab.data.episode_io`).

        Returns the item fingerprint.
        """
        return write_episodes(path, self.classes, self.support, self.query, self.meta)

    @classmethod
    def load(cls, path: str | Path, data: LabeledImages | None = None) -> EpisodeSet:
        """Read a set written by :meth:`save`; with ``data``, check every item exists in it."""
        header, classes, support, query = read_episodes(path)
        episodes = cls(classes, support, query, header["meta"])
        if data is not None:
            episodes.check(data, source=str(path))
        return episodes

    def summary(self, title: str = "episode set") -> str:
        """A few lines on what the set holds and how it was made."""
        used, counts = np.unique(self.classes, return_counts=True)
        shown = ", ".join(used[:10].tolist()) + (", …" if len(used) > 10 else "")
        made = {k: v for k, v in self.meta.items() if k not in _SHOWN_ELSEWHERE}
        lines = [
            f"{title}: {self.n_episodes} episodes, {self.n_way}-way {self.k_shot}-shot, "
            f"{self.n_query} queries per class",
            f"  data: {self.meta.get('data', 'unknown')}",
            f"  made with: {', '.join(f'{k}={v}' for k, v in made.items()) or 'unknown'}",
            f"  classes: {len(used)} ({shown}); each in {counts.min()}–{counts.max()} episodes",
            f"  items: {len(self.item_ids)} distinct; fingerprint {self.fingerprint}",
            f"  episodes_sha256: {self.episodes_sha256}",
        ]
        if "command" in self.meta:
            lines.append(f"  command: {self.meta['command']}")
        return "\n".join(lines)
