"""Evaluation: embed once, FAISS search, episodic accuracy with CIs, verification metrics."""

from metriclab.evaluation.embed import Embeddings, embed
from metriclab.evaluation.episodes import (
    EpisodeResult,
    confidence_interval,
    evaluate_episodes,
)
from metriclab.evaluation.index import FaissIndex
from metriclab.evaluation.report import Report, evaluate_model, leave_one_out_precision_at_1
from metriclab.evaluation.verification import VerificationResult, verification_metrics

__all__ = [
    "Embeddings",
    "EpisodeResult",
    "FaissIndex",
    "Report",
    "VerificationResult",
    "confidence_interval",
    "embed",
    "evaluate_episodes",
    "evaluate_model",
    "leave_one_out_precision_at_1",
    "verification_metrics",
]
