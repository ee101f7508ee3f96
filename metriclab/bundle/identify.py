"""The search behind :class:`~metriclab.bundle.gallery.Gallery`: an exact FAISS index under the
bundle's distance, searched in chunks, and the three decision rules.

A bundle with a learned comparator (Matching or Relation Networks) ranks by its pair score
instead: FAISS finds each query's ``shortlist`` nearest items under the embedding's distance and
the comparator re-scores them (:func:`rerank`); the comparator's distance is ``−score``, so every
rule and threshold below reads it as it reads a distance. A comparator has no FAISS form, so a
match outside the shortlist is never seen; calibration (:func:`nearest_of`) uses the same
shortlist, so a gallery rejects exactly as it was calibrated.

FAISS is imported on first use, after torch when torch is installed: both ship an OpenMP
runtime, and loading FAISS's first crashes torch on some platforms (DESIGN.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from metriclab.bundle.comparator import PairScorer
from metriclab.bundle.runtime import Bundle
from metriclab.bundle.scoring import NumpyDistance
from metriclab.bundle.sources import Item

_METRICS = {"l1": "METRIC_L1", "l2": "METRIC_L2", "inner_product": "METRIC_INNER_PRODUCT"}
#: How many nearest items (by the embedding's distance) a learned comparator re-scores per query.
SHORTLIST = 100
#: Pairs a comparator scores in one call: bounds the (pairs, D) inputs it is handed.
_PAIRS = 1 << 15


def faiss_module() -> Any:
    """``faiss``, imported after torch when torch is installed (see the module docstring)."""
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    import faiss

    return faiss


class FlatIndex:
    """Exact FAISS search whose distances are the bundle distance's values.

    Memory: the index holds ``(N, D)`` float32; :meth:`search` adds O(chunk · (D + k)) at a time
    besides its ``(Nq, k)`` results.
    """

    def __init__(self, scorer: NumpyDistance) -> None:
        self.scorer = scorer
        self.index: Any = None

    def add(self, vectors: np.ndarray) -> None:
        """Add raw embeddings ``(n, D)`` (FAISS appends; nothing is rebuilt)."""
        if self.index is None:
            faiss = faiss_module()
            self.index = faiss.IndexFlat(
                vectors.shape[1], getattr(faiss, _METRICS[self.scorer.faiss_metric])
            )
        self.index.add(self.scorer.faiss_vectors(vectors))

    def search(
        self, queries: np.ndarray, k: int, chunk: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest items of each query ``(Nq, D)``: distances and ids ``(Nq, k)``."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.index.d:
            raise ValueError(
                f"queries must be (N, {self.index.d}) embeddings of the gallery's bundle, got "
                f"shape {queries.shape}"
            )
        distances = np.empty((len(queries), k), np.float32)
        ids = np.empty((len(queries), k), np.int64)
        for start in range(0, len(queries), chunk):
            part = self.scorer.faiss_vectors(queries[start : start + chunk])
            found_d, found_i = self.index.search(part, k)
            distances[start : start + len(part)] = self.scorer.from_faiss(found_d)
            ids[start : start + len(part)] = found_i
        return distances, ids


def check_shortlist(shortlist: int) -> int:
    """``shortlist`` if it is a positive integer, else one sentence saying what it must be."""
    if isinstance(shortlist, bool) or not isinstance(shortlist, int) or shortlist < 1:
        raise ValueError(
            f"shortlist must be a positive integer (default {SHORTLIST}), got {shortlist!r}"
        )
    return shortlist


def pair_distances(comparator: PairScorer, queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """A learned comparator as a distance: ``−score`` of every query ``(Nq, D)`` against every
    item ``(Ni, D)`` → ``(Nq, Ni)``. The item is the comparator's first input, the class side (a
    Relation Network scores its second input as a query against the first as a one-shot class)."""
    queries = np.asarray(queries, dtype=np.float32)
    items = np.asarray(items, dtype=np.float32)
    out = np.empty((len(queries), len(items)), np.float32)
    rows = max(1, _PAIRS // max(len(items), 1))
    for start in range(0, len(queries) if len(items) else 0, rows):
        part = queries[start : start + rows]
        first = np.tile(items, (len(part), 1))
        second = np.repeat(part, len(items), axis=0)
        out[start : start + len(part)] = -comparator(first, second).reshape(len(part), -1)
    return out


def rerank(
    comparator: PairScorer, queries: np.ndarray, items: np.ndarray, ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Re-score each query's candidates ``ids`` ``(Nq, S)`` (``-1``: none) among ``items``
    ``(N, D)`` with the comparator: distances ``−score`` and ids ``(Nq, k)``, best first (ties:
    the candidate FAISS ranked first)."""
    valid = ids >= 0
    distances = np.full(ids.shape, np.inf, np.float32)
    rows = max(1, _PAIRS // max(ids.shape[1], 1))
    for start in range(0, len(ids), rows):
        part = slice(start, start + rows)
        mask = valid[part]
        if mask.any():
            first = items[ids[part][mask]]
            second = np.repeat(queries[part], mask.sum(axis=1), axis=0)
            block = distances[part]  # a view: filled in place
            block[mask] = -comparator(first, second)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    ranked = np.take_along_axis(distances, order, axis=1)
    return ranked, np.where(np.isfinite(ranked), np.take_along_axis(ids, order, axis=1), -1)


def search(
    index: FlatIndex, items: np.ndarray, queries: np.ndarray, k: int, chunk: int,
    comparator: PairScorer | None = None, shortlist: int = SHORTLIST,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The ``k`` best of ``items`` ``(N, D)`` (indexed by ``index``) for each query ``(Nq, D)``:
    distances and ids ``(Nq, k)``; by the distance, or re-ranked by ``comparator``."""
    if comparator is None:
        return index.search(queries, k, chunk)
    candidates = index.search(queries, min(len(items), max(k, shortlist)), chunk)[1]
    return rerank(comparator, np.asarray(queries, np.float32), items, candidates, k)


def embed_items(
    bundle: Bundle, items: Sequence[Item], progress: bool, batch: int = 256
) -> np.ndarray:
    """Embeddings ``(N, D)`` of image items, decoded and embedded ``batch`` at a time."""
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(items), unit="img", disable=not progress, desc="embedding") as bar:
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            parts.append(bundle.embed(bundle.decode([item.path for item in chunk])))
            bar.update(len(chunk))
    return np.concatenate(parts)


def decide(
    distances: np.ndarray, ids: np.ndarray, classes: np.ndarray, item_ids: np.ndarray
) -> list[tuple[str, float, str | None]]:
    """Per query: the class with most votes among its k neighbours ``(Nq, k)`` (ties: the class
    whose nearest member is nearer), that member's distance and id. k = 1 is nearest neighbour."""
    answers = []
    for row_d, row_i in zip(distances, ids, strict=True):
        valid = row_i >= 0
        labels = classes[row_i[valid]]
        names, first, votes = np.unique(labels, return_index=True, return_counts=True)
        # Neighbours come nearest first, so a class's first index is its nearest member.
        best = min(range(len(names)), key=lambda j: (-votes[j], first[j]))
        member = int(row_i[valid][first[best]])
        answers.append((str(names[best]), float(row_d[valid][first[best]]), str(item_ids[member])))
    return answers


def prototypes(vectors: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class names ``(C,)`` and mean embeddings ``(C, D)`` (Snell et al. 2017's prototypes)."""
    names, inverse, counts = np.unique(classes, return_inverse=True, return_counts=True)
    sums = np.zeros((len(names), vectors.shape[1]), np.float64)
    np.add.at(sums, inverse, vectors)
    return names, (sums / counts[:, None]).astype(np.float32)


def nearest_prototype(
    scorer: NumpyDistance, protos: np.ndarray, queries: np.ndarray, chunk: int,
    comparator: PairScorer | None = None, shortlist: int = SHORTLIST,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Index ``(Nq,)`` and distance ``(Nq,)`` of each query's nearest prototype (by the
    distance, or re-ranked by ``comparator``: see :func:`search`)."""
    index = FlatIndex(scorer)
    index.add(protos)
    distances, ids = search(index, protos, queries, 1, chunk, comparator, shortlist)
    return ids[:, 0], distances[:, 0]


def nearest_of(
    scorer: NumpyDistance, vectors: np.ndarray, labels: np.ndarray, probes: np.ndarray,
    other: bool, comparator: PairScorer | None = None, shortlist: int = SHORTLIST,
) -> np.ndarray:  # fmt: skip
    """Per probe item: distance ``(P,)`` to its nearest item of another class (``other``) or to
    its nearest other item of its own class (``inf`` when it has none). Exact, a probe at a time
    against the whole gallery: O(P · N · D). With ``comparator``: the best ``−score`` among those
    items' ``shortlist`` nearest by the distance, as :func:`search` would find it."""
    out = np.empty(len(probes), np.float64)
    for row, probe in enumerate(probes):
        distances = scorer.matrix(vectors[probe : probe + 1], vectors)[0].astype(np.float64)
        mask = labels != labels[probe] if other else labels == labels[probe]
        mask[probe] = mask[probe] and other
        if not mask.any():
            out[row] = np.inf
        elif comparator is None:
            out[row] = distances[mask].min()
        else:
            candidates = np.flatnonzero(mask)
            nearest = np.argsort(distances[candidates], kind="stable")[:shortlist]
            candidates = candidates[nearest]
            out[row] = pair_distances(
                comparator, vectors[probe : probe + 1], vectors[candidates]
            ).min()
    return out
