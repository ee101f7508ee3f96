"""Learned comparators as episode scorers: ``eval.scorer=matching`` and ``relation``.

The comparator is the model's own (``model.comparator``, trained by ``train.objective=matching``
/ ``relation``; :mod:`metriclab.models.comparators`), rebuilt from the run folder's checkpoint.
Both are inductive: each query is scored from the support alone (Matching Networks' full-context
embeddings read the support, never the other queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from metriclab.evaluation.episodes import SCORERS, EpisodeScorer, MethodFactory
from metriclab.evaluation.method import EpisodeMethod, ScorerContext
from metriclab.models.comparators import Comparator, MatchingComparator, RelationComparator


@dataclass(frozen=True, eq=False)
class ComparatorScorer(EpisodeMethod):
    """Scores ``(E, Q, N)`` of a learned comparator: Matching Networks' log-probabilities or
    Relation Networks' relation scores (Vinyals et al. 2016; Sung et al. 2018)."""

    comparator: Comparator
    transductive: ClassVar[bool] = False

    @property
    def label(self) -> str:  # type: ignore[override]
        if isinstance(self.comparator, MatchingComparator):
            return "matching networks" + (" (FCE)" if self.comparator.fce else "")
        return f"{type(self.comparator).__name__.removesuffix('Comparator').lower()} networks"

    @torch.no_grad()
    def __call__(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        comparator = self.comparator
        was_training = comparator.training
        comparator.eval()
        try:
            parameter = next(comparator.parameters(), None)
            device = support.device if parameter is None else parameter.device
            scores = comparator(support.to(device), query.to(device))
        finally:
            comparator.train(was_training)
        return scores.to(support.device)


def _builder(name: str, kind: type[Comparator]) -> MethodFactory:
    """The scorer factory of ``name``: the context's comparator if it is a ``kind``."""

    def build(context: ScorerContext) -> ComparatorScorer:
        if not isinstance(context.comparator, kind):
            has = type(context.comparator).__name__ if context.comparator is not None else "none"
            raise ValueError(
                f"scorer {name!r} scores with the model's learned {name} comparator and this "
                f"model has {has}; train it with train.objective={name} "
                f"model.comparator={name}, or choose another eval.scorer"
            )
        return ComparatorScorer(context.comparator)

    return build


for _name, _kind in (("matching", MatchingComparator), ("relation", RelationComparator)):
    SCORERS.register(_name, EpisodeScorer(prototype=False, method=_builder(_name, _kind)))
