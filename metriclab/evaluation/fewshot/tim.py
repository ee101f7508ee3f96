"""TIM: transductive information maximisation (the gradient-descent form, TIM-GD).

Boudiaf, Ziko, Rony, Dolz, Piantanida & Ben Ayed, "Transductive Information Maximization For
Few-Shot Learning" (NeurIPS 2020), https://arxiv.org/abs/2008.11297. The prototypes (initially
the support means) are tuned by Adam on

    λ_CE · CE(support)  −  (α · H(Ŷ_Q)  −  β · H(Ŷ_Q | X_Q))

the support cross-entropy minus the mutual information between queries and their predicted
labels (marginal entropy H(Ŷ_Q) of the mean query prediction, conditional entropy the mean
per-query entropy), with logits ``temperature · cos(x, prototype)``.

Defaults and the cosine logits are easyfsl's (λ_CE = 1, α = 1, β = 0.1, τ = 10, 50 steps,
lr 1e-4); the paper uses ``−τ/2 · ‖x − w‖²`` logits with τ = 15, λ_CE = 0.1 and 1000 steps.
Adam is element-wise, so tuning all episodes' prototypes as one tensor on the sum of their
losses takes exactly the steps each episode would take alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from metriclab.evaluation.episodes import SCORERS, EpisodeScorer
from metriclab.evaluation.method import (
    EpisodeMethod,
    ScorerContext,
    check_positive,
    check_steps,
    cosine_scores,
)


def tim_loss(
    logits_support: torch.Tensor,
    logits_query: torch.Tensor,
    weights: tuple[float, float, float],
) -> torch.Tensor:
    """Sum over episodes of the TIM loss; logits ``(E, N·K, N)`` (class-major) and ``(E, Q, N)``."""
    ce_weight, marginal_weight, conditional_weight = weights
    n_way = logits_support.shape[-1]
    k_shot = logits_support.shape[1] // n_way
    labels = torch.arange(n_way, device=logits_support.device).repeat_interleave(k_shot)
    cross_entropy = -logits_support.log_softmax(-1)[:, torch.arange(len(labels)), labels].mean(1)
    probs = logits_query.softmax(-1)
    conditional = -(probs * (probs + 1e-12).log()).sum(-1).mean(1)
    marginal_probs = probs.mean(1)
    marginal = -(marginal_probs * marginal_probs.log()).sum(-1)
    per_episode = ce_weight * cross_entropy - (
        marginal_weight * marginal - conditional_weight * conditional
    )
    return per_episode.sum()


@dataclass(frozen=True)
class TIM(EpisodeMethod):
    """Cosine scores ``(E, Q, N)`` to the tuned prototypes."""

    steps: int = 50
    lr: float = 1e-4
    cross_entropy_weight: float = 1.0
    marginal_entropy_weight: float = 1.0
    conditional_entropy_weight: float = 0.1
    temperature: float = 10.0
    transductive: ClassVar[bool] = True
    label: ClassVar[str] = "tim (TIM-GD, cosine logits)"

    def __post_init__(self) -> None:
        check_steps("TIM", steps=self.steps)
        check_positive("TIM", lr=self.lr, temperature=self.temperature)

    def __call__(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        weights = (
            self.cross_entropy_weight,
            self.marginal_entropy_weight,
            self.conditional_entropy_weight,
        )
        flat_support = support.flatten(1, 2).detach()
        query = query.detach()
        prototypes = support.mean(dim=2).detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([prototypes], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                loss = tim_loss(
                    self.temperature * cosine_scores(flat_support, prototypes),
                    self.temperature * cosine_scores(query, prototypes),
                    weights,
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return cosine_scores(query, prototypes.detach())


def _build(context: ScorerContext) -> TIM:
    return TIM()


SCORERS.register("tim", EpisodeScorer(prototype=True, transductive=True, method=_build))
