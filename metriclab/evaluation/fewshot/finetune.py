"""Fine-tuning a cosine classifier head on the support set (inductive).

Chen, Liu, Kira, Wang & Huang, "A Closer Look at Few-shot Classification" (ICLR 2019),
https://arxiv.org/abs/1904.04232: freeze the backbone, train a new classifier on the support
embeddings, score the queries. Here the head is Baseline++'s cosine classifier: weights
``(N, D)`` initialised at the support means (deterministic, so no seed), logits
``temperature · cos(x, w_n)``, Adam on the support cross-entropy for ``steps`` steps. Queries
never enter the fit, so the method is inductive.

The paper initialises the head at random and trains 100 SGD steps on mini-batches of 4;
easyfsl's ``Finetune`` is this form (its defaults: 200 steps, lr 1e-4, temperature 1).
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
    cosine_scores,
)


@dataclass(frozen=True)
class Finetune(EpisodeMethod):
    """Cosine scores ``(E, Q, N)`` of the queries under the head fitted to each support set."""

    steps: int = 100
    lr: float = 1e-3
    temperature: float = 10.0
    transductive: ClassVar[bool] = False
    label: ClassVar[str] = "finetune (cosine head on the support)"

    def __post_init__(self) -> None:
        check_steps("Finetune", steps=self.steps)
        check_positive("Finetune", lr=self.lr, temperature=self.temperature)

    def __call__(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        e, n_way, k_shot, _ = support.shape
        flat = support.flatten(1, 2).detach()
        labels = torch.arange(n_way, device=support.device).repeat_interleave(k_shot)
        head = support.mean(dim=2).detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([head], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                logits = self.temperature * cosine_scores(flat, head)  # (E, NK, N)
                # Summed over episodes: each episode's head gets its own mean-CE gradient.
                loss = F.cross_entropy(logits.flatten(0, 1), labels.repeat(e), reduction="sum")
                optimizer.zero_grad()
                (loss / (n_way * k_shot)).backward()
                optimizer.step()
        return cosine_scores(query.detach(), head.detach())


def _build(context: ScorerContext) -> Finetune:
    return Finetune()


SCORERS.register("finetune", EpisodeScorer(prototype=True, method=_build))
