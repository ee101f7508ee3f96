import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from metriclab.data import EpisodeSet
from metriclab.distances import L1, L2, Cosine, SquaredL2, WeightedL1
from metriclab.evaluation import (
    Embeddings,
    FaissIndex,
    confidence_interval,
    evaluate_episodes,
    leave_one_out_precision_at_1,
    verification_metrics,
)
from tests.helpers import tiny_images


def test_confidence_interval_on_known_values() -> None:
    # Sample std of [0, 1, 0, 1] is sqrt(1/3); 1.96 · sqrt(1/3) / 2 = 0.56580...
    assert confidence_interval(np.array([0.0, 1.0, 0.0, 1.0])) == pytest.approx(0.565803, abs=1e-6)
    assert confidence_interval(np.array([0.5, 0.5, 0.5])) == 0.0


@pytest.mark.parametrize("distance", [L1(), L2(), SquaredL2(), Cosine()])
def test_faiss_flat_matches_brute_force(distance) -> None:
    rng = np.random.default_rng(0)
    gallery, queries = rng.normal(size=(200, 8)), rng.normal(size=(30, 8))
    index = FaissIndex.build(gallery, distance)
    found, ids = index.search(queries, k=5)
    truth = distance.matrix(torch.tensor(queries), torch.tensor(gallery)).numpy()
    np.testing.assert_array_equal(ids, np.argsort(truth, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(found, np.sort(truth, axis=1)[:, :5], rtol=1e-4, atol=1e-4)


def test_faiss_searches_weighted_l1_exactly() -> None:
    torch.manual_seed(0)
    distance = WeightedL1(8)
    with torch.no_grad():
        distance.raw_weight.copy_(torch.randn(8) * 2)
    gallery, queries = torch.randn(300, 8), torch.randn(40, 8)
    found, ids = FaissIndex.build(gallery, distance).search(queries, k=3, chunk=7)
    truth = distance.matrix(queries, gallery).detach().numpy()
    np.testing.assert_array_equal(ids, np.argsort(truth, axis=1)[:, :3])
    np.testing.assert_allclose(found, np.sort(truth, axis=1)[:, :3], rtol=1e-5)


def test_faiss_index_errors() -> None:
    index = FaissIndex.build(np.ones((4, 3), dtype=np.float32), L2())
    with pytest.raises(ValueError, match=r"k must lie in \[1, 4\]"):
        index.search(np.ones((1, 3)), k=5)
    with pytest.raises(ValueError, match="dimension 2"):
        index.search(np.ones((1, 2)), k=1)
    with pytest.raises(ValueError, match="NaN"):
        FaissIndex.build(np.full((2, 3), np.nan), L2())


def test_precision_at_1_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(5), 12)
    vectors = rng.normal(size=(60, 4)) + labels[:, None]
    embeddings = Embeddings(
        torch.tensor(vectors, dtype=torch.float32), torch.tensor(labels), tuple(map(str, range(60)))
    )
    _, neighbours = NearestNeighbors(n_neighbors=2).fit(vectors).kneighbors(vectors)
    expected = (labels[neighbours[:, 1]] == labels).mean()
    assert leave_one_out_precision_at_1(embeddings, L2()) == pytest.approx(expected)


def naive_episode_accuracy(vectors, labels, support, query, scorer, distance) -> list[float]:
    accuracies = []
    for e in range(support.shape[0]):
        correct = 0
        for n in range(query.shape[1]):
            for q in query[e, n]:
                best, best_class = None, None
                for c in range(support.shape[1]):
                    items = vectors[support[e, c]]
                    if scorer == "prototype":
                        d = distance(vectors[q][None], items.mean(0, keepdim=True)).item()
                    else:
                        d = min(
                            distance(vectors[q][None], items[k][None]).item()
                            for k in range(len(items))
                        )
                    if best is None or d < best:
                        best, best_class = d, c
                correct += best_class == n
        accuracies.append(correct / query[e].size)
    return accuracies


@pytest.mark.parametrize("scorer", ["prototype", "nearest"])
def test_evaluate_episodes_equals_naive_loop(scorer: str) -> None:
    data = tiny_images(num_classes=6, per_class=8)
    torch.manual_seed(0)
    vectors = torch.randn(len(data), 5, dtype=torch.float64) + data.labels[:, None].double() * 0.5
    embeddings = Embeddings(vectors, data.labels, data.item_ids)
    episodes = EpisodeSet.sample(data, n_way=4, k_shot=3, n_query=4, episodes=20, seed=2)
    result = evaluate_episodes(embeddings, episodes, L2(), scorer=scorer, chunk=6)
    support, query = episodes.resolve(data.item_ids)
    expected = naive_episode_accuracy(vectors, data.labels, support, query, scorer, L2())
    np.testing.assert_allclose(result.per_episode, expected)
    assert result.mean == pytest.approx(np.mean(expected))


def test_verification_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    same = rng.random(500) < 0.5
    scores = rng.normal(size=500) + same * 1.5
    result = verification_metrics(scores, same)
    assert result.auc == pytest.approx(roc_auc_score(same, scores))
    # At the EER threshold, false accept and false reject rates are (nearly) equal.
    far = (scores[~same] >= result.eer_threshold).mean()
    frr = (scores[same] < result.eer_threshold).mean()
    assert abs(far - frr) < 0.02
    assert abs(result.eer - (far + frr) / 2) < 0.02
    perfect = verification_metrics(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert perfect.auc == 1.0 and perfect.eer == 0.0
    with pytest.raises(ValueError, match="both same and different"):
        verification_metrics(np.ones(3), np.ones(3))
