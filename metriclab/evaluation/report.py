"""The standard evaluation of an embedding model on unseen classes, as one report."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from metriclab.data import EpisodeSet, LabeledImages, PairSampler
from metriclab.distances import Distance
from metriclab.evaluation.embed import Embeddings, embed
from metriclab.evaluation.episodes import EpisodeResult, Scorer, evaluate_episodes
from metriclab.evaluation.knn import (
    RetrievalMetrics,
    gallery_split,
    knn_classify,
    retrieval_metrics,
)
from metriclab.evaluation.retrieval import benchmark_scores
from metriclab.evaluation.verification import (
    AlignedHead,
    VerificationResult,
    score_pairs,
    verification_metrics,
)


@dataclass(frozen=True)
class KnnAccuracy:
    """Accuracy of k-NN over all unseen classes at once, with ``shots`` labelled items per class."""

    accuracy: float
    k: int
    shots: int
    queries: int


_ROC_PLACEHOLDER = "@roc_points@"


def _finite(value: float) -> float | None:
    """JSON has no NaN: an undefined value (e.g. the CI of one episode) becomes null."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Report:
    """What ``metriclab eval`` prints and saves; ``views`` > 1: test-time augmented embeddings."""

    episodes: dict[str, EpisodeResult]
    retrieval: RetrievalMetrics
    knn: KnnAccuracy
    verification: VerificationResult
    num_classes: int
    num_items: int
    views: int = 1
    #: Recall@K by K, the DML benchmarks' figure (:mod:`.retrieval`), and how it was measured.
    recall: dict[int, float] = field(default_factory=dict)
    recall_protocol: str = "leave-one-out"

    def to_dict(self) -> dict[str, Any]:
        v = self.verification
        return {
            "data": {"classes": self.num_classes, "items": self.num_items, "views": self.views},
            "episodes": {
                name: {
                    "accuracy": r.mean,
                    "ci95": _finite(r.ci95),
                    "episodes": len(r.per_episode),
                    "scorer": r.scorer,
                    "inference": r.inference,
                }
                for name, r in self.episodes.items()
            },
            "knn": {
                "precision_at_1": self.retrieval.precision_at_1,
                "r_precision": self.retrieval.r_precision,
                "map_at_r": self.retrieval.map_at_r,
                "retrieval_queries": self.retrieval.queries,
                "recall_at": {str(k): value for k, value in self.recall.items()},
                "recall_protocol": self.recall_protocol,
                "accuracy": self.knn.accuracy,
                "accuracy_k": self.knn.k,
                "accuracy_shots": self.knn.shots,
                "accuracy_queries": self.knn.queries,
            },
            "verification": {
                "auc": v.auc,
                "eer": v.eer,
                "eer_threshold": v.eer_threshold,
                "tar_at_far": {str(far): tar for far, tar in v.tar_at_far.items()},
                "roc_points": v.roc_points(),
            },
        }

    def to_json(self) -> str:
        """Indented JSON; the long ROC arrays stay on one line each so the file reads well."""
        record = self.to_dict()
        roc = record["verification"]["roc_points"]
        record["verification"]["roc_points"] = _ROC_PLACEHOLDER
        text = json.dumps(record, indent=2)
        inline = (
            "{" + ", ".join(f'"{key}": {json.dumps(value)}' for key, value in roc.items()) + "}"
        )
        return text.replace(f'"{_ROC_PLACEHOLDER}"', inline)

    def table(self) -> str:
        """A two-column text table: one row per metric."""
        r, v = self.retrieval, self.verification
        rows = [("metric", "value")]
        if self.views > 1:
            rows.append(("test-time augmentation", f"mean of {self.views} views per image"))
        rows += [
            (f"{name} accuracy ({result.inference})", str(result))
            for name, result in self.episodes.items()
        ]
        rows.append(
            (
                f"kNN accuracy (k={self.knn.k}, {self.knn.shots}-shot gallery)",
                _pct(self.knn.accuracy),
            )
        )
        rows.append(("retrieval precision@1", _pct(r.precision_at_1)))
        rows.append(("retrieval R-precision", _pct(r.r_precision)))
        rows.append(("retrieval MAP@R", _pct(r.map_at_r)))
        if self.recall:
            ks = "/".join(str(k) for k in self.recall)
            values = " / ".join(_pct(value) for value in self.recall.values())
            rows.append((f"retrieval Recall@{ks} ({self.recall_protocol})", values))
        rows.append(("verification ROC AUC", f"{v.auc:.4f}"))
        rows.append(("verification EER", _pct(v.eer)))
        rows += [(f"verification TAR@FAR={far:g}", _pct(tar)) for far, tar in v.tar_at_far.items()]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        return "\n".join(lines)


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def _negative(distance: Distance) -> AlignedHead:
    """``−distance`` as a pair head: without a learned head, closer pairs score higher."""
    return lambda a, b: -distance(a, b)


