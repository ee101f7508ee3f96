"""The standard evaluation of an embedding model on unseen classes, as one report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metriclab.data import EpisodeSet, LabeledImages, PairSampler
from metriclab.distances import Distance
from metriclab.evaluation.embed import Embeddings, embed
from metriclab.evaluation.episodes import EpisodeResult, PairHead, evaluate_episodes
from metriclab.evaluation.index import FaissIndex
from metriclab.evaluation.verification import VerificationResult, verification_metrics

#: Learned score of aligned pairs ``(N, D)``, ``(N, D)`` → ``(N,)``, higher = more alike.
AlignedHead = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Report:
    """What ``metriclab eval`` prints and saves."""

    episodes: dict[str, EpisodeResult]
    precision_at_1: float
    verification: VerificationResult
    num_classes: int
    num_items: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": {"classes": self.num_classes, "items": self.num_items},
            "episodes": {
                name: {
                    "accuracy": r.mean,
                    "ci95": r.ci95,
                    "episodes": len(r.per_episode),
                }
                for name, r in self.episodes.items()
            },
            "knn": {"precision_at_1": self.precision_at_1},
            "verification": {
                "auc": self.verification.auc,
                "eer": self.verification.eer,
                "eer_threshold": self.verification.eer_threshold,
                "tar_at_far": {str(k): v for k, v in self.verification.tar_at_far.items()},
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        rows = [("metric", "value")]
        rows += [(f"{name} accuracy", str(result)) for name, result in self.episodes.items()]
        rows.append(("kNN precision@1 (FAISS)", f"{100 * self.precision_at_1:.2f} %"))
        rows.append(("verification ROC AUC", f"{self.verification.auc:.4f}"))
        rows.append(("verification EER", f"{100 * self.verification.eer:.2f} %"))
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines)


def leave_one_out_precision_at_1(embeddings: Embeddings, distance: Distance) -> float:
    """Fraction of items whose nearest other item (FAISS, exact) has the same label."""
    index = FaissIndex.build(embeddings.vectors, distance)
    _, ids = index.search(embeddings.vectors, k=2)
    # Column 0 is normally the item itself; with duplicate vectors it may be its twin instead.
    own = np.arange(len(ids))
    neighbour = np.where(ids[:, 0] == own, ids[:, 1], ids[:, 0])
    labels = embeddings.labels.numpy()
    return float((labels[neighbour] == labels).mean())


def evaluate_model(
    embedding_net: torch.nn.Module,
    distance: Distance,
    data: LabeledImages,
    episode_sets: dict[str, EpisodeSet],
    pairs: int,
    seed: int,
    aligned_head: AlignedHead | None = None,
    matrix_head: PairHead | None = None,
    progress: bool = True,
) -> Report:
    """Embed ``data`` once, then score episodes, FAISS 1-NN and verification on those vectors.

    ``aligned_head`` / ``matrix_head`` (e.g. a SiameseNet's ``logits`` / ``logit_matrix``) score
    pairs when given; otherwise the score is ``−distance``.
    """
    embeddings = embed(embedding_net, data, progress=progress)
    results = {
        name: evaluate_episodes(
            embeddings, episode_set, distance, scorer="nearest", head=matrix_head
        )
        for name, episode_set in episode_sets.items()
    }
    first, second, same = next(iter(PairSampler(data.labels, pairs, batches=1, seed=seed)))
    e1, e2 = embeddings.vectors[first], embeddings.vectors[second]
    with torch.no_grad():
        scores = aligned_head(e1, e2) if aligned_head is not None else -distance(e1, e2)
    return Report(
        episodes=results,
        precision_at_1=leave_one_out_precision_at_1(embeddings, distance),
        verification=verification_metrics(scores, same),
        num_classes=data.num_classes,
        num_items=len(data),
    )
