"""Pluggable distances between embeddings: L1, learned WeightedL1 (Koch et al. 2015), L2, SquaredL2, Cosine.

Every distance is an ``nn.Module`` with two entry points:

* ``d(a, b)``: row-aligned pairs, ``a`` and ``b`` of shape ``(..., N, D)`` → ``(..., N)``. O(N·D) memory.
* ``d.matrix(a, b)``: all pairs, ``(..., Na, D)`` × ``(..., Nb, D)`` → ``(..., Na, Nb)``.

All are distances (smaller is closer). Nothing is normalised unless the distance says so: cosine
distance is ``1 − cos`` by definition, the others see the raw vectors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_pair(a: torch.Tensor, b: torch.Tensor, aligned: bool) -> None:
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(
            f"embeddings must be (..., N, D), got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"embedding dimensions differ: {a.shape[-1]} and {b.shape[-1]}")
    if aligned and a.shape != b.shape:
        raise ValueError(
            f"row-aligned distances need equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}; "
            "use .matrix(a, b) for all pairs"
        )


class Distance(nn.Module):
    """Base class: subclasses implement ``pairwise`` (aligned) and ``all_pairs`` (matrix)."""

    #: The name configs use for this distance.
    name: str = ""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check_pair(a, b, aligned=True)
        return self.pairwise(a, b)

    def matrix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check_pair(a, b, aligned=False)
        return self.all_pairs(a, b)

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class L1(Distance):
    """Manhattan distance ``Σ_j |a_j − b_j|``."""

    name = "l1"

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().sum(-1)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cdist(a, b, p=1.0)


class WeightedL1(Distance):
    """Learned weighted L1 ``Σ_j w_j |a_j − b_j|`` with ``w_j ≥ 0`` (Koch et al. 2015, §3.1).

    Koch et al. score a pair by ``σ(Σ_j α_j |h1_j − h2_j| + b)``; keeping ``w = softplus(θ) ≥ 0``
    makes the weighted sum a true distance, equal to plain L1 on ``w ⊙ x``. That identity is what
    lets FAISS search this learned metric exactly (``METRIC_L1`` on scaled vectors).

    Args:
        dim: embedding dimension D.
        init: initial value of every weight (> 0).
    """

    name = "weighted_l1"

    def __init__(self, dim: int, init: float | None = None) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        init = 1.0 / dim if init is None else init
        if init <= 0:
            raise ValueError(f"init must be positive, got {init}")
        # softplus⁻¹(init) = log(exp(init) − 1), written stably for small init.
        raw = init + math.log(-math.expm1(-init))
        self.raw_weight = nn.Parameter(torch.full((dim,), raw))

    @property
    def weight(self) -> torch.Tensor:
        """The non-negative weights ``w``, shape ``(D,)``."""
        return F.softplus(self.raw_weight)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """``w ⊙ x``: vectors on which plain L1 equals this distance, shape unchanged."""
        if x.shape[-1] != self.raw_weight.shape[0]:
            raise ValueError(
                f"WeightedL1 was built for dimension {self.raw_weight.shape[0]}, got {x.shape[-1]}"
            )
        return x * self.weight

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b).abs() * self.weight).sum(-1)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cdist(self.scale(a), self.scale(b), p=1.0)


class L2(Distance):
    """Euclidean distance ``‖a − b‖₂``."""

    name = "l2"

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(a - b, dim=-1)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cdist(a, b, p=2.0)


class SquaredL2(Distance):
    """Squared Euclidean distance ``‖a − b‖₂²`` (the ProtoNet metric, Snell et al. 2017)."""

    name = "squared_l2"

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).pow(2).sum(-1)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # ‖a‖² + ‖b‖² − 2·a·b is one GEMM; clamp the tiny negatives that cancellation can leave.
        cross = a @ b.transpose(-1, -2)
        squared = a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1).unsqueeze(-2) - 2 * cross
        return squared.clamp_min(0.0)


class Cosine(Distance):
    """Cosine distance ``1 − cos(a, b)``, in [0, 2]."""

    name = "cosine"

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=self.eps)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = F.normalize(a, dim=-1, eps=self.eps)
        b = F.normalize(b, dim=-1, eps=self.eps)
        return 1.0 - a @ b.transpose(-1, -2)


DISTANCES: dict[str, type[Distance]] = {
    cls.name: cls for cls in (L1, WeightedL1, L2, SquaredL2, Cosine)
}


def build_distance(name: str, dim: int) -> Distance:
    """The distance a config names (``l1``, ``weighted_l1``, ``l2``, ``squared_l2``, ``cosine``)."""
    if name not in DISTANCES:
        raise ValueError(f"unknown distance {name!r}; choose one of {', '.join(DISTANCES)}")
    cls = DISTANCES[name]
    return cls(dim) if cls is WeightedL1 else cls()
