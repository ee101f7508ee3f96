"""k-nearest-neighbour classification of unseen classes and retrieval metrics, on FAISS.

Retrieval metrics follow Musgrave, Belongie & Lim 2020, "A Metric Learning Reality Check" (§3.2),
with the conventions of pytorch-metric-learning's ``AccuracyCalculator`` when the reference set is
the query set itself: each item queries all the others (leave-one-out), ``R`` is the number of
other items of its class, and items alone in their class (``R = 0``) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metriclab.distances import Distance
from metriclab.evaluation.index import FaissIndex, as_float32


def majority_vote(neighbour_labels: torch.Tensor) -> torch.Tensor:
    """The label most frequent among each row's neighbours, ``(..., k)`` → ``(...)``.

    Neighbours are ranked nearest first. Tie rule: among the labels with the most votes, the one
    whose nearest member ranks first wins (so k = 1 is 1-NN, and the rule never depends on how
    labels are numbered).
    """
    k = neighbour_labels.shape[-1]
    # votes[..., j] = how many of the k neighbours share neighbour j's label (O(k²) per row).
    votes = (neighbour_labels.unsqueeze(-1) == neighbour_labels.unsqueeze(-2)).sum(-1)
    # More votes dominate; among equal votes the earliest rank j wins, since j < k + 1.
    key = votes * (k + 1) - torch.arange(k, device=neighbour_labels.device)
    return neighbour_labels.gather(-1, key.argmax(-1, keepdim=True)).squeeze(-1)


def knn_classify(
    gallery_vectors: torch.Tensor | np.ndarray,
    gallery_labels: torch.Tensor | np.ndarray,
    query_vectors: torch.Tensor | np.ndarray,
    k: int,
    distance: Distance,
    chunk: int = 4096,
) -> np.ndarray:
    """Label ``(Nq, D)`` queries by a majority vote of their ``k`` nearest gallery items.

    For unseen classes the gallery is the labelled support (K per class) and the queries are the
    rest. Exact (flat FAISS) search under ``distance``; ties as in :func:`majority_vote`.
    Returns ``(Nq,)`` int64 predicted labels.
    """
    index = FaissIndex.build(gallery_vectors, distance, labels=gallery_labels)
    _, ids = index.search(query_vectors, k, chunk=chunk)
    labels = torch.from_numpy(index.labels)
    predicted = []
    for start in range(0, len(ids), chunk):  # the vote holds (chunk, k, k) booleans at a time
        predicted.append(majority_vote(labels[torch.from_numpy(ids[start : start + chunk])]))
    return torch.cat(predicted).numpy()


def gallery_split(
    labels: torch.Tensor | np.ndarray, shots: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a seeded gallery of ``shots`` items per class and of the remaining queries.

    Classes with no more than ``shots`` items are left out entirely (they would have no query).
    """
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]  # by class, random within a class
    _, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    usable = np.repeat(counts > shots, counts)
    if not usable.any():
        raise ValueError(f"no class has more than shots={shots} items, so nothing is left to query")
    gallery = order[usable & (rank < shots)]
    query = order[usable & (rank >= shots)]
    return np.sort(gallery), np.sort(query)


@dataclass(frozen=True)
class RetrievalMetrics:
    """Leave-one-out retrieval metrics (Musgrave et al. 2020), averaged over ``queries`` items."""

    precision_at_1: float
    r_precision: float
    map_at_r: float
    queries: int


def retrieval_metrics(
    vectors: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    distance: Distance,
    chunk: int = 4096,
) -> RetrievalMetrics:
    """Precision@1, R-precision and MAP@R of ``(N, D)`` vectors with ``(N,)`` labels.

    For item i with ``R_i`` other items of its class and neighbours ranked nearest first (itself
    excluded): ``P@1 = rel_1``, ``R-precision = (1/R_i) Σ_{j≤R_i} rel_j`` and
    ``MAP@R = (1/R_i) Σ_{j≤R_i} rel_j · P@j``, where ``rel_j`` says neighbour j shares i's label.
    One flat FAISS index over all items is searched with ``k = max R + 1``; like PML, the item's
    own id is removed from its list (or, if duplicates pushed it out, the last neighbour is).
    """
    array = as_float32(vectors, "vectors")
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if labels.shape != (len(array),):
        raise ValueError(f"labels must have shape ({len(array)},), got {labels.shape}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    r = counts[inverse] - 1
    if r.max() == 0:
        raise ValueError("every class has a single item, so no item has a relevant neighbour")
    index = FaissIndex.build(array, distance)
    k = int(r.max()) + 1
    sums = np.zeros(3)
    chunk = max(1, min(chunk, 2**22 // k))  # bound the (chunk, k) work arrays for huge classes
    for start in range(0, len(array), chunk):
        stop = min(start + chunk, len(array))
        _, ids = index.search(array[start:stop], k)
        own = ids == np.arange(start, stop)[:, None]
        own[~own.any(axis=1), -1] = True
        ids = ids[~own].reshape(stop - start, k - 1)
        keep = r[start:stop] > 0
        sums += _chunk_sums(
            labels[ids[keep]] == labels[start:stop][keep, None], r[start:stop][keep]
        )
    queries = int((r > 0).sum())
    p1, rp, mapr = sums / queries
    return RetrievalMetrics(float(p1), float(rp), float(mapr), queries)


def _chunk_sums(relevant: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Sums over rows of P@1, R-precision and MAP@R, from ``(n, K)`` relevance and ``(n,)`` R."""
    within = np.arange(relevant.shape[1]) < r[:, None]
    hits = relevant & within
    precision_at_j = np.cumsum(hits, axis=1) / np.arange(1, relevant.shape[1] + 1)
    return np.array(
        [
            relevant[:, 0].sum(),
            (hits.sum(axis=1) / r).sum(),
            ((precision_at_j * hits).sum(axis=1) / r).sum(),
        ]
    )
