"""Recall@K, MAP@R, R-precision and NMI: a naive loop from the definitions, PML and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from metriclab.distances import L2, Cosine
from metriclab.evaluation.retrieval import normalized_mutual_information, retrieval_scores


def _data(seed: int, n: int = 90, classes: int = 9, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim))
    return (centres[labels] + rng.normal(scale=1.2, size=(n, dim))).astype(np.float32), labels


def _naive(queries, q_labels, gallery, g_labels, ks, leave_one_out):
    """The definitions, one query at a time, with L2 distances sorted by numpy."""
    recall = {k: [] for k in ks}
    maps, rps = [], []
    for i, (q, label) in enumerate(zip(queries, q_labels, strict=True)):
        d = np.sqrt(((gallery.astype(np.float64) - q) ** 2).sum(1))
        order = [j for j in np.argsort(d, kind="stable") if not (leave_one_out and j == i)]
        rel = [g_labels[j] == label for j in order]
        r = sum(rel)
        if r == 0:
            continue
        for k in ks:
            recall[k].append(any(rel[:k]))
        rps.append(sum(rel[:r]) / r)
        maps.append(sum(sum(rel[: j + 1]) / (j + 1) for j in range(r) if rel[j]) / r)
    return {k: np.mean(v) for k, v in recall.items()}, np.mean(maps), np.mean(rps), len(maps)


@pytest.mark.parametrize("seed", [0, 1])
def test_leave_one_out_equals_the_naive_loop(seed: int) -> None:
    x, y = _data(seed)
    ks = (1, 2, 4, 8, 10)
    ours = retrieval_scores(x, y, L2(), ks=ks, chunk=13)
    recall, mapr, rp, n = _naive(x, y, x, y, ks, leave_one_out=True)
    assert ours.queries == n
    for k in ks:
        assert ours.recall[k] == pytest.approx(recall[k])
    assert ours.map_at_r == pytest.approx(mapr)
    assert ours.r_precision == pytest.approx(rp)


def test_query_gallery_equals_the_naive_loop_and_skips_unmatched_queries() -> None:
    x, y = _data(2, n=120, classes=10)
    queries, gallery = x[:40], x[40:]
    q_labels, g_labels = y[:40].copy(), y[40:]
    q_labels[0] = 99  # no gallery item of this class: left out, as PML does
    ours = retrieval_scores(queries, q_labels, L2(), gallery, g_labels, ks=(1, 10, 100))
    recall, mapr, rp, n = _naive(queries, q_labels, gallery, g_labels, (1, 10), False)
    assert ours.queries == n == 39
    assert set(ours.recall) == {1, 10}  # 100 is beyond the gallery of 80
    assert ours.recall[1] == pytest.approx(recall[1])
    assert ours.recall[10] == pytest.approx(recall[10])
    assert (ours.map_at_r, ours.r_precision) == pytest.approx((mapr, rp))
    assert ours.protocol == "query/gallery"


@pytest.mark.parametrize("gallery_split", [False, True])
def test_equal_pml_accuracy_calculator(gallery_split: bool) -> None:
    x, y = _data(3, n=100, classes=8)
    if gallery_split:
        q, qy, g, gy = x[:30], y[:30], x[30:], y[30:]
        ours = retrieval_scores(q, qy, L2(), g, gy)
        args = (
            torch.from_numpy(q),
            torch.from_numpy(qy),
            torch.from_numpy(g),
            torch.from_numpy(gy),
        )
        together = False
    else:
        ours = retrieval_scores(x, y, L2())
        args = (torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x), torch.from_numpy(y))
        together = True
    pml = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
    ).get_accuracy(*args, ref_includes_query=together)
    assert ours.recall[1] == pytest.approx(pml["precision_at_1"], abs=1e-6)
    assert ours.r_precision == pytest.approx(pml["r_precision"], abs=1e-6)
    assert ours.map_at_r == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-6)


def test_nmi_equals_scikit_learn_on_its_own_clustering_and_pml_on_clear_clusters() -> None:
    x, y = _data(4)
    expected = normalized_mutual_info_score(
        y, KMeans(n_clusters=len(np.unique(y)), n_init=10, random_state=0).fit_predict(x)
    )
    assert normalized_mutual_information(x, y, seed=0) == pytest.approx(expected)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 10)
    clear = (np.eye(5)[labels] * 50 + rng.normal(scale=0.1, size=(50, 5))).astype(np.float32)
    pml = AccuracyCalculator(include=("NMI",), device=torch.device("cpu")).get_accuracy(
        torch.from_numpy(clear), torch.from_numpy(labels)
    )
    ours = retrieval_scores(clear, labels, Cosine(), nmi=True)
    assert ours.nmi == pytest.approx(pml["NMI"]) and ours.nmi == pytest.approx(1.0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), classes=st.integers(2, 6))
def test_recall_grows_with_k_and_bounds_the_other_metrics(seed: int, classes: int) -> None:
    x, y = _data(seed, n=40, classes=classes, dim=4)
    scores = retrieval_scores(x, y, L2(), ks=(1, 2, 4, 8))
    values = [scores.recall[k] for k in (1, 2, 4, 8)]
    assert values == sorted(values)
    assert 0.0 <= scores.map_at_r <= scores.r_precision + 1e-9 <= 1.0 + 1e-9
    # Permuting the items permutes nothing that matters.
    order = np.random.default_rng(seed).permutation(len(y))
    again = retrieval_scores(x[order], y[order], L2(), ks=(1, 2, 4, 8))
    assert again.recall == pytest.approx(scores.recall)


def test_bad_input_is_named() -> None:
    x, y = _data(0, n=10)
    with pytest.raises(ValueError, match="gallery_labels"):
        retrieval_scores(x, y, L2(), x)
    with pytest.raises(ValueError, match="no query has a relevant"):
        retrieval_scores(x[:3], np.arange(3), L2())
    with pytest.raises(ValueError, match="query_labels must have shape"):
        retrieval_scores(x, y[:3], L2())


def test_the_evaluation_report_carries_recall_at_k() -> None:
    from metriclab.evaluation import Embeddings, evaluate_embeddings

    x, y = _data(5, n=60, classes=6)
    embeddings = Embeddings(
        torch.from_numpy(x), torch.from_numpy(y), tuple(f"i{i}" for i in range(len(y)))
    )
    report = evaluate_embeddings(embeddings, L2(), {}, pairs=50, seed=0)
    recall, _, _, _ = _naive(x, y, x, y, (1, 2, 4, 8), leave_one_out=True)
    assert list(report.recall)[:4] == [1, 2, 4, 8]
    assert [report.recall[k] for k in (1, 2, 4, 8)] == pytest.approx(list(recall.values()))
    assert report.recall[1] == pytest.approx(report.retrieval.precision_at_1)
    assert report.to_dict()["knn"]["recall_at"]["8"] == pytest.approx(recall[8])
    assert "Recall@1/2/4/8/10" in report.table()


def test_marked_query_and_gallery_items_are_scored_query_against_gallery() -> None:
    from metriclab.evaluation import Embeddings, evaluate_embeddings

    x, y = _data(6, n=60, classes=6)
    ids = tuple(f"{'query' if i < 20 else 'gallery'}:img/{i}.jpg" for i in range(len(y)))
    embeddings = Embeddings(torch.from_numpy(x), torch.from_numpy(y), ids)
    report = evaluate_embeddings(embeddings, L2(), {}, pairs=50, seed=0)
    recall, _, _, _ = _naive(x[:20], y[:20], x[20:], y[20:], (1, 2, 4, 8), leave_one_out=False)
    assert report.recall_protocol == "query/gallery"
    assert [report.recall[k] for k in (1, 2, 4, 8)] == pytest.approx(list(recall.values()))
