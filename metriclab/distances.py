"""Pluggable distances between embeddings: L1, learned WeightedL1 (Koch et al. 2015), L2, SquaredL2, Cosine.

Every distance is an ``nn.Module`` with two entry points:

* ``d(a, b)``: row-aligned pairs, ``a`` and ``b`` of shape ``(..., N, D)`` → ``(..., N)``. O(N·D) memory.
* ``d.matrix(a, b)``: all pairs, ``(..., Na, D)`` × ``(..., Nb, D)`` → ``(..., Na, Nb)``.

All are distances (smaller is closer). Nothing is normalised unless the distance says so: cosine
distance is ``1 − cos`` by definition, the others see the raw vectors.

Each distance also carries everything else about itself (the contract of DESIGN.md), so no other
module asks which class it holds:

* how FAISS searches it exactly: ``faiss_metric`` (``"l1"``, ``"l2"`` or ``"inner_product"``),
  ``faiss_vectors`` (the vectors FAISS indexes) and ``from_faiss`` (FAISS's values back to this
  distance's values);
* ``ranking()``: a distance that orders neighbours the same way, cheaper where one exists;
* one serialisation, ``to_dict`` / :func:`distance_from_dict`, used by indexes, bundles and
  checkpoints alike, and ``same_as`` to check that two distances measure the same thing;
* ``to_pml()``: the pytorch-metric-learning distance with the same values (``from_pml`` goes back;
  see their docstrings for how PML's similarities, ``is_inverted``, and its normalise-by-default
  are handled).

A new distance is one subclass plus ``DISTANCES.register(name, cls)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metriclab.registry import Registry

#: The FAISS metrics a distance can be searched under (``faiss.METRIC_<upper>``).
FaissMetric = Literal["l1", "l2", "inner_product", "linf"]


def _check_pair(a: torch.Tensor, b: torch.Tensor, aligned: bool) -> None:
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor):
            fix = "torch.from_numpy(x)" if isinstance(x, np.ndarray) else "torch.as_tensor(x)"
            raise TypeError(
                f"distances take torch tensors, got {type(x).__name__} for {name}; wrap it: {fix}"
            )
        if not x.is_floating_point():
            raise TypeError(
                f"distances take float embeddings, got {x.dtype} for {name}; convert with .float()"
            )
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
    """Base class: subclasses implement ``pairwise`` (aligned) and ``all_pairs`` (matrix) and say
    how FAISS searches them; the defaults below suit a distance without parameters."""

    #: The name configs use for this distance (its key in :data:`DISTANCES`).
    name: ClassVar[str] = ""
    #: The FAISS metric that searches ``faiss_vectors`` exactly.
    faiss_metric: ClassVar[FaissMetric]
    #: Whether it has trained parameters (and so takes ``init`` in :meth:`build`).
    learned: ClassVar[bool] = False

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check_pair(a, b, aligned=True)
        self.check_dim(a.shape[-1])
        return self.pairwise(a, b)

    def matrix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check_pair(a, b, aligned=False)
        self.check_dim(a.shape[-1])
        return self.all_pairs(a, b)

    def check_dim(self, dim: int) -> None:
        """Raise ``ValueError`` if this distance cannot compare ``dim``-d embeddings (any ``dim``
        by default; distances with per-dimension parameters override it)."""

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def build(cls, dim: int | None = None, init: float | None = None) -> Distance:
        """The distance a config names; ``dim`` is the embedding dimension D, ``init`` the
        initial value of learned parameters (refused by distances that learn nothing)."""
        if init is not None:
            learned = ", ".join(name for name, known in DISTANCES.items() if known.learned)
            raise ValueError(
                f"init applies only to learned distances ({learned}), not {cls.name!r}; drop it"
            )
        return cls()

    def faiss_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """The float32 ``(N, D)`` vectors FAISS indexes so that ``faiss_metric`` on them ranks,
        and after ``from_faiss`` equals, this distance (default: the vectors themselves)."""
        return vectors

    def from_faiss(self, values: np.ndarray) -> np.ndarray:
        """FAISS's search values ``(Nq, k)`` as this distance's values, in place when possible."""
        return values

    def ranking(self) -> Distance:
        """A distance that orders neighbours exactly as this one does (itself by default)."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record of this distance; :func:`distance_from_dict` rebuilds it exactly."""
        return {"name": self.name}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Distance:
        """The distance ``record`` (from :meth:`to_dict`) describes."""
        return cls()

    def same_as(self, other: Distance) -> bool:
        """Whether ``other`` measures the same distance (same kind and learned parameters)."""
        return self.to_dict() == other.to_dict()

    def to_pml(self) -> Any:
        """The pytorch-metric-learning distance with the same values (see :func:`to_pml`)."""
        raise ValueError(
            f"distance {type(self).__name__} has no PML equivalent; use one of "
            f"{DISTANCES.choices()}"
        )


