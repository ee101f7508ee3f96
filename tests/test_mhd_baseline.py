"""Lake's Modified Hausdorff Distance baseline (scripts/mhd_baseline.py) against its formula."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import mhd_baseline as mhd

from metriclab.data import EpisodeSet


def naive_mhd(a: np.ndarray, b: np.ndarray) -> float:
    """Dubuisson & Jain's formula, one point at a time."""

    def directed(x: np.ndarray, y: np.ndarray) -> float:
        return sum(min(float(np.hypot(*(p - q))) for q in y) for p in x) / len(x)

    return max(directed(a, b), directed(b, a))


points = arrays(
    np.float64,
    st.tuples(st.integers(1, 12), st.just(2)),
    elements=st.floats(-50, 50, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(points, points)
def test_mhd_equals_the_formula_and_is_symmetric(a: np.ndarray, b: np.ndarray) -> None:
    expected = naive_mhd(a, b)
    assert mhd.modified_hausdorff(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert mhd.modified_hausdorff(b, a) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert mhd.modified_hausdorff(a, a) == 0.0


def test_mhd_by_hand() -> None:
    # A = {(0,0)}, B = {(0,3), (4,0)}: A→B mean 3; B→A mean (3 + 4) / 2 = 3.5.
    a, b = np.array([[0.0, 0.0]]), np.array([[0.0, 3.0], [4.0, 0.0]])
    assert mhd.modified_hausdorff(a, b) == pytest.approx(3.5)


def test_ink_points_are_centred_so_position_on_the_canvas_does_not_matter() -> None:
    image = np.zeros((20, 20), dtype=np.uint8)
    image[3:6, 4] = 255
    moved = np.roll(image, (7, 9), axis=(0, 1))
    assert mhd.modified_hausdorff(mhd.ink_points(image), mhd.ink_points(moved)) == 0.0
    assert mhd.ink_points(image).mean(axis=0) == pytest.approx([0.0, 0.0])
    with pytest.raises(ValueError, match="blank"):
        mhd.ink_points(np.zeros((5, 5), dtype=np.uint8))


def _shape(kind: str, jitter: int) -> np.ndarray:
    image = np.zeros((24, 24), dtype=np.uint8)
    if kind == "bar":
        image[4:20, 10 + jitter % 2] = 255
    elif kind == "dash":
        image[12 + jitter % 2, 4:20] = 255
    else:
        image[6:18, 6:18] = 255
    return mhd.ink_points(image)


def test_episode_accuracy_counts_right_and_wrong_queries() -> None:
    kinds = ["bar", "dash", "box"]
    items = {f"{k}/{j}": _shape(k, j) for k in kinds for j in range(3)}
    classes = np.array([kinds])
    support = np.array([[[f"{k}/0"] for k in kinds]])
    query = np.array([[[f"{k}/1", f"{k}/2"] for k in kinds]])
    episodes = EpisodeSet(classes, support, query)
    assert mhd.episode_accuracies(episodes, items).tolist() == [1.0]
    # Swap the dash and box queries: they now sit under the wrong class, 2 of 6 right.
    swapped = EpisodeSet(classes, support, query[:, [0, 2, 1]])
    assert mhd.episode_accuracies(swapped, items).tolist() == [pytest.approx(2 / 6)]
