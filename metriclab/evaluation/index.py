"""`FaissIndex`: nearest-neighbour search under every metriclab distance, learned ones included.

Every metriclab distance says how FAISS searches it exactly (``faiss_metric``, ``faiss_vectors``,
``from_faiss``; see :mod:`metriclab.distances`), so the values :meth:`FaissIndex.search` reports
are the distance's own values:

* ``L2`` / ``SquaredL2``: ``METRIC_L2`` (FAISS returns squared L2; ``L2`` takes the root).
* ``Cosine``: L2-normalised vectors under ``METRIC_INNER_PRODUCT``; reported as ``1 − cos``.
* ``L1``: ``METRIC_L1``.
* ``WeightedL1``: ``METRIC_L1`` on ``w ⊙ x``, exact because ``Σ w|a−b| = Σ |wa − wb|`` for ``w ≥ 0``
  (Koch et al. 2015's learned metric, searched at FAISS speed).

Kinds: ``flat`` (exact), ``ivf`` (IndexIVFFlat, Jégou et al. 2011: k-means cells, ``nprobe`` of
``nlist`` cells searched) and ``hnsw`` (IndexHNSWFlat, Malkov & Yashunin 2018: graph search with
``m`` links per node and beam ``ef_search``). FAISS 1.7+ on the CPU supports every kind under every
metric above, L1 included (IVF still clusters with L2 k-means, then assigns cells by L1). On a GPU
only ``flat`` (all metrics) and ``ivf`` under L2 / inner product are offloaded; the rest stay on
the CPU. Approximate kinds may find fewer than ``k`` neighbours: those slots get id ``-1`` and
distance ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import torch

from metriclab.distances import Distance
from metriclab.evaluation.embed import Embeddings
from metriclab.evaluation.index_files import (
    check_expected_distance,
    distance_from_record,
    read_index_files,
    write_index_files,
)

IndexKind = Literal["flat", "ivf", "hnsw"]
KINDS: tuple[str, ...] = ("flat", "ivf", "hnsw")
#: FAISS GPU k-selection handles at most this many neighbours; larger k searches on the CPU.
_GPU_MAX_K = 2048


_FAISS_METRICS = {
    "l1": faiss.METRIC_L1,
    "l2": faiss.METRIC_L2,
    "inner_product": faiss.METRIC_INNER_PRODUCT,
    "linf": faiss.METRIC_Linf,
}


def _metric(distance: Distance) -> int:
    """The FAISS metric constant of ``distance.faiss_metric``."""
    metric = getattr(distance, "faiss_metric", None)
    if metric not in _FAISS_METRICS:
        raise ValueError(
            f"FaissIndex cannot search {type(distance).__name__}: its faiss_metric is {metric!r}, "
            f"not one of {', '.join(_FAISS_METRICS)}; set it on the distance class"
        )
    return _FAISS_METRICS[metric]


def as_float32(vectors: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``(N, D)`` array with N ≥ 1 and finite values."""
    array = vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else vectors
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values; check the model's weights")
    return array


_KIND_OF_PARAM = {"nlist": "ivf", "nprobe": "ivf", "m": "hnsw", "ef_search": "hnsw"}