class L1(Distance):
    """Manhattan distance ``Σ_j |a_j − b_j|``."""

    name = "l1"
    faiss_metric = "l1"

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().sum(-1)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cdist(a, b, p=1.0)

    def to_pml(self) -> Any:
        return _lp_distance(p=1, power=1)


class WeightedL1(Distance):
    """Learned weighted L1 ``Σ_j w_j |a_j − b_j|`` with ``w_j ≥ 0`` (Koch et al. 2015, §3.1).

    Koch et al. score a pair by ``σ(Σ_j α_j |h1_j − h2_j| + b)``; keeping ``w = softplus(θ) ≥ 0``
    makes the weighted sum a true distance, equal to plain L1 on ``w ⊙ x``. That identity is what
    lets FAISS search this learned metric exactly (``METRIC_L1`` on scaled vectors).

    Args:
        dim: embedding dimension D.
        init: initial value of every weight (> 0); default ``1 / D``, so that the distance starts
            as the mean absolute difference. For embeddings bounded in [0, 1] (Koch's sigmoid
            layer) that caps the logits ``b − d`` of a Siamese head at about ±1 until the weights
            grow, which Adam does by about ``lr`` in log-space per step; start such models near 1
            (plain L1), the scale of Koch et al.'s own initial α.
    """

    name = "weighted_l1"
    faiss_metric = "l1"
    learned = True

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

    def check_dim(self, dim: int) -> None:
        built = self.raw_weight.shape[0]
        if dim != built:
            raise ValueError(
                f"WeightedL1 was built for {built}-d embeddings, got {dim}-d ones; build it as "
                f"WeightedL1({dim}) (the embedding net's dim)"
            )

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """``w ⊙ x``: vectors on which plain L1 equals this distance, shape unchanged."""
        self.check_dim(x.shape[-1])
        return x * self.weight

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b).abs() * self.weight).sum(-1)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cdist(self.scale(a), self.scale(b), p=1.0)

    @classmethod
    def build(cls, dim: int | None = None, init: float | None = None) -> Distance:
        if dim is None:
            raise ValueError(
                "distance 'weighted_l1' needs dim, the embedding dimension; pass dim=D"
            )
        return cls(dim, init)

    def faiss_vectors(self, vectors: np.ndarray) -> np.ndarray:
        # Σ w|a − b| = Σ |wa − wb| for w ≥ 0: plain L1 on scaled vectors is this distance exactly.
        weight = self.weight.detach().cpu().numpy().astype(np.float32)
        if vectors.shape[-1] != weight.shape[0]:
            raise ValueError(
                f"WeightedL1 was built for dimension {weight.shape[0]}, but the vectors have "
                f"dimension {vectors.shape[-1]}; use the distance of the model that embedded them"
            )
        return np.ascontiguousarray(vectors * weight, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        # float32 → Python float is exact, so the weights survive JSON bit for bit. ``weights``
        # (softplus of ``raw_weight``) is there for readers that do not know the parametrisation.
        return {
            "name": self.name,
            "raw_weight": self.raw_weight.detach().cpu().float().tolist(),
            "weights": self.weight.detach().cpu().float().tolist(),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Distance:
        if "raw_weight" in record:
            raw = torch.tensor(record["raw_weight"], dtype=torch.float32)
        elif "weights" in record:  # bundles of format 1 stored only w = softplus(raw)
            weights = torch.tensor(record["weights"], dtype=torch.float32)
            raw = weights + torch.log(-torch.expm1(-weights))
        else:
            raise ValueError("a weighted_l1 record needs 'raw_weight' or 'weights'")
        if raw.ndim != 1 or len(raw) == 0:
            raise ValueError(f"weighted_l1 weights must be a non-empty list, got shape {raw.shape}")
        distance = cls(len(raw))
        with torch.no_grad():
            distance.raw_weight.copy_(raw)
        return distance

    def same_as(self, other: Distance) -> bool:
        if other.name != self.name:
            return False
        mine, theirs = self.weight.detach().cpu(), other.weight.detach().cpu().float()
        return mine.shape == theirs.shape and torch.allclose(mine, theirs, rtol=1e-6, atol=0.0)

    def to_pml(self) -> Any:
        # PML has no weighted L1: wrap this module, so its weights train through PML losses.
        return _pml_wrapper()(self)


def _centered(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` and ``b`` minus their joint mean: Euclidean distances are translation invariant.

    The fast all-pairs Euclidean kernels expand ``‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b``, whose rounding
    error grows with ``‖a‖²``; embeddings that share an offset (a bias in the head) lose most of
    their precision near zero distance (float32, offset 10: error 0.06 instead of 0.003).
    """
    # Detached: the distances do not depend on the shift, so no gradient flows through it.
    total = a.detach().sum(-2, keepdim=True) + b.detach().sum(-2, keepdim=True)
    mean = total / (a.shape[-2] + b.shape[-2])
    return a - mean, b - mean


class L2(Distance):
    """Euclidean distance ``‖a − b‖₂``.

    Gradients are finite everywhere: at ``a = b`` the (sub)gradient returned is 0. ``matrix`` uses
    the GEMM expansion on centred inputs, exact up to ~``sqrt(ε)·spread`` near zero distance.
    """

    name = "l2"
    faiss_metric = "l2"

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(a - b, dim=-1)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cdist(*_centered(a, b), p=2.0)

    def from_faiss(self, values: np.ndarray) -> np.ndarray:
        # FAISS's METRIC_L2 reports squared distances.
        return np.sqrt(np.maximum(values, 0.0, out=values), out=values)

    def ranking(self) -> Distance:
        # √ is monotone: squared L2 ranks the same and is one batched GEMM instead of
        # torch.cdist, several times faster on small episodes.
        return SquaredL2()

    def to_pml(self) -> Any:
        return _lp_distance(p=2, power=1)


class SquaredL2(Distance):
    """Squared Euclidean distance ``‖a − b‖₂²`` (the ProtoNet metric, Snell et al. 2017)."""

    name = "squared_l2"
    faiss_metric = "l2"

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).pow(2).sum(-1)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # ‖a‖² + ‖b‖² − 2·a·b is one GEMM; clamp the tiny negatives that cancellation can leave.
        a, b = _centered(a, b)
        cross = a @ b.transpose(-1, -2)
        squared = a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1).unsqueeze(-2) - 2 * cross
        return squared.clamp_min(0.0)

    def to_pml(self) -> Any:
        return _lp_distance(p=2, power=2)


class Cosine(Distance):
    """Cosine distance ``1 − cos(a, b)``, in [0, 2]."""

    name = "cosine"
    faiss_metric = "inner_product"

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        if not 0 < eps < 1:
            raise ValueError(f"eps must be in (0, 1), got {eps}; the default 1e-8 suits most uses")
        self.eps = eps

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=self.eps)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = F.normalize(a, dim=-1, eps=self.eps)
        b = F.normalize(b, dim=-1, eps=self.eps)
        return 1.0 - a @ b.transpose(-1, -2)

    def faiss_vectors(self, vectors: np.ndarray) -> np.ndarray:
        # Inner products of unit vectors are cosines; eps guards zero vectors as in all_pairs.
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, self.eps), dtype=np.float32)

    def from_faiss(self, values: np.ndarray) -> np.ndarray:
        return np.subtract(1.0, values, out=values)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "eps": self.eps}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Distance:
        return cls(eps=float(record.get("eps", 1e-8)))

    def to_pml(self) -> Any:
        # A similarity s = 1 − d with is_inverted=True; its normalisation is harmless (cosine is
        # scale invariant).
        from pytorch_metric_learning.distances import CosineSimilarity

        return CosineSimilarity()


DISTANCES: Registry[type[Distance]] = Registry("distance", key="model.distance")
for _cls in (L1, WeightedL1, L2, SquaredL2, Cosine):
    DISTANCES.register(_cls.name, _cls)


def build_distance(name: str, dim: int | None = None, init: float | None = None) -> Distance:
    """The distance a config names (``l1``, ``weighted_l1``, ``l2``, ``squared_l2``, ``cosine``).

    ``dim`` (the embedding dimension) and ``init`` (the initial weight, default ``1 / dim``) apply
    only to learned distances such as ``weighted_l1``, which learns one weight per dimension.
    """
    return DISTANCES.get(name).build(dim, init)


def distance_from_dict(record: Mapping[str, Any]) -> Distance:
    """The distance a :meth:`Distance.to_dict` record describes (indexes, bundles, checkpoints)."""
    if not isinstance(record, Mapping) or "name" not in record:
        raise ValueError(f"a distance record is a mapping with a 'name', got {record!r}")
    return DISTANCES.get(record["name"]).from_dict(record)


def _lp_distance(p: int, power: int) -> Any:
    """PML's ``LpDistance`` without its default normalisation, which would change the metric."""
    from pytorch_metric_learning.distances import LpDistance

    return LpDistance(p=p, power=power, normalize_embeddings=False)


@functools.cache
def _pml_wrapper() -> type:
    """The PML distance class that wraps a metriclab distance PML has no counterpart for.

    Built on first use so that importing metriclab does not import PML (about 0.5 s).
    """
    from pytorch_metric_learning.distances import BaseDistance

    class MetriclabDistance(BaseDistance):
        """A PML distance computing ``distance.matrix`` (no normalisation, not inverted).

        The metriclab module is a submodule, so its learned weights train through PML losses.
        """

        def __init__(self, distance: Distance) -> None:
            super().__init__(normalize_embeddings=False, is_inverted=False)
            self.distance = distance

        def compute_mat(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
            return self.distance.matrix(query_emb, ref_emb)

        def pairwise_distance(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
            return self.distance(query_emb, ref_emb)

    return MetriclabDistance


def to_pml(distance: Distance) -> Any:
    """The pytorch-metric-learning distance with the same values, built without normalisation.

    * ``L1``, ``L2``, ``SquaredL2`` → ``LpDistance(p=1 | 2, power=1 | 2, normalize_embeddings=False)``
      (PML's default ``normalize_embeddings=True`` would silently change the metric).
    * ``Cosine`` → ``CosineSimilarity()``, which is a *similarity* ``s = 1 − d`` with
      ``is_inverted=True``. PML losses read ``is_inverted``, so difference margins (triplet) carry
      over unchanged, while absolute thresholds translate as ``t_s = 1 − t_d`` (and "below" becomes
      "above"). Its normalisation is harmless: cosine is scale invariant.
    * ``WeightedL1`` has no PML counterpart; it is wrapped in a PML ``BaseDistance`` subclass that
      computes exactly ``distance.matrix`` and shares its weights (losses or miners that insist on
      ``LpDistance`` reject it). ``from_pml`` unwraps it.
    """
    return distance.to_pml()


def from_pml(pml_distance: Any) -> Distance:
    """The metriclab distance equal to a pytorch-metric-learning distance.

    ``LpDistance(normalize_embeddings=False)`` with ``(p, power)`` of ``(1, 1)``, ``(2, 1)`` or
    ``(2, 2)`` becomes ``L1``, ``L2`` or ``SquaredL2``. A similarity that normalises
    (``CosineSimilarity``, or ``DotProductSimilarity(normalize_embeddings=True)``) becomes
    ``Cosine``, whose value is ``1 − s``: smaller is closer, as for every metriclab distance.
    PML's default ``LpDistance(normalize_embeddings=True)`` is refused with a ``ValueError``:
    metriclab distances never normalise hidden from the user.
    """
    from pytorch_metric_learning.distances import DotProductSimilarity, LpDistance

    if isinstance(pml_distance, _pml_wrapper()):
        return pml_distance.distance
    kind = type(pml_distance).__name__
    if isinstance(pml_distance, DotProductSimilarity):
        if pml_distance.normalize_embeddings and pml_distance.p == 2 and pml_distance.power == 1:
            return Cosine()
        raise ValueError(
            f"{kind}(normalize_embeddings={pml_distance.normalize_embeddings}, power="
            f"{pml_distance.power}) is not a cosine similarity; only CosineSimilarity() converts"
        )
    if isinstance(pml_distance, LpDistance):
        if pml_distance.normalize_embeddings:
            raise ValueError(
                "LpDistance(normalize_embeddings=True), PML's default, normalises the embeddings, "
                "which metriclab distances never do; pass LpDistance(normalize_embeddings=False) "
                "and use EmbeddingNet(normalize=True) if you want unit vectors"
            )
        for cls, (p, power) in {L1: (1, 1), L2: (2, 1), SquaredL2: (2, 2)}.items():
            if pml_distance.p == p and pml_distance.power == power:
                return cls()
        raise ValueError(
            f"LpDistance(p={pml_distance.p}, power={pml_distance.power}) has no metriclab "
            "equivalent; use p=1 or p=2 with power=1, or p=2 with power=2"
        )
    raise ValueError(
        f"PML distance {kind} has no metriclab equivalent; convert LpDistance, CosineSimilarity "
        "or a distance made by to_pml"
    )
