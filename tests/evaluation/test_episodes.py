"""evaluate_episodes against a naive per-episode loop, easyfsl, and its bad-input contract."""

import copy
import math
from collections import Counter

import numpy as np
import pytest
import torch

from metriclab.data import EpisodeSet
from metriclab.distances import L1, L2, Cosine, WeightedL1
from metriclab.evaluation import Embeddings, confidence_interval, evaluate_episodes
from metriclab.models import EmbeddingNet, SiameseNet, backbone
from tests.helpers import tiny_images


def nonlinear_head(queries: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """A made-up learned pair head, (E, Nq, D) × (E, Ns, D) → (E, Nq, Ns), higher = more alike."""
    diff = queries.unsqueeze(-2) - support.unsqueeze(-3)
    return -torch.tanh(diff).pow(2).sum(-1) + 0.1 * (
        queries.unsqueeze(-2) * support.unsqueeze(-3)
    ).sum(-1)


def naive_scores(query: torch.Tensor, items: torch.Tensor, scorer, distance) -> list[float]:
    """Score of one query against each item, one pair at a time (higher = more alike)."""
    if callable(scorer) and not isinstance(scorer, str):
        if hasattr(scorer, "matrix"):  # a Distance passed as scorer
            return [-scorer(query[None], item[None]).item() for item in items]
        return [scorer(query[None, None], item[None, None])[0, 0, 0].item() for item in items]
    return [-distance(query[None], item[None]).item() for item in items]


def naive_accuracy(vectors, support, query, scorer, distance, k) -> list[float]:
    """Per-episode accuracy from the definitions, one query at a time."""
    accuracies = []
    for e in range(support.shape[0]):
        n_way, k_shot = support.shape[1], support.shape[2]
        correct = 0
        for true_class in range(n_way):
            for q in query[e, true_class]:
                if scorer == "prototype":
                    prototypes = torch.stack([vectors[support[e, c]].mean(0) for c in range(n_way)])
                    scores = naive_scores(vectors[q], prototypes, "prototype", distance)
                    guess = int(np.argmax(scores))
                else:
                    items = vectors[support[e].reshape(-1)]  # class-major
                    scores = naive_scores(vectors[q], items, scorer, distance)
                    ranked = [int(j) // k_shot for j in np.argsort(scores)[::-1][:k]]
                    votes = Counter(ranked)
                    guess = next(c for c in ranked if votes[c] == max(votes.values()))
                correct += guess == true_class
        accuracies.append(correct / query[e].size)
    return accuracies


@pytest.fixture(scope="module")
def problem():
    data = tiny_images(num_classes=7, per_class=9)
    torch.manual_seed(0)
    vectors = torch.randn(len(data), 5, dtype=torch.float64) + 0.6 * data.labels[:, None].double()
    embeddings = Embeddings(vectors, data.labels, data.item_ids)
    episodes = EpisodeSet.sample(data, n_way=4, k_shot=3, n_query=4, episodes=20, seed=2)
    return embeddings, episodes


CASES = [
    ("prototype", L2(), 1),
    ("prototype", Cosine(), 1),
    ("prototype", None, 1),
    ("nearest", L1(), 1),
    ("nearest", L2(), 3),
    ("nearest", Cosine(), 5),
    (WeightedL1(5, init=0.4), None, 1),
    (nonlinear_head, None, 1),
    (nonlinear_head, None, 4),
]


@pytest.mark.parametrize(("scorer", "distance", "k"), CASES)
def test_evaluate_episodes_equals_naive_loop(problem, scorer, distance, k) -> None:
    embeddings, episodes = problem
    if isinstance(scorer, WeightedL1):
        scorer = copy.deepcopy(scorer).double()
    result = evaluate_episodes(embeddings, episodes, scorer, distance=distance, k=k, chunk=6)
    support, query = episodes.resolve(embeddings.item_ids)
    reference = L2() if distance is None else distance
    expected = naive_accuracy(embeddings.vectors, support, query, scorer, reference, k)
    np.testing.assert_array_equal(result.per_episode, expected)
    assert result.mean == pytest.approx(np.mean(expected), abs=1e-15)
    assert result.ci95 == confidence_interval(np.array(expected))
    assert 0.0 < result.mean < 1.0  # the problem is neither trivial nor hopeless


def test_siamese_logit_matrix_scores_like_its_distance(problem) -> None:
    embeddings, episodes = problem
    net = EmbeddingNet(backbone("conv4", in_channels=1), dim=5)
    siamese = SiameseNet(net, distance=WeightedL1(5, init=0.3)).double()
    by_head = evaluate_episodes(embeddings, episodes, siamese.logit_matrix, k=3)
    by_distance = evaluate_episodes(embeddings, episodes, "nearest", distance=siamese.distance, k=3)
    np.testing.assert_array_equal(by_head.per_episode, by_distance.per_episode)
    assert by_head.scorer == "3-NN pair head" and by_distance.scorer == "3-NN (weighted_l1)"


def test_prototype_accuracy_equals_easyfsl(problem) -> None:
    methods = pytest.importorskip("easyfsl.methods")
    embeddings, episodes = problem
    support, query = episodes.resolve(embeddings.item_ids)
    model = methods.PrototypicalNetworks()
    expected = []
    for e in range(episodes.n_episodes):
        model.process_support_set(
            embeddings.vectors[support[e].reshape(-1)],
            torch.arange(episodes.n_way).repeat_interleave(episodes.k_shot),
        )
        predicted = model(embeddings.vectors[query[e].reshape(-1)]).argmax(-1)
        truth = torch.arange(episodes.n_way).repeat_interleave(episodes.n_query)
        expected.append((predicted == truth).double().mean().item())
    result = evaluate_episodes(embeddings, episodes, "prototype", distance=L2())
    np.testing.assert_array_equal(result.per_episode, expected)


def test_confidence_interval_on_known_values() -> None:
    # Sample std of [0, 1, 0, 1] is √(1/3); 1.96 · √(1/3) / √4 = 0.5658032638058333.
    assert confidence_interval(np.array([0.0, 1.0, 0.0, 1.0])) == pytest.approx(
        0.5658032638, abs=1e-10
    )
    # [0.6, 0.8, 1.0]: s = 0.2 (ddof 1), so 1.96 · 0.2 / √3 = 0.22632132.
    assert confidence_interval(np.array([0.6, 0.8, 1.0])) == pytest.approx(
        0.392 / math.sqrt(3), abs=1e-12
    )
    assert confidence_interval(np.array([0.5, 0.5, 0.5])) == 0.0
    assert math.isnan(confidence_interval(np.array([0.7])))


def test_result_reports_mean_ci_and_string(problem) -> None:
    embeddings, episodes = problem
    result = evaluate_episodes(embeddings, episodes)
    assert result.per_episode.shape == (20,) and result.scorer == "prototype (l2)"
    assert str(result) == f"{100 * result.mean:.2f} ± {100 * result.ci95:.2f} %"


def test_unknown_item_is_named(problem) -> None:
    embeddings, episodes = problem
    support = episodes.support.astype(object)
    support[3, 1, 0] = "tiny:999"
    stranger = EpisodeSet(episodes.classes, support, episodes.query, {"data": "tiny"})
    with pytest.raises(ValueError, match="episode item 'tiny:999' is not in the data"):
        evaluate_episodes(embeddings, stranger)


def test_items_with_mixed_labels_are_named(problem) -> None:
    embeddings, episodes = problem
    query = episodes.query.copy()
    query[2, 0, 0] = episodes.support[2, 1, 0]  # an item of another class
    mixed = EpisodeSet(episodes.classes, episodes.support, query)
    name = episodes.classes[2, 0]
    with pytest.raises(
        ValueError, match=f"episode 2, class '{name}': its items carry different labels"
    ):
        evaluate_episodes(embeddings, mixed)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"scorer": "protoype"},
            "scorer must be 'prototype', 'nearest', .*'tim', a metriclab distance",
        ),
        ({"scorer": nonlinear_head, "distance": L2()}, "distance applies to scorer='prototype'"),
        ({"scorer": L2(), "distance": L1()}, "distance applies to scorer='prototype'"),
        ({"scorer": "nearest", "k": 13}, r"k must be an integer in \[1, N·K = 12\], got 13"),
        ({"scorer": "nearest", "k": 0}, r"k must be an integer in \[1, N·K = 12\]"),
        ({"scorer": "prototype", "k": 3}, "scorer='prototype' needs k=1"),
        ({"chunk": 0}, "chunk must be at least 1"),
        (
            {"scorer": lambda q, s: q @ s.transpose(-1, -2)[..., :2]},
            "the pair scorer returned shape",
        ),
        (
            {"scorer": lambda q, s: torch.full((*q.shape[:2], s.shape[1]), math.nan)},
            "NaN or infinite",
        ),
    ],
)
def test_bad_arguments_are_one_clear_error(problem, kwargs, message) -> None:
    embeddings, episodes = problem
    with pytest.raises(ValueError, match=message):
        evaluate_episodes(embeddings, episodes, **kwargs)


def test_embeddings_refuse_empty_and_nan() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Embeddings(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), ())
    with pytest.raises(ValueError, match="NaN or infinite"):
        Embeddings(torch.full((2, 2), math.nan), torch.zeros(2, dtype=torch.int64), ("a", "b"))
    with pytest.raises(ValueError, match="item_ids must have 2 entries"):
        Embeddings(torch.zeros(2, 2), torch.zeros(2, dtype=torch.int64), ("a",))