def _kind_params(kind: str, size: int, given: dict[str, int | None]) -> dict[str, int]:
    """Validated parameters of ``kind``, defaults filled in; a parameter of another kind is an error."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    for name, value in given.items():
        if value is not None and _KIND_OF_PARAM[name] != kind:
            raise ValueError(
                f"{name} applies to kind={_KIND_OF_PARAM[name]!r} only, not kind={kind!r}; drop it"
            )
    if kind == "ivf":
        # ~4·√N cells, but at least 39 training points per cell (FAISS's own minimum) when possible.
        default = max(1, min(round(4 * math.sqrt(size)), size // 39))
        nlist = default if given["nlist"] is None else given["nlist"]
        if not 1 <= nlist <= size:
            raise ValueError(f"nlist must lie in [1, {size}] (the gallery size), got {nlist}")
        nprobe = min(nlist, 16) if given["nprobe"] is None else given["nprobe"]
        if not 1 <= nprobe <= nlist:
            raise ValueError(f"nprobe must lie in [1, nlist={nlist}], got {nprobe}")
        return {"nlist": int(nlist), "nprobe": int(nprobe)}
    if kind == "hnsw":
        m = 32 if given["m"] is None else given["m"]
        ef_search = 64 if given["ef_search"] is None else given["ef_search"]
        if m < 2 or ef_search < 1:
            raise ValueError(
                f"hnsw needs m ≥ 2 and ef_search ≥ 1, got m={m}, ef_search={ef_search}"
            )
        return {"m": int(m), "ef_search": int(ef_search)}
    return {}


def _new_index(dim: int, metric: int, kind: str, params: dict[str, int], seed: int) -> faiss.Index:
    if kind == "flat":
        return faiss.IndexFlat(dim, metric)
    if kind == "ivf":
        index = faiss.index_factory(dim, f"IVF{params['nlist']},Flat", metric)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = seed  # k-means initialisation and training subsample
        ivf.nprobe = params["nprobe"]
        return index
    index = faiss.IndexHNSWFlat(dim, params["m"], metric)
    index.hnsw.rng = faiss.RandomGenerator(seed)  # the random level of each inserted vector
    index.hnsw.efSearch = params["ef_search"]
    return index


def _gpu_copy(index: faiss.Index, kind: str, metric: int) -> faiss.Index | None:
    """A GPU replica of ``index`` when FAISS sees a GPU that supports it, else ``None``."""
    if faiss.get_num_gpus() == 0 or kind == "hnsw":
        return None
    if kind == "ivf" and metric not in (faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT):
        return None
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except (RuntimeError, AttributeError):  # a CPU-only build or an unsupported metric
        return None


class FaissIndex:
    """A FAISS index over a gallery whose reported distances are the metriclab distance's values.

    Attributes:
        index: the CPU FAISS index (what :meth:`save` writes).
        distance: the metriclab distance it searches.
        kind: ``"flat"``, ``"ivf"`` or ``"hnsw"``; ``params`` its parameters, ``seed`` its seed.
        labels: optional ``(N,)`` int64 gallery labels, for kNN classification.
        item_ids: optional ``N`` gallery item ids, to name what a search found.
    """

    def __init__(
        self,
        index: faiss.Index,
        distance: Distance,
        kind: str,
        params: dict[str, int],
        seed: int,
        labels: np.ndarray | None = None,
        item_ids: tuple[str, ...] | None = None,
    ) -> None:
        self.index = index
        self.distance = distance
        self.kind = kind
        self.params = params
        self.seed = seed
        self.labels = labels
        self.item_ids = item_ids
        self._metric = _metric(distance)
        # A built index is replicated on a GPU when one is present; build() fills vectors first.
        self._gpu = _gpu_copy(index, kind, self._metric) if index.ntotal else None

    @classmethod
    def build(
        cls,
        vectors: Embeddings | torch.Tensor | np.ndarray,
        distance: Distance,
        kind: IndexKind = "flat",
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        m: int | None = None,
        ef_search: int | None = None,
        seed: int = 0,
        labels: torch.Tensor | np.ndarray | None = None,
        item_ids: Sequence[str] | None = None,
    ) -> FaissIndex:
        """An index over ``(N, D)`` gallery ``vectors`` (an :class:`Embeddings` brings its labels and ids).

        Args:
            distance: a metriclab distance (see the module docstring for how each is searched).
            kind: ``flat`` (exact), ``ivf`` or ``hnsw`` (approximate).
            nlist: ``ivf`` cells, in [1, N]; default ``min(4·√N, N / 39)`` (at least 1).
            nprobe: ``ivf`` cells visited per query, in [1, nlist]; default ``min(nlist, 16)``.
            m: ``hnsw`` links per node (≥ 2); default 32.
            ef_search: ``hnsw`` search beam width (≥ 1; raised to k for a search of k); default 64.
            seed: seeds IVF k-means and HNSW level draws (flat is deterministic anyway).
            labels: optional ``(N,)`` gallery labels; item_ids: optional ``N`` gallery ids.
        """
        if isinstance(vectors, Embeddings):
            labels = vectors.labels if labels is None else labels
            item_ids = vectors.item_ids if item_ids is None else item_ids
            vectors = vectors.vectors
        gallery = as_float32(vectors, "gallery vectors")
        size, dim = gallery.shape
        given = {"nlist": nlist, "nprobe": nprobe, "m": m, "ef_search": ef_search}
        params = _kind_params(kind, size, given)
        gallery_labels = None if labels is None else _labels(labels, size)
        ids = None if item_ids is None else tuple(item_ids)
        if ids is not None and len(ids) != size:
            raise ValueError(
                f"item_ids must have one id per gallery vector ({size}), got {len(ids)}"
            )
        index = _new_index(dim, _metric(distance), kind, params, seed)
        built = cls(index, distance, kind, params, seed, gallery_labels, ids)
        prepared = built._prepare(gallery)
        if kind == "ivf":
            index.train(prepared)
        index.add(prepared)
        built._gpu = _gpu_copy(index, kind, built._metric)
        return built

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def dim(self) -> int:
        return self.index.d

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        """Map metriclab vectors to the space FAISS searches (the distance's ``faiss_vectors``)."""
        if vectors.shape[1] != self.index.d:
            raise ValueError(
                f"vectors have dimension {vectors.shape[1]}, but the index holds dimension "
                f"{self.index.d}; embed them with the model that built the index"
            )
        return np.ascontiguousarray(self.distance.faiss_vectors(vectors), dtype=np.float32)

    def search(
        self, queries: Embeddings | torch.Tensor | np.ndarray, k: int, chunk: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest gallery items of each ``(Nq, D)`` query: distances and ids, ``(Nq, k)``.

        Distances are float32 metriclab distance values, nearest first; ids index the gallery.
        Queries are prepared and searched ``chunk`` at a time, so extra memory is O(chunk · D)
        besides the ``(Nq, k)`` results, however large the query set.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(self):
            raise ValueError(
                f"k must be an integer in [1, {len(self)}] (the gallery size), got {k}"
            )
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        if isinstance(queries, Embeddings):
            queries = queries.vectors
        queries = as_float32(queries, "query vectors")
        distances, ids = self._search_chunks(queries, int(k), chunk)
        distances = self.distance.from_faiss(distances)
        distances[ids < 0] = np.inf
        return distances, ids

    def _search_chunks(
        self, queries: np.ndarray, k: int, chunk: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw FAISS results ``(Nq, k)``, ``chunk`` queries at a time."""
        searcher = self._gpu if self._gpu is not None and k <= _GPU_MAX_K else self.index
        distances = np.empty((len(queries), k), dtype=np.float32)
        ids = np.empty((len(queries), k), dtype=np.int64)
        # A beam narrower than k cannot return k neighbours. (Set on the index rather than passed
        # as SearchParameters: faiss.contrib.torch_utils, which PML imports, drops that argument.)
        beam = self.index.hnsw.efSearch if self.kind == "hnsw" else 0
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(beam, k)
        try:
            for start in range(0, len(queries), chunk):
                part = self._prepare(queries[start : start + chunk])
                found = searcher.search(part, k)
                distances[start : start + len(part)], ids[start : start + len(part)] = found
        finally:
            if self.kind == "hnsw":
                self.index.hnsw.efSearch = beam
        return distances, ids

    def save(self, path: str | Path) -> None:
        """Write ``path`` (a plain FAISS index file) and its sidecar ``<path>.json``, atomically."""
        sidecar: dict[str, Any] = {
            "distance": self.distance.to_dict(),
            "kind": self.kind,
            "params": self.params,
            "seed": self.seed,
            "dim": self.dim,
            "size": len(self),
            "labels": None if self.labels is None else self.labels.tolist(),
            "item_ids": None if self.item_ids is None else list(self.item_ids),
        }
        write_index_files(path, self.index, sidecar)

    @classmethod
    def load(cls, path: str | Path, distance: Distance | None = None) -> FaissIndex:
        """Read an index that :meth:`save` wrote.

        ``distance``, if given, is the distance the caller expects (e.g. the model's): an index
        built with another distance, or with other learned WeightedL1 weights, is refused. A
        truncated or altered index file is refused too (its size and SHA-256 are in the sidecar).
        """
        path = Path(path)
        index, record = read_index_files(path)
        stored = distance_from_record(record["distance"], path)
        if distance is not None:
            check_expected_distance(stored, distance, path)
        if index.metric_type != _metric(stored):
            raise ValueError(
                f"index file {path} uses FAISS metric {index.metric_type}, which does not match "
                f"the distance {stored.name!r} in its sidecar; rebuild it"
            )
        labels = record.get("labels")
        ids = record.get("item_ids")
        return cls(
            index,
            stored,
            record["kind"],
            dict(record["params"]),
            int(record["seed"]),
            None if labels is None else np.asarray(labels, dtype=np.int64),
            None if ids is None else tuple(ids),
        )


def _labels(labels: torch.Tensor | np.ndarray, size: int) -> np.ndarray:
    array = (
        labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    )
    if array.shape != (size,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"labels must be ({size},) integers, one per gallery vector, got {array.dtype} {array.shape}"
        )
    return array.astype(np.int64)
