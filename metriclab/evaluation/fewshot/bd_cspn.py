"""BD-CSPN: prototype rectification by feature shifting and pseudo-labelled queries.

Liu, Song & Qin, "Prototype Rectification for Few-Shot Learning" (ECCV 2020),
https://arxiv.org/abs/1911.10713. Transductive: the queries of an episode move its prototypes.

1. Cross-class bias: shift every query by ``ξ = mean(support) − mean(query)``.
2. Intra-class bias: pseudo-label each shifted query by its most similar prototype; the
   rectified prototype of class n is ``Σ_i w_i x_i`` over its support items and the queries
   labelled n, with ``w_i ∝ exp(ε · cos(x_i, p_n))`` normalised over that set (paper Eq. 5).
3. Queries (unshifted) go to the rectified prototype of highest cosine.

Differences from the paper, as in easyfsl: every query is pseudo-labelled (the paper keeps the
Z most confident per class). The paper's ``ε = 10`` is the default ``temperature``; easyfsl
uses ``exp(cos)``, i.e. ``temperature = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from metriclab.evaluation.episodes import SCORERS, EpisodeScorer
from metriclab.evaluation.method import EpisodeMethod, ScorerContext, check_positive, cosine_scores


def rectified_prototypes(
    support: torch.Tensor, query: torch.Tensor, temperature: float
) -> torch.Tensor:
    """BD-CSPN prototypes ``(E, N, D)`` from support ``(E, N, K, D)`` and queries ``(E, Q, D)``."""
    e, n_way, k_shot, dim = support.shape
    prototypes = support.mean(dim=2)
    shifted = query + (support.mean(dim=(1, 2)) - query.mean(dim=1)).unsqueeze(1)
    # Support weights: each item's own class only (the one-hot mask of Eq. 5).
    own = cosine_scores(support.flatten(1, 2), prototypes).unflatten(1, (n_way, k_shot))
    support_w = (temperature * own.diagonal(dim1=1, dim2=3)).exp().transpose(1, 2)  # (E, N, K)
    query_scores = (temperature * cosine_scores(shifted, prototypes)).exp()  # (E, Q, N)
    query_w, labels = query_scores.max(dim=-1)  # (E, Q)
    total = support_w.sum(dim=2).scatter_add(1, labels, query_w)  # (E, N)
    weighted = (support_w.unsqueeze(-1) * support).sum(dim=2)
    weighted = weighted.scatter_add(
        1, labels.unsqueeze(-1).expand(e, -1, dim), query_w.unsqueeze(-1) * shifted
    )
    return weighted / total.unsqueeze(-1)


@dataclass(frozen=True)
class BDCSPN(EpisodeMethod):
    """Cosine scores ``(E, Q, N)`` to the rectified prototypes; ``temperature`` is the paper's ε."""

    temperature: float = 10.0
    transductive: ClassVar[bool] = True
    label: ClassVar[str] = "bd_cspn (rectified prototypes, cosine)"

    def __post_init__(self) -> None:
        check_positive("BDCSPN", temperature=self.temperature)

    def __call__(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return cosine_scores(query, rectified_prototypes(support, query, self.temperature))


def _build(context: ScorerContext) -> BDCSPN:
    return BDCSPN()


SCORERS.register("bd_cspn", EpisodeScorer(prototype=True, transductive=True, method=_build))
