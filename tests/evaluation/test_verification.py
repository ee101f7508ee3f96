"""verification_metrics against scikit-learn, a hand-worked example and brute-force thresholds."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from metriclab.evaluation import verification_metrics


def brute_force_tar(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """Best TAR over every threshold t (accept when score ≥ t) whose FAR does not exceed ``far``."""
    best = 0.0
    for t in np.unique(scores):
        if (scores[~same] >= t).mean() <= far:
            best = max(best, (scores[same] >= t).mean())
    return best


def test_hand_worked_example() -> None:
    # different: 0.1 0.2 0.3 0.6; same: 0.4 0.5 0.7 0.8. At t = 0.5: FAR = 1/4 (0.6), FRR = 1/4 (0.4).
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.5, 0.7, 0.8])
    same = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    result = verification_metrics(scores, same, fars=(0.01, 0.25))
    assert result.eer == pytest.approx(0.25) and result.eer_threshold == pytest.approx(0.5)
    assert result.tar_at_far == {0.01: 0.5, 0.25: 1.0}  # t = 0.7 keeps FAR 0; t = 0.4 keeps 1/4
    # 0.4 and 0.5 rank below the different pair 0.6: 14 of the 16 same × different pairs ordered right.
    assert result.auc == pytest.approx(14 / 16)


def test_agrees_with_scikit_learn_and_brute_force() -> None:
    rng = np.random.default_rng(0)
    same = rng.random(3000) < 0.5
    scores = rng.normal(size=3000) + same * 2.0
    scores = np.round(scores, 1)  # many ties: ROC points that sklearn's plot curve would drop
    result = verification_metrics(scores, same, fars=(1e-3, 1e-2, 0.05))
    assert result.auc == pytest.approx(roc_auc_score(same, scores), abs=1e-12)
    fpr, tpr, thresholds = roc_curve(same, scores)
    np.testing.assert_array_equal(result.fpr, fpr)
    np.testing.assert_array_equal(result.tpr, tpr)
    np.testing.assert_array_equal(result.thresholds, thresholds)
    for far, tar in result.tar_at_far.items():
        assert tar == pytest.approx(brute_force_tar(scores, same, far), abs=1e-12)


def test_eer_threshold_balances_false_accepts_and_rejects() -> None:
    rng = np.random.default_rng(1)
    same = rng.random(4000) < 0.3
    scores = rng.normal(size=4000) + same * 1.5
    result = verification_metrics(scores, same)
    far = (scores[~same] >= result.eer_threshold).mean()
    frr = (scores[same] < result.eer_threshold).mean()
    assert abs(far - frr) < 0.01 and abs(result.eer - (far + frr) / 2) < 0.01


def test_perfect_separation() -> None:
    result = verification_metrics(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert result.auc == 1.0 and result.eer == 0.0
    assert result.tar_at_far == {1e-3: 1.0, 1e-2: 1.0}


def test_roc_points_are_thinned_evenly_with_both_ends() -> None:
    rng = np.random.default_rng(2)
    same = rng.random(5000) < 0.5
    result = verification_metrics(rng.normal(size=5000) + same, same)
    points = result.roc_points(max_points=50)
    assert 2 <= len(points["fpr"]) <= 50 and len(points["fpr"]) == len(points["tpr"])
    assert points["fpr"][0] == 0.0 and points["fpr"][-1] == 1.0 and points["tpr"][-1] == 1.0
    assert np.all(np.diff(points["fpr"]) >= 0)


@pytest.mark.parametrize(
    ("scores", "same", "message"),
    [
        (np.ones(3), np.ones(3), "both same and different"),
        (np.ones(3), np.ones(2), r"must both be \(N,\)"),
        (np.array([0.0, np.nan]), np.array([0, 1]), "NaN or infinite"),
        (np.array([]), np.array([]), "both same and different"),
    ],
)
def test_bad_input(scores, same, message) -> None:
    with pytest.raises(ValueError, match=message):
        verification_metrics(scores, same)
    with pytest.raises(ValueError, match=r"every FAR in fars must lie in \(0, 1\)"):
        verification_metrics(np.array([0.0, 1.0]), np.array([0, 1]), fars=(0.0,))
