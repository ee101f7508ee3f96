"""Verification metrics of same/different scores: ROC AUC, EER, TAR at fixed FAR."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve


@dataclass(frozen=True)
class VerificationResult:
    """ROC summary. ``fpr``, ``tpr`` and ``thresholds`` are the ROC curve (scikit-learn's)."""

    auc: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[float, float]
    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def verification_metrics(
    scores: torch.Tensor | np.ndarray,
    same: torch.Tensor | np.ndarray,
    fars: tuple[float, ...] = (1e-3, 1e-2),
) -> VerificationResult:
    """Metrics of ``(N,)`` scores (higher = more alike) against ``(N,)`` booleans (same class).

    The EER is read where the ROC curve crosses ``FPR = 1 − TPR``, interpolating linearly between
    the two ROC points around the crossing; TAR at a FAR is the highest TPR with ``FPR ≤ FAR``.
    """
    scores = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores)
    same = np.asarray(same.detach().cpu() if isinstance(same, torch.Tensor) else same).astype(bool)
    if scores.shape != same.shape or scores.ndim != 1:
        raise ValueError(f"scores and same must both be (N,), got {scores.shape} and {same.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if same.all() or not same.any():
        raise ValueError("verification metrics need both same and different pairs")
    fpr, tpr, thresholds = roc_curve(same, scores)
    fnr = 1.0 - tpr
    cross = int(np.argmax(fnr <= fpr))  # first ROC point past the crossing
    if cross == 0:
        eer, eer_threshold = float(fpr[0]), float(thresholds[0])
    else:
        # Linear interpolation of (fpr − fnr) between points cross−1 and cross.
        d0, d1 = fpr[cross - 1] - fnr[cross - 1], fpr[cross] - fnr[cross]
        t = d0 / (d0 - d1)
        eer = float(fpr[cross - 1] + t * (fpr[cross] - fpr[cross - 1]))
        upper = thresholds[cross - 1]
        if not np.isfinite(upper):  # scikit-learn's first threshold is +inf ("accept nothing")
            upper = thresholds[cross]
        eer_threshold = float(upper + t * (thresholds[cross] - upper))
    tar = {far: float(tpr[fpr <= far].max(initial=0.0)) for far in fars}
    return VerificationResult(
        auc=float(roc_auc_score(same, scores)),
        eer=eer,
        eer_threshold=eer_threshold,
        tar_at_far=tar,
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
    )
