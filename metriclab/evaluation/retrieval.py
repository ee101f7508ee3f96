"""The deep-metric-learning benchmark metrics: Recall@K, MAP@R, R-precision and NMI.

Recall@K is the figure CUB-200-2011, Cars196, Stanford Online Products and In-Shop are reported
in since Oh Song et al. 2016 ("Deep metric learning via lifted structured feature embedding"):
the fraction of queries with at least one item of their own class among their K nearest. MAP@R
and R-precision are Musgrave, Belongie & Lim 2020 ("A Metric Learning Reality Check", §3.2),
computed as in :func:`metriclab.evaluation.knn.retrieval_metrics` and pytorch-metric-learning's
``AccuracyCalculator``; NMI clusters the embeddings with k-means into as many clusters as classes
and compares them with the labels (scikit-learn).

Two protocols: *leave-one-out* (CUB, Cars, SOP: every test image queries all the others) and
*query/gallery* (In-Shop: query images search a separate gallery). In both, ``R`` is the number
of relevant gallery items of a query, and a query with ``R = 0`` is left out (as PML does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from metriclab.data.dml import query_gallery_positions
from metriclab.distances import Distance
from metriclab.evaluation.embed import Embeddings
from metriclab.evaluation.index import FaissIndex, as_float32
from metriclab.evaluation.knn import _chunk_sums

#: The K of Recall@K: 1-2-4-8 for CUB and Cars, 1-10-100-1000 for SOP and In-Shop; the ones
#: larger than the gallery are dropped (In-Shop papers also quote 20, 30, 40: pass them as ``ks``).
RECALL_KS = (1, 2, 4, 8, 10, 100, 1000)


@dataclass(frozen=True)
class RetrievalScores:
    """Benchmark retrieval metrics, each a fraction in [0, 1], over ``queries`` queries.

    ``recall`` maps K to Recall@K; ``nmi`` is None when it was not asked for.
    """

    recall: dict[int, float]
    map_at_r: float
    r_precision: float
    queries: int
    nmi: float | None = None
    protocol: str = field(default="leave-one-out")

    def to_dict(self) -> dict[str, float | int | str | None]:
        """Flat names for reports: ``recall@1``, …, ``map@r``, ``r_precision``, ``nmi``."""
        flat: dict[str, float | int | str | None] = {
            f"recall@{k}": v for k, v in self.recall.items()
        }
        flat.update(map_at_r=self.map_at_r, r_precision=self.r_precision, nmi=self.nmi)
        flat.update(queries=self.queries, protocol=self.protocol)
        return flat


def _as_labels(labels: torch.Tensor | np.ndarray, size: int, name: str) -> np.ndarray:
    array = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {array.shape}")
    return array


def retrieval_scores(
    queries: torch.Tensor | np.ndarray,
    query_labels: torch.Tensor | np.ndarray,
    distance: Distance,
    gallery: torch.Tensor | np.ndarray | None = None,
    gallery_labels: torch.Tensor | np.ndarray | None = None,
    ks: Sequence[int] = RECALL_KS,
    nmi: bool = False,
    seed: int = 0,
    chunk: int = 2048,
) -> RetrievalScores:
    """Recall@K, MAP@R and R-precision (and NMI) of ``(Nq, D)`` queries with ``(Nq,)`` labels.

    Without ``gallery`` each query searches all the other queries (leave-one-out); with it,
    ``(Ng, D)`` ``gallery`` vectors with ``(Ng,)`` ``gallery_labels`` (In-Shop's query/gallery
    split). One flat FAISS index is searched once with ``k = max(max K, max R)`` (+1 to drop the
    query itself). ``ks`` beyond the gallery size are dropped. ``nmi`` clusters the queries with
    scikit-learn's k-means (``seed``) into as many clusters as classes.
    """
    query_array = as_float32(queries, "query vectors")
    q_labels = _as_labels(query_labels, len(query_array), "query_labels")
    leave_one_out = gallery is None
    if leave_one_out:
        gallery_array, g_labels = query_array, q_labels
    else:
        if gallery_labels is None:
            raise ValueError("gallery_labels are needed with a gallery; pass one label per vector")
        gallery_array = as_float32(gallery, "gallery vectors")
        g_labels = _as_labels(gallery_labels, len(gallery_array), "gallery_labels")
    classes, counts = np.unique(g_labels, return_counts=True)
    position = np.searchsorted(classes, q_labels).clip(0, len(classes) - 1)
    r = np.where(classes[position] == q_labels, counts[position], 0) - int(leave_one_out)
    if not (r > 0).any():
        raise ValueError("no query has a relevant gallery item (an item of its class besides it)")
    searchable = len(gallery_array) - int(leave_one_out)
    kept_ks = sorted({int(k) for k in ks if 1 <= int(k) <= searchable})
    if not kept_ks:
        raise ValueError(f"no K in {tuple(ks)} fits a gallery of {searchable} items")
    depth = max(kept_ks[-1], int(r.max()))
    index = FaissIndex.build(gallery_array, distance)
    hits = np.zeros(len(kept_ks))
    sums = np.zeros(3)
    chunk = max(1, min(chunk, 2**22 // (depth + 1)))
    for start in range(0, len(query_array), chunk):
        stop = min(start + chunk, len(query_array))
        ids = _neighbours(index, query_array, start, stop, depth, leave_one_out)
        keep = r[start:stop] > 0
        relevant = g_labels[ids[keep]] == q_labels[start:stop][keep, None]
        found = np.cumsum(relevant, axis=1) > 0
        hits += found[:, [k - 1 for k in kept_ks]].sum(axis=0)
        sums += _chunk_sums(relevant, r[start:stop][keep])
    count = int((r > 0).sum())
    _, r_precision, map_at_r = sums / count
    return RetrievalScores(
        recall={k: float(h / count) for k, h in zip(kept_ks, hits, strict=True)},
        map_at_r=float(map_at_r),
        r_precision=float(r_precision),
        queries=count,
        nmi=normalized_mutual_information(query_array, q_labels, seed) if nmi else None,
        protocol="leave-one-out" if leave_one_out else "query/gallery",
    )


def _neighbours(
    index: FaissIndex, queries: np.ndarray, start: int, stop: int, depth: int, leave_one_out: bool
) -> np.ndarray:
    """``(stop − start, depth)`` gallery ids, nearest first, without the query itself."""
    if not leave_one_out:
        return index.search(queries[start:stop], depth)[1]
    _, ids = index.search(queries[start:stop], depth + 1)
    own = ids == np.arange(start, stop)[:, None]
    own[~own.any(axis=1), -1] = True  # duplicates pushed the query out: drop the last instead
    return ids[~own].reshape(stop - start, depth)


def normalized_mutual_information(
    vectors: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, seed: int = 0
) -> float:
    """NMI between ``labels`` and a k-means clustering of ``(N, D)`` ``vectors`` into as many
    clusters as classes (scikit-learn ``KMeans``, ``n_init=10``, seeded), as the DML literature
    reports it (e.g. Oh Song et al. 2016)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    array = as_float32(vectors, "vectors")
    label_array = _as_labels(labels, len(array), "labels")
    clusters = KMeans(n_clusters=len(np.unique(label_array)), n_init=10, random_state=seed)
    return float(normalized_mutual_info_score(label_array, clusters.fit_predict(array)))


def benchmark_scores(embeddings: Embeddings, distance: Distance) -> RetrievalScores:
    """The retrieval scores of a test set under its benchmark's protocol: query/gallery when its
    items are marked ``query:`` / ``gallery:`` (In-Shop, :func:`metriclab.data.query_gallery`),
    else leave-one-out over all of them."""
    split = query_gallery_positions(embeddings.item_ids)
    vectors, labels = embeddings.vectors, embeddings.labels
    if split is None:
        return retrieval_scores(vectors, labels, distance)
    query, gallery = (torch.from_numpy(positions) for positions in split)
    return retrieval_scores(
        vectors[query], labels[query], distance, vectors[gallery], labels[gallery]
    )
