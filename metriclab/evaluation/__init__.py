"""Evaluation: embed once, FAISS search, kNN and retrieval metrics, episodic accuracy with CIs,
verification metrics, and the report that gathers them."""

from metriclab.evaluation.embed import Embeddings, embed
from metriclab.evaluation.episodes import (
    EpisodeResult,
    PairScorer,
    Scorer,
    confidence_interval,
    evaluate_episodes,
)
from metriclab.evaluation.fewshot import (
    BDCSPN,
    PTMAP,
    TIM,
    Finetune,
    LaplacianShot,
    SimpleShot,
)
from metriclab.evaluation.index import FaissIndex
from metriclab.evaluation.knn import (
    RetrievalMetrics,
    gallery_split,
    knn_classify,
    majority_vote,
    retrieval_metrics,
)
from metriclab.evaluation.method import EpisodeMethod, ScorerContext
from metriclab.evaluation.report import (
    KnnAccuracy,
    Report,
    evaluate_embeddings,
    evaluate_model,
    knn_accuracy,
)
from metriclab.evaluation.retrieval import (
    RECALL_KS,
    RetrievalScores,
    benchmark_scores,
    normalized_mutual_information,
    retrieval_scores,
)
from metriclab.evaluation.verification import (
    AlignedHead,
    VerificationResult,
    score_pairs,
    verification_metrics,
)

__all__ = [
    "BDCSPN",
    "PTMAP",
    "RECALL_KS",
    "TIM",
    "AlignedHead",
    "Embeddings",
    "EpisodeMethod",
    "EpisodeResult",
    "FaissIndex",
    "Finetune",
    "KnnAccuracy",
    "LaplacianShot",
    "PairScorer",
    "Report",
    "RetrievalMetrics",
    "RetrievalScores",
    "Scorer",
    "ScorerContext",
    "SimpleShot",
    "VerificationResult",
    "benchmark_scores",
    "confidence_interval",
    "embed",
    "evaluate_embeddings",
    "evaluate_episodes",
    "evaluate_model",
    "gallery_split",
    "knn_accuracy",
    "knn_classify",
    "majority_vote",
    "normalized_mutual_information",
    "retrieval_metrics",
    "retrieval_scores",
    "score_pairs",
    "verification_metrics",
]
