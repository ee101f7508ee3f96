"""Verification metrics of same/different scores: ROC AUC, EER, TAR at fixed FAR."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

#: Learned score of aligned pairs ``(N, D)``, ``(N, D)`` → ``(N,)``, higher = more alike.
AlignedHead = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def score_pairs(
    head: AlignedHead, vectors: torch.Tensor, first: torch.Tensor, second: torch.Tensor
) -> torch.Tensor:
    """Scores ``(P,)`` of the pairs ``(vectors[first[i]], vectors[second[i]])``, higher = more alike.

    ``vectors`` ``(N, D)``; ``first`` and ``second`` ``(P,)`` positions in it; ``head`` scores
    aligned rows, e.g. ``SiameseNet.logits`` (Koch et al. 2015: ``bias − weighted L1``) or
    ``lambda a, b: -distance(a, b)``. The one pair scorer behind the report's verification
    metrics and a bundle's threshold calibration, so both score a pair the same way.
    """
    first, second = torch.as_tensor(first), torch.as_tensor(second)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(
            f"first and second must both be (P,) positions, got {tuple(first.shape)} and "
            f"{tuple(second.shape)}"
        )
    return head(vectors[first], vectors[second])


@dataclass(frozen=True)
class VerificationResult:
    """ROC summary of a verification task.

    ``fpr``, ``tpr`` and ``thresholds`` are scikit-learn's ROC curve with collinear points dropped
    (what a plot needs); the metrics themselves are read from the full curve.
    """

    auc: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[float, float]
    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    def roc_points(self, max_points: int = 512) -> dict[str, list[float]]:
        """The ROC curve as ``{"fpr": [...], "tpr": [...]}``, thinned evenly to ``max_points``."""
        if max_points < 2:
            raise ValueError(f"max_points must be at least 2, got {max_points}")
        keep = np.unique(np.linspace(0, len(self.fpr) - 1, min(max_points, len(self.fpr))).round())
        keep = keep.astype(np.int64)
        return {"fpr": self.fpr[keep].tolist(), "tpr": self.tpr[keep].tolist()}


def verification_metrics(
    scores: torch.Tensor | np.ndarray,
    same: torch.Tensor | np.ndarray,
    fars: tuple[float, ...] = (1e-3, 1e-2),
) -> VerificationResult:
    """Metrics of ``(N,)`` scores (higher = more alike) against ``(N,)`` booleans (same class).

    A pair is accepted as "same" when its score is ≥ the threshold. The EER is read where the ROC
    curve crosses ``FPR = 1 − TPR``, interpolating linearly between the two ROC points around the
    crossing (its threshold likewise); TAR at a FAR is the highest TPR of an ROC point with
    ``FPR ≤ FAR``. AUC and the ROC curve are scikit-learn's.
    """
    scores = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores)
    same = np.asarray(same.detach().cpu() if isinstance(same, torch.Tensor) else same).astype(bool)
    if scores.shape != same.shape or scores.ndim != 1:
        raise ValueError(f"scores and same must both be (N,), got {scores.shape} and {same.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if same.all() or not same.any():
        raise ValueError("verification metrics need both same and different pairs")
    if not all(0.0 < far < 1.0 for far in fars):
        raise ValueError(f"every FAR in fars must lie in (0, 1), got {fars}")
    # Every operating point: dropping "collinear" points could lose the best TPR below a FAR.
    fpr, tpr, thresholds = roc_curve(same, scores, drop_intermediate=False)
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
    plot_fpr, plot_tpr, plot_thresholds = roc_curve(same, scores)
    return VerificationResult(
        auc=float(roc_auc_score(same, scores)),
        eer=eer,
        eer_threshold=eer_threshold,
        tar_at_far=tar,
        fpr=plot_fpr,
        tpr=plot_tpr,
        thresholds=plot_thresholds,
    )
