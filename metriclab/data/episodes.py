"""`EpisodeSet`: a fixed collection of N-way K-shot episodes that refers to items by stable id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metriclab.data.images import LabeledImages
from metriclab.data.samplers import sample_episodes


@dataclass(frozen=True)
class EpisodeSet:
    """E episodes of N classes, K support and Q query items per class.

    Attributes:
        classes: ``(E, N)`` class names.
        support: ``(E, N, K)`` item ids.
        query: ``(E, N, Q)`` item ids.
        meta: how the set was made (data description, generator parameters, seed).
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

    @classmethod
    def sample(
        cls, data: LabeledImages, n_way: int, k_shot: int, n_query: int, episodes: int, seed: int
    ) -> EpisodeSet:
        """Draw a seeded episode set from ``data`` (see :func:`sample_episodes`)."""
        classes, support, query = sample_episodes(
            data.labels, n_way, k_shot, n_query, episodes, seed
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
            },
        )

    def resolve(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the support ``(E, N, K)`` and query ``(E, N, Q)`` items within ``item_ids``.

        Raises ``ValueError`` naming the first id that ``item_ids`` lacks.
        """
        lookup = {item: position for position, item in enumerate(item_ids)}
        try:
            support = np.vectorize(lookup.__getitem__, otypes=[np.int64])(self.support)
            query = np.vectorize(lookup.__getitem__, otypes=[np.int64])(self.query)
        except KeyError as missing:
            raise ValueError(
                f"episode item {missing.args[0]!r} is not in the data; evaluate on the data set "
                f"the episodes were made from ({self.meta.get('data', 'unknown')})"
            ) from None
        return support, query
