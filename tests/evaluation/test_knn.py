"""kNN classification and retrieval metrics: naive loops, scikit-learn and PML's AccuracyCalculator."""

import copy
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.neighbors import KNeighborsClassifier

from metriclab.distances import L2, Cosine, WeightedL1
from metriclab.evaluation import gallery_split, knn_classify, majority_vote, retrieval_metrics

METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def brute_force(distance, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All-pairs distances in float64, on a copy of ``distance``."""
    reference = copy.deepcopy(distance).double()
    return reference.matrix(torch.tensor(a).double(), torch.tensor(b).double()).detach().numpy()


def naive_vote(ranked_labels: list[int]) -> int:
    """Most votes; among tied labels, the one appearing first in the ranking."""
    counts = Counter(ranked_labels)
    best = max(counts.values())
    return next(label for label in ranked_labels if counts[label] == best)


def test_majority_vote_on_hand_cases() -> None:
    rows = torch.tensor([[3, 1, 1], [2, 5, 5], [7, 4, 7], [9, 8, 8]])
    assert majority_vote(rows).tolist() == [1, 5, 7, 8]
    # A 2–2 tie goes to the label whose nearest member ranks first.
    assert majority_vote(torch.tensor([[6, 2, 2, 6], [2, 6, 6, 2], [1, 2, 3, 4]])).tolist() == [
        6,
        2,
        1,
    ]
    assert majority_vote(torch.tensor([[5]])).tolist() == [5]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 4), min_size=5, max_size=5), min_size=1, max_size=20))
def test_majority_vote_matches_naive_and_ignores_label_names(rows: list[list[int]]) -> None:
    labels = torch.tensor(rows)
    assert majority_vote(labels).tolist() == [naive_vote(row) for row in rows]
    rename = torch.tensor([3, 0, 4, 1, 2])  # a permutation of the label values
    assert majority_vote(rename[labels]).tolist() == rename[majority_vote(labels)].tolist()


@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize(
    "distance", [L2(), Cosine(), WeightedL1(6, init=0.3)], ids=lambda d: d.name
)
def test_knn_classify_equals_naive_loop(k: int, distance) -> None:
    rng = np.random.default_rng(k)
    gallery_labels = np.repeat(np.arange(5), 4)
    gallery = rng.normal(size=(20, 6)) + gallery_labels[:, None]
    queries = rng.normal(size=(30, 6)) + rng.integers(0, 5, size=30)[:, None]
    predicted = knn_classify(gallery, gallery_labels, queries, k, distance, chunk=7)
    d = brute_force(distance, queries, gallery)
    expected = [naive_vote(list(gallery_labels[np.argsort(row)[:k]])) for row in d]
    np.testing.assert_array_equal(predicted, expected)


def test_knn_classify_k1_equals_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    gallery, labels = rng.normal(size=(50, 4)), rng.integers(0, 7, size=50)
    queries = rng.normal(size=(80, 4))
    expected = (
        KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(gallery, labels).predict(queries)
    )
    np.testing.assert_array_equal(knn_classify(gallery, labels, queries, 1, L2()), expected)


def test_knn_classify_k_larger_than_gallery_is_refused() -> None:
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 3\] \(the gallery size\)"):
        knn_classify(np.ones((3, 2)), np.arange(3), np.ones((1, 2)), 4, L2())


def clustered(seed: int, sizes: list[int], dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    centres = rng.normal(size=(len(sizes), dim))
    vectors = centres[labels] + 0.9 * rng.normal(size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return vectors[order].astype(np.float32), labels[order]


def naive_retrieval(
    vectors: np.ndarray, labels: np.ndarray, distance
) -> tuple[float, float, float]:
    """Musgrave et al. 2020, §3.2, one query at a time with brute-force distances."""
    d = brute_force(distance, vectors, vectors)
    p1, rp, mapr = [], [], []
    for i in range(len(vectors)):
        r = int((labels == labels[i]).sum()) - 1
        if r == 0:
            continue
        ranked = [j for j in np.argsort(d[i], kind="stable") if j != i]
        rel = [labels[j] == labels[i] for j in ranked[:r]]
        p1.append(float(rel[0]))
        rp.append(sum(rel) / r)
        mapr.append(sum(sum(rel[: j + 1]) / (j + 1) for j in range(r) if rel[j]) / r)
    return float(np.mean(p1)), float(np.mean(rp)), float(np.mean(mapr))


SIZES = [30, 12, 25, 1, 8, 40, 2]  # uneven classes, one lone item


@pytest.mark.parametrize("k", ["max_bin_count", None])
def test_retrieval_metrics_equal_pml_accuracy_calculator_l2(k) -> None:
    vectors, labels = clustered(0, SIZES)
    ours = retrieval_metrics(vectors, labels, L2(), chunk=17)
    pml = AccuracyCalculator(include=METRICS, k=k, device=torch.device("cpu")).get_accuracy(
        vectors, labels
    )
    assert ours.precision_at_1 == pytest.approx(pml["precision_at_1"], abs=1e-6)
    assert ours.r_precision == pytest.approx(pml["r_precision"], abs=1e-6)
    assert ours.map_at_r == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-6)
    assert ours.queries == len(labels) - 1  # the lone item has no relevant neighbour


def test_retrieval_metrics_equal_pml_accuracy_calculator_cosine() -> None:
    vectors, labels = clustered(1, SIZES)
    ours = retrieval_metrics(vectors, labels, Cosine())
    calculator = AccuracyCalculator(
        include=METRICS,
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=CustomKNN(CosineSimilarity()),
    )
    pml = calculator.get_accuracy(vectors, labels)
    assert ours.precision_at_1 == pytest.approx(pml["precision_at_1"], abs=1e-6)
    assert ours.r_precision == pytest.approx(pml["r_precision"], abs=1e-6)
    assert ours.map_at_r == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-6)


@pytest.mark.parametrize(
    "distance", [L2(), Cosine(), WeightedL1(8, init=0.5)], ids=lambda d: d.name
)
def test_retrieval_metrics_equal_the_paper_formula(distance) -> None:
    vectors, labels = clustered(2, [9, 14, 5, 1, 11])
    ours = retrieval_metrics(vectors, labels, distance, chunk=6)
    expected = naive_retrieval(vectors, labels, distance)
    np.testing.assert_allclose(
        [ours.precision_at_1, ours.r_precision, ours.map_at_r], expected, atol=1e-12
    )


def test_retrieval_metrics_on_a_hand_example() -> None:
    # 1-D points, class 0 = {0, 1.2, 10} (R = 2), class 1 = {2, 11} (R = 1); worked by hand:
    points = np.array([[0.0], [1.2], [10.0], [2.0], [11.0]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1])
    # item 0 (0.0): 1.2(c0) 2.0(c1)       → rel [1, 0]: P@1 1, RP 1/2, MAP@R 1/2
    # item 1 (1.2): 2.0(c1) 0.0(c0)       → rel [0, 1]: P@1 0, RP 1/2, MAP@R (1/2)/2 = 1/4
    # item 2 (10):  11(c1) 2.0(c1)        → rel [0, 0]: 0, 0, 0
    # item 3 (2.0): 1.2(c0)               → rel [0]:    0, 0, 0
    # item 4 (11):  10(c0)                → rel [0]:    0, 0, 0
    m = retrieval_metrics(points, labels, L2())
    assert (m.precision_at_1, m.r_precision, m.map_at_r) == pytest.approx((1 / 5, 1 / 5, 3 / 20))


def test_duplicate_vectors_drop_the_item_like_pml() -> None:
    vectors, labels = clustered(3, [6, 6, 6], dim=3)
    vectors = np.concatenate([vectors, vectors[:4]])  # exact duplicates, same labels
    labels = np.concatenate([labels, labels[:4]])
    ours = retrieval_metrics(vectors, labels, L2())
    pml = AccuracyCalculator(include=METRICS, k="max_bin_count", device=torch.device("cpu"))
    expected = pml.get_accuracy(vectors, labels)
    assert ours.precision_at_1 == pytest.approx(expected["precision_at_1"], abs=1e-6)
    assert ours.map_at_r == pytest.approx(expected["mean_average_precision_at_r"], abs=1e-6)


def test_retrieval_metrics_errors() -> None:
    with pytest.raises(ValueError, match="every class has a single item"):
        retrieval_metrics(np.eye(3), np.arange(3), L2())
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        retrieval_metrics(np.eye(3), np.arange(2), L2())
    with pytest.raises(ValueError, match="vectors contain NaN"):
        retrieval_metrics(np.full((2, 2), np.nan), np.zeros(2, dtype=np.int64), L2())


def test_gallery_split_takes_shots_per_class_and_is_seeded() -> None:
    labels = np.array([0] * 5 + [1] * 3 + [2] * 1 + [3] * 2)
    gallery, query = gallery_split(labels, shots=2, seed=0)
    assert sorted(Counter(labels[gallery].tolist()).items()) == [(0, 2), (1, 2)]
    assert sorted(Counter(labels[query].tolist()).items()) == [(0, 3), (1, 1)]
    assert not set(gallery) & set(query)
    again = gallery_split(labels, shots=2, seed=0)
    np.testing.assert_array_equal(again[0], gallery)
    draws = {tuple(gallery_split(labels, 2, seed)[0]) for seed in range(10)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="no class has more than shots=5 items"):
        gallery_split(labels, shots=5, seed=0)
    with pytest.raises(ValueError, match="shots must be at least 1"):
        gallery_split(labels, shots=0, seed=0)