def knn_accuracy(
    embeddings: Embeddings, distance: Distance, shots: int = 1, k: int = 1, seed: int = 0
) -> KnnAccuracy:
    """k-NN accuracy over all classes: a seeded gallery of ``shots`` items per class, the rest query."""
    gallery, query = gallery_split(embeddings.labels, shots, seed)
    labels = embeddings.labels.numpy()
    vectors = embeddings.vectors
    predicted = knn_classify(vectors[gallery], labels[gallery], vectors[query], k, distance)
    return KnnAccuracy(float((predicted == labels[query]).mean()), k, shots, len(query))


def evaluate_embeddings(
    embeddings: Embeddings,
    distance: Distance,
    episode_sets: dict[str, EpisodeSet],
    pairs: int,
    seed: int,
    scorer: Scorer = "nearest",
    aligned_head: AlignedHead | None = None,
) -> Report:
    """Score episodes, kNN, retrieval and verification on precomputed ``embeddings``.

    ``scorer`` scores the episodes (``"prototype"``, ``"nearest"`` under ``distance``, or a
    :data:`PairScorer` such as a SiameseNet's ``logit_matrix``). Verification pairs are scored by
    ``aligned_head`` (e.g. ``SiameseNet.logits``) when given, else by ``−distance``; kNN accuracy
    and retrieval metrics use ``distance`` on FAISS.
    """
    results = {
        name: evaluate_episodes(
            embeddings, episode_set, scorer, distance=distance if isinstance(scorer, str) else None
        )
        for name, episode_set in episode_sets.items()
    }
    labels = embeddings.labels
    first, second, same = next(iter(PairSampler(labels, pairs, batches=1, seed=seed)))
    head = aligned_head if aligned_head is not None else _negative(distance)
    scores = score_pairs(head, embeddings.vectors, torch.as_tensor(first), torch.as_tensor(second))
    benchmark = benchmark_scores(embeddings, distance)
    return Report(
        episodes=results,
        retrieval=retrieval_metrics(embeddings.vectors, labels, distance),
        knn=knn_accuracy(embeddings, distance, seed=seed),
        verification=verification_metrics(scores, same),
        num_classes=int(torch.unique(labels).numel()),
        num_items=len(labels),
        recall=benchmark.recall,
        recall_protocol=benchmark.protocol,
    )


def evaluate_model(
    embedding_net: torch.nn.Module,
    distance: Distance,
    data: LabeledImages,
    episode_sets: dict[str, EpisodeSet],
    pairs: int,
    seed: int,
    scorer: Scorer = "nearest",
    aligned_head: AlignedHead | None = None,
    progress: bool = True,
    views: torch.Tensor | None = None,
) -> Report:
    """Embed ``data`` once (averaged over ``views`` for test-time augmentation, see
    :func:`~metriclab.evaluation.embed`), then :func:`evaluate_embeddings`."""
    embeddings = embed(embedding_net, data, progress=progress, views=views)
    report = evaluate_embeddings(
        embeddings, distance, episode_sets, pairs, seed, scorer=scorer, aligned_head=aligned_head
    )
    return report if views is None else replace(report, views=len(views))
