"""DIR@FAR (TPIR@FPIR) and the open-set threshold against naive loops over every threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.bundle import threshold_at_far
from metriclab.evaluation.openset import dir_at_far, evaluate_open_set, tpir_at_fpir

distances = st.lists(st.integers(0, 20).map(float), min_size=1, max_size=40)


def _naive_dir(known: list[float], correct: list[bool], unknown: list[float], far: float) -> float:
    """DIR at the loosest candidate threshold whose FAR ≤ far, trying every threshold by hand."""
    candidates = sorted({*known, *unknown, -1.0, float("inf")})
    best = 0.0
    for t in candidates:
        false_alarms = sum(d <= t for d in unknown) / len(unknown)
        if false_alarms <= far:
            best = max(
                best, sum(c and d <= t for d, c in zip(known, correct, strict=True)) / len(known)
            )
    return best


@settings(max_examples=80, deadline=None)
@given(
    known=distances,
    unknown=distances,
    far=st.sampled_from([0.0, 0.05, 0.25, 0.5, 1.0]),
    seed=st.integers(0, 99),
)
def test_dir_at_far_equals_naive(
    known: list[float], unknown: list[float], far: float, seed: int
) -> None:
    correct = list(np.random.default_rng(seed).random(len(known)) < 0.7)
    result = dir_at_far(np.array(known), np.array(correct), np.array(unknown), fars=(far,))
    assert result.dir[0] == pytest.approx(_naive_dir(known, correct, unknown, far))
    assert result.dir[0] <= result.rank1
    accepted = np.mean(np.array(unknown) <= result.thresholds[0])
    assert accepted <= far


@settings(max_examples=40, deadline=None)
@given(known=distances, unknown=distances)
def test_dir_grows_with_far(known: list[float], unknown: list[float]) -> None:
    result = tpir_at_fpir(
        np.array(known), np.ones(len(known), bool), np.array(unknown), (0.0, 0.1, 0.5, 1.0)
    )
    assert list(result.dir) == sorted(result.dir)
    assert result.dir[-1] == result.rank1 == 1.0


def test_threshold_at_far_ties_and_errors() -> None:
    assert (
        threshold_at_far(np.array([1.0, 1.0, 2.0, 3.0]), 0.25) < 1.0
    )  # a tie may not slip through
    loosest = threshold_at_far(np.array([1.0, 2.0, 3.0, 4.0]), 0.5)  # two of four may pass
    assert 2.0 < loosest < 3.0 and loosest == pytest.approx(3.0)
    assert threshold_at_far(np.array([1.0]), 1.0) == float("inf")
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        threshold_at_far(np.array([1.0]), 1.5)


def test_evaluate_open_set_on_separable_classes() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 10)
    vectors = np.eye(6)[labels] * 10 + rng.normal(scale=0.1, size=(60, 6))

    def matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a[:, None] - b[None], axis=-1)

    result = evaluate_open_set(vectors, labels, matrix, enrolled_fraction=0.5, seed=0)
    assert result.known == 3 * 9 and result.unknown == 3 * 10
    assert result.rank1 == 1.0 and result.dir == (1.0, 1.0, 1.0)
    # Overlapping classes: detection suffers at a strict FAR, never above rank-1.
    blurred = evaluate_open_set(rng.normal(size=(60, 6)), labels, matrix, seed=0)
    assert blurred.dir[0] <= blurred.dir[-1] <= blurred.rank1 < 1.0
