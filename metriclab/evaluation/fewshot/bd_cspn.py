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
import torch.nn.functional as F

from metriclab.evaluation.episodes import SCORERS, EpisodeScorer
from metriclab.evaluation.method import EpisodeMethod, ScorerContext, check_positive


def class_major_cosine(prototypes: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Cosine similarity ``(E, N, Q)``, classes before queries, of ``(E, N, D)`` prototypes and
    ``(E, Q, D)`` queries.

    Why this layout: every later step reduces over the N classes, and torch's CPU reductions and
    softmax over a short last dimension (N = 5) run ~10× slower than over a middle one. Queries
    are divided by their norms after the GEMM rather than normalised first, which saves a pass
    over the ``(E, Q, D)`` queries.
    """
    dots = torch.bmm(F.normalize(prototypes, dim=-1), query.transpose(1, 2))
    return dots / query.norm(dim=-1).clamp_min(1e-12).unsqueeze(1)


def rectified_prototypes(
    support: torch.Tensor, query: torch.Tensor, temperature: float
) -> torch.Tensor:
    """BD-CSPN prototypes ``(E, N, D)`` from support ``(E, N, K, D)`` and queries ``(E, Q, D)``."""
    n_way = support.shape[1]
    prototypes = support.mean(dim=2)
    shift = support.mean(dim=(1, 2)) - query.mean(dim=1)  # ξ (E, D)
    unit = F.normalize(prototypes, dim=-1)
    # Support weights: each item's own class only (the one-hot mask of Eq. 5).
    own = (support * unit.unsqueeze(2)).sum(-1)
    support_w = (temperature * own / support.norm(dim=-1).clamp_min(1e-12)).exp()  # (E, N, K)
    # cos(q + ξ, p̂) = (p̂·q + p̂·ξ) / ‖q + ξ‖ with ‖q + ξ‖² = ‖q‖² + 2 q·ξ + ‖ξ‖²: one GEMM of the
    # raw queries against the unit prototypes and ξ, so the shifted (E, Q, D) queries are never
    # written. Class-major (E, N, Q), so the max over classes reduces a middle dimension.
    dots = torch.bmm(torch.cat([unit, shift.unsqueeze(1)], dim=1), query.transpose(1, 2))
    squared = torch.linalg.vector_norm(query, dim=-1).square()  # (E, Q)
    shifted_norm = squared + 2 * dots[:, -1] + shift.pow(2).sum(-1, keepdim=True)
    cos = dots[:, :-1] + (unit @ shift.unsqueeze(-1))  # (E, N, Q), over ‖q + ξ‖ below
    cos = cos / shifted_norm.clamp_min(1e-24).sqrt().unsqueeze(1)
    query_w, labels = (temperature * cos).exp().max(dim=1)  # (E, Q)
    # Each query's weight in the row of its pseudo-label: (E, N, Q), so one GEMM sums the queries.
    classes = torch.arange(n_way, device=support.device).view(1, n_way, 1)
    members = torch.where(labels.unsqueeze(1) == classes, query_w.unsqueeze(1), 0.0)
    mass = members.sum(dim=2)  # (E, N)
    total = support_w.sum(dim=2) + mass
    weighted = (support_w.unsqueeze(-1) * support).sum(dim=2) + torch.bmm(members, query)
    weighted = weighted + mass.unsqueeze(-1) * shift.unsqueeze(1)  # Σ w (q + ξ) = Σ w q + ξ Σ w
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
        prototypes = rectified_prototypes(support, query, self.temperature)
        return class_major_cosine(prototypes, query).transpose(1, 2)


def _build(context: ScorerContext) -> BDCSPN:
    return BDCSPN()


SCORERS.register("bd_cspn", EpisodeScorer(prototype=True, transductive=True, method=_build))
