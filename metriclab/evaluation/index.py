"""`FaissIndex`: exact nearest-neighbour search for every metriclab distance, learned ones included."""

from __future__ import annotations

import faiss
import numpy as np
import torch

from metriclab.distances import L1, L2, Cosine, Distance, SquaredL2, WeightedL1


class FaissIndex:
    """A flat FAISS index whose reported distances are the metriclab distance's values.

    * ``L2`` / ``SquaredL2``: ``METRIC_L2`` (FAISS returns squared L2; ``L2`` takes the root).
    * ``Cosine``: normalised vectors under inner product; reported as ``1 − cos``.
    * ``L1``: ``METRIC_L1``.
    * ``WeightedL1``: ``METRIC_L1`` on ``w ⊙ x``, exact because ``Σ w|a−b| = Σ |wa − wb|`` for ``w ≥ 0``.
    """

    def __init__(self, index: faiss.Index, distance: Distance, scale: np.ndarray | None) -> None:
        self.index = index
        self.distance = distance
        self._scale = scale

    @classmethod
    def build(cls, vectors: torch.Tensor | np.ndarray, distance: Distance) -> FaissIndex:
        """An index over ``(N, D)`` gallery vectors."""
        gallery = _as_float32(vectors, "gallery vectors")
        dim = gallery.shape[1]
        scale = None
        if isinstance(distance, WeightedL1):
            scale = distance.weight.detach().cpu().numpy().astype(np.float32)
            index = faiss.IndexFlat(dim, faiss.METRIC_L1)
        elif isinstance(distance, L1):
            index = faiss.IndexFlat(dim, faiss.METRIC_L1)
        elif isinstance(distance, (L2, SquaredL2)):
            index = faiss.IndexFlatL2(dim)
        elif isinstance(distance, Cosine):
            index = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"FaissIndex cannot search {type(distance).__name__}")
        built = cls(index, distance, scale)
        index.add(built._prepare(gallery))
        return built

    def __len__(self) -> int:
        return self.index.ntotal

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        if vectors.shape[1] != self.index.d:
            raise ValueError(
                f"vectors have dimension {vectors.shape[1]}, but the index holds dimension {self.index.d}"
            )
        if self._scale is not None:
            vectors = vectors * self._scale
        if isinstance(self.distance, Cosine):
            vectors = vectors.copy()
            faiss.normalize_L2(vectors)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def search(
        self, queries: torch.Tensor | np.ndarray, k: int, chunk: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest gallery items of each query: distances and ids, both ``(Nq, k)``.

        Queries are searched ``chunk`` at a time, so memory stays bounded for large query sets.
        """
        if not 1 <= k <= len(self):
            raise ValueError(f"k must lie in [1, {len(self)}] (the gallery size), got {k}")
        prepared = self._prepare(_as_float32(queries, "query vectors"))
        distances = np.empty((len(prepared), k), dtype=np.float32)
        ids = np.empty((len(prepared), k), dtype=np.int64)
        for start in range(0, len(prepared), chunk):
            stop = start + chunk
            distances[start:stop], ids[start:stop] = self.index.search(prepared[start:stop], k)
        if isinstance(self.distance, L2):
            np.sqrt(np.maximum(distances, 0.0), out=distances)
        elif isinstance(self.distance, Cosine):
            distances = 1.0 - distances
        return distances, ids


def _as_float32(vectors: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    array = vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else vectors
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return array
