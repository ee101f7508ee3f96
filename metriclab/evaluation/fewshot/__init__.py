"""Few-shot episode methods, one per file, each registered in :data:`~metriclab.evaluation.
episodes.SCORERS` under its ``eval.scorer`` name.

Inductive (each query scored from the support alone): ``simpleshot``, ``finetune``, and the
model's learned comparators ``matching`` and ``relation``.
Transductive (queries of an episode inform each other): ``bd_cspn``, ``laplacianshot``, ``tim``,
``pt_map``. All score batches of episodes ``(E, N, K, D)`` / ``(E, Q, D)`` at once.
"""

from metriclab.evaluation.fewshot.bd_cspn import BDCSPN, rectified_prototypes
from metriclab.evaluation.fewshot.comparators import ComparatorScorer
from metriclab.evaluation.fewshot.finetune import Finetune
from metriclab.evaluation.fewshot.laplacianshot import LaplacianShot
from metriclab.evaluation.fewshot.pt_map import PTMAP
from metriclab.evaluation.fewshot.simpleshot import (
    TRAIN_MEAN,
    SimpleShot,
    cl2n,
    load_train_mean,
    store_train_mean,
)
from metriclab.evaluation.fewshot.tim import TIM

__all__ = [
    "BDCSPN",
    "PTMAP",
    "TIM",
    "TRAIN_MEAN",
    "ComparatorScorer",
    "Finetune",
    "LaplacianShot",
    "SimpleShot",
    "cl2n",
    "load_train_mean",
    "rectified_prototypes",
    "store_train_mean",
]
