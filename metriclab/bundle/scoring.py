"""Distances in numpy, for the torch-free runtime: the same values as :mod:`metriclab.distances`.

A bundle records its distance as :meth:`metriclab.distances.Distance.to_dict` writes it. The
torch-free runtime cannot build those ``nn.Module`` objects, so each distance record name has a
numpy counterpart here, registered in :data:`NUMPY_DISTANCES` under the same name; a test checks
every entry of :data:`metriclab.distances.DISTANCES` against its counterpart. A distance with no
counterpart (a user's own) is served through its torch module (:class:`TorchBacked`) when torch
is installed; one that should also serve without torch adds one class here.

Shapes follow the torch distances: ``pairwise(a, b)`` row-aligned ``(N, D)`` × ``(N, D)`` →
``(N,)``; ``matrix(a, b)`` all pairs ``(Na, D)`` × ``(Nb, D)`` → ``(Na, Nb)``; float32 in and out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from metriclab.registry import Registry


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


class NumpyDistance:
    """Base: subclasses give ``pairwise`` and ``matrix``; FAISS forms default to the identity."""

    name: ClassVar[str] = ""
    faiss_metric: ClassVar[str]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> NumpyDistance:
        """The distance a ``Distance.to_dict`` record describes."""
        return cls()

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def faiss_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """The float32 vectors FAISS indexes (see ``Distance.faiss_vectors``)."""
        return _f32(vectors)

    def from_faiss(self, values: np.ndarray) -> np.ndarray:
        """FAISS's search values as this distance's values."""
        return values


NUMPY_DISTANCES: Registry[type[NumpyDistance]] = Registry("torch-free distance")


@NUMPY_DISTANCES.register("l1")
class L1(NumpyDistance):
    """``Σ_j |a_j − b_j|``."""

    name = "l1"
    faiss_metric = "l1"

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(_f32(a) - _f32(b)).sum(-1)

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # One query row at a time keeps memory at O(Nb·D) instead of O(Na·Nb·D).
        b = _f32(b)
        return np.stack([np.abs(row - b).sum(-1) for row in _f32(a)]).reshape(len(a), len(b))


@NUMPY_DISTANCES.register("weighted_l1")
class WeightedL1(L1):
    """``Σ_j w_j |a_j − b_j|`` (Koch et al. 2015), equal to L1 on ``w ⊙ x``."""

    name = "weighted_l1"

    def __init__(self, weight: np.ndarray) -> None:
        self.weight = _f32(weight)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> NumpyDistance:
        if "weights" in record:  # softplus(raw) as torch computed it: bit-identical weights
            return cls(np.asarray(record["weights"], dtype=np.float32))
        if "raw_weight" not in record:
            raise ValueError("a weighted_l1 record needs 'raw_weight' or 'weights'")
        raw = np.asarray(record["raw_weight"], dtype=np.float32)
        # torch's softplus: x above 20 passes through, else log(1 + e^x).
        return cls(np.where(raw > 20, raw, np.log1p(np.exp(np.minimum(raw, 20)))))

    def faiss_vectors(self, vectors: np.ndarray) -> np.ndarray:
        if vectors.shape[-1] != len(self.weight):
            raise ValueError(
                f"weighted_l1 was built for dimension {len(self.weight)}, but the vectors have "
                f"dimension {vectors.shape[-1]}; use the bundle that embedded them"
            )
        return _f32(vectors * self.weight)

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (np.abs(_f32(a) - _f32(b)) * self.weight).sum(-1)

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return super().matrix(self.faiss_vectors(a), self.faiss_vectors(b))


@NUMPY_DISTANCES.register("squared_l2")
class SquaredL2(NumpyDistance):
    """``‖a − b‖²`` (ProtoNet's metric)."""

    name = "squared_l2"
    faiss_metric = "l2"

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.square(_f32(a) - _f32(b)).sum(-1)

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # Centred first, as the torch distance does: the GEMM expansion loses precision to offsets.
        a, b = _f32(a), _f32(b)
        mean = (a.sum(0) + b.sum(0)) / (len(a) + len(b))
        a, b = a - mean, b - mean
        squared = (a * a).sum(-1)[:, None] + (b * b).sum(-1)[None, :] - 2 * a @ b.T
        return np.maximum(squared, 0.0)


@NUMPY_DISTANCES.register("l2")
class L2(SquaredL2):
    """``‖a − b‖₂``."""

    name = "l2"

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sqrt(super().pairwise(a, b))

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sqrt(super().matrix(a, b))

    def from_faiss(self, values: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(values, 0.0))  # FAISS's METRIC_L2 reports squares


@NUMPY_DISTANCES.register("cosine")
class Cosine(NumpyDistance):
    """``1 − cos(a, b)``, in [0, 2]."""

    name = "cosine"
    faiss_metric = "inner_product"

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> NumpyDistance:
        return cls(float(record.get("eps", 1e-8)))

    def faiss_vectors(self, vectors: np.ndarray) -> np.ndarray:
        vectors = _f32(vectors)
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        return _f32(vectors / np.maximum(norms, self.eps))

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 1.0 - (self.faiss_vectors(a) * self.faiss_vectors(b)).sum(-1)

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 1.0 - self.faiss_vectors(a) @ self.faiss_vectors(b).T

    def from_faiss(self, values: np.ndarray) -> np.ndarray:
        return 1.0 - values


class TorchBacked(NumpyDistance):
    """A registered torch distance behind the numpy interface, for distances with no numpy twin."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        import torch  # only here: the torch-free runtime never reaches this class

        from metriclab.distances import distance_from_dict

        self._torch = torch
        self.distance = distance_from_dict(record).eval()
        self.name = self.distance.name  # type: ignore[misc]
        self.faiss_metric = self.distance.faiss_metric  # type: ignore[misc]

    def _apply(self, form: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            values = form(self._torch.from_numpy(_f32(a)), self._torch.from_numpy(_f32(b)))
        return values.numpy()

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._apply(self.distance, a, b)

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._apply(self.distance.matrix, a, b)

    def faiss_vectors(self, vectors: np.ndarray) -> np.ndarray:
        return _f32(self.distance.faiss_vectors(_f32(vectors)))

    def from_faiss(self, values: np.ndarray) -> np.ndarray:
        return self.distance.from_faiss(values)


def numpy_distance(record: Mapping[str, Any]) -> NumpyDistance:
    """The numpy distance of a ``Distance.to_dict`` record: its numpy twin, else its torch module
    (one sentence when neither exists, e.g. a user's distance served without torch)."""
    if not isinstance(record, Mapping) or "name" not in record:
        raise ValueError(f"a distance record is a mapping with a 'name', got {record!r}")
    if record["name"] in NUMPY_DISTANCES:
        return NUMPY_DISTANCES.get(record["name"]).from_record(record)
    try:
        return TorchBacked(record)
    except ImportError:
        raise ValueError(
            f"distance {record['name']!r} has no torch-free form; serve this bundle with torch "
            "installed, or register a numpy counterpart in metriclab.bundle.scoring.NUMPY_DISTANCES"
        ) from None
