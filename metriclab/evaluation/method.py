"""Episode methods: scorers that see a whole batch of episodes at once.

A method maps support ``(E, N, K, D)`` (class-major: ``support[e, n]`` holds the K shots of
class n) and queries ``(E, Q, D)`` to class scores ``(E, Q, N)``, higher = more likely. An
**inductive** method scores each query from the support alone; a **transductive** one also uses
the other queries of its episode (their distribution, their pseudo-labels), so its accuracy is
not comparable with inductive figures. Episodes never see each other: every method works on each
episode independently, batched only for speed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ScorerContext:
    """What a registered method may need from the run being evaluated.

    ``train_mean``: ``(D,)`` mean embedding of the training classes (SimpleShot's centring),
    stored with the run by :func:`metriclab.evaluation.fewshot.store_train_mean`.
    ``comparator``: the model's learned comparator (``model.comparator``: Matching or Relation
    Networks), which the ``matching`` and ``relation`` scorers score with.
    """

    train_mean: torch.Tensor | None = None
    comparator: torch.nn.Module | None = None


class EpisodeMethod(ABC):
    """Base of the batched episode methods; ``transductive`` says whether queries see each other."""

    transductive: ClassVar[bool] = False
    #: How reports name the method, e.g. ``"simpleshot (CL2N, L2)"``.
    label: ClassVar[str] = ""

    @abstractmethod
    def __call__(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Scores ``(E, Q, N)`` of queries ``(E, Q, D)`` given support ``(E, N, K, D)``."""


def cosine_scores(query: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Cosine similarity ``(E, Q, N)`` of ``(E, Q, D)`` queries and ``(E, N, D)`` prototypes."""
    return F.normalize(query, dim=-1) @ F.normalize(prototypes, dim=-1).transpose(1, 2)


def squared_l2(query: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(E, Q, N)``, clamped at 0 (the GEMM form can dip below)."""
    cross = query @ prototypes.transpose(1, 2)
    norms = query.pow(2).sum(-1, keepdim=True) + prototypes.pow(2).sum(-1).unsqueeze(1)
    return (norms - 2 * cross).clamp_min_(0)


def check_positive(owner: str, **values: float) -> None:
    """Refuse a non-positive hyperparameter with a sentence naming it."""
    for name, value in values.items():
        if isinstance(value, bool) or not value > 0:
            raise ValueError(f"{owner}: {name} must be positive, got {value!r}")


def check_steps(owner: str, **values: int) -> None:
    """Refuse an iteration count that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
