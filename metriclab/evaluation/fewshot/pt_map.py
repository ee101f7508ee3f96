"""PT-MAP: power transform, then MAP estimation of class centres by optimal transport.

Hu, Gripon & Pateux, "Leveraging the Feature Distribution in Transfer-based Few-Shot Learning"
(ICANN 2021), https://arxiv.org/abs/2006.03806. Transductive.

1. Power transform (paper Eq. 1): ``f(x) = (x + ε)^β`` with ``β = 0.5`` on non-negative
   features (negative values are clipped to 0 first, as easyfsl does), then unit L2 norm.
2. Repeat ``steps`` times: soft assignments by Sinkhorn-Knopp on ``exp(−λ‖f(q) − c_n‖²)`` with
   every query carrying mass 1 and every class ``Q / N`` (paper Eq. 3); centres move a fraction
   ``lr`` towards the assignment-weighted mean of support (one-hot) and queries (Eq. 6).
3. The final soft assignments are the scores.

easyfsl skips the L2 normalisation of step 1 (``normalize=False`` reproduces it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from metriclab.evaluation.episodes import SCORERS, EpisodeScorer
from metriclab.evaluation.method import (
    EpisodeMethod,
    ScorerContext,
    check_positive,
    check_steps,
    squared_l2,
)

MAX_SINKHORN_ITERATIONS = 1000


def power_transform(x: torch.Tensor, beta: float, normalize: bool) -> torch.Tensor:
    """``(relu(x) + 1e-6)^β`` ``(..., D)``, scaled to unit L2 norm when ``normalize``."""
    transformed = (x.relu() + 1e-6).pow(beta)
    return F.normalize(transformed, dim=-1) if normalize else transformed


def sinkhorn(cost: torch.Tensor, lam: float, tolerance: float = 1e-6) -> torch.Tensor:
    """Transport plans ``(E, Q, N)`` for costs ``(E, Q, N)``: rows sum to 1, columns to Q // N.

    Sinkhorn-Knopp as easyfsl and the paper run it (normalise rows, then columns; stop an
    episode when one iteration moves its row sums by less than ``tolerance``), kept in the
    scaling form ``plan = diag(u) · K · diag(v)`` so an iteration costs two passes over K
    instead of rewriting the plan. Iterates in float64: in float32 the row sums jitter by ~1e-7
    per step and the tolerance may never be met. Each row's cost is shifted to start at 0: the
    plan does not change when a row of K is scaled, and ``exp(−λ·cost)`` cannot underflow to a
    row of zeros.
    """
    per_class = cost.shape[1] // cost.shape[2]
    cost = cost.double()
    kernel = torch.exp(-lam * (cost - cost.amin(dim=2, keepdim=True)))
    kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
    u = torch.ones(kernel.shape[:2], dtype=kernel.dtype, device=kernel.device)
    v = torch.ones(kernel.shape[::2], dtype=kernel.dtype, device=kernel.device)
    rows = kernel.sum(dim=2)  # row sums of the current plan, u ⊙ (K v)
    active = torch.ones(len(cost), dtype=torch.bool, device=cost.device)
    for _ in range(MAX_SINKHORN_ITERATIONS):
        u_next = u / (rows + 1e-10)
        columns = v * (kernel * u_next.unsqueeze(2)).sum(dim=1)
        v_next = v * per_class / (columns + 1e-10)
        rows_next = u_next * (kernel * v_next.unsqueeze(1)).sum(dim=2)
        moved = (rows - rows_next).abs().amax(dim=1)
        keep = active.unsqueeze(1)
        u, v = torch.where(keep, u_next, u), torch.where(keep, v_next, v)
        rows = torch.where(keep, rows_next, rows)
        active &= moved >= tolerance
        if not active.any():
            break
    return (u.unsqueeze(2) * kernel * v.unsqueeze(1)).float()


@dataclass(frozen=True)
class PTMAP(EpisodeMethod):
    """Soft assignments ``(E, Q, N)`` of the queries after ``steps`` centre updates."""

    steps: int = 10
    lr: float = 0.2
    lambda_regularization: float = 10.0
    power: float = 0.5
    normalize: bool = True
    transductive: ClassVar[bool] = True
    label: ClassVar[str] = "pt_map (power transform, Sinkhorn)"

    def __post_init__(self) -> None:
        check_steps("PTMAP", steps=self.steps)
        check_positive(
            "PTMAP", lr=self.lr, lambda_regularization=self.lambda_regularization, power=self.power
        )

    def __call__(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        e, n_way, k_shot, _ = support.shape
        if query.shape[1] % n_way:
            raise ValueError(
                f"PTMAP: its transport gives every class Q / N queries, but {query.shape[1]} "
                f"queries do not split evenly over {n_way} classes"
            )
        support = power_transform(support, self.power, self.normalize)
        query = power_transform(query, self.power, self.normalize)
        centres = support.mean(dim=2)
        features = torch.cat([support.flatten(1, 2), query], dim=1)
        one_hot = torch.eye(n_way, dtype=query.dtype, device=query.device)
        support_assignments = one_hot.repeat_interleave(k_shot, dim=0).expand(e, -1, -1)
        for _ in range(self.steps):
            soft = sinkhorn(squared_l2(query, centres), self.lambda_regularization)
            assignments = torch.cat([support_assignments, soft], dim=1)  # (E, NK + Q, N)
            target = assignments.transpose(1, 2) @ features / assignments.sum(1).unsqueeze(-1)
            centres = centres + self.lr * (target - centres)
        return sinkhorn(squared_l2(query, centres), self.lambda_regularization)


def _build(context: ScorerContext) -> PTMAP:
    return PTMAP()


SCORERS.register("pt_map", EpisodeScorer(prototype=True, transductive=True, method=_build))
