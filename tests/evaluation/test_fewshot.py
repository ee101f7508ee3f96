"""The batched few-shot methods against naive per-episode loops written from their papers,
plus invariants (batching, query order) checked with hypothesis."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.data import EpisodeSet
from metriclab.evaluation import Embeddings, evaluate_episodes
from metriclab.evaluation.episodes import SCORERS, scorer_for
from metriclab.evaluation.fewshot import (
    BDCSPN,
    PTMAP,
    TIM,
    Finetune,
    LaplacianShot,
    SimpleShot,
    load_train_mean,
    store_train_mean,
)
from metriclab.evaluation.method import EpisodeMethod, ScorerContext
from tests.evaluation import fewshot_refs as ref
from tests.helpers import tiny_images

torch.set_default_dtype(torch.float32)


def test_simpleshot_matches_the_papers_cl2n_nearest_centroid() -> None:
    support, query = ref.clustered_episodes(4, 5, 3, 4, 8, seed=0)
    mean = torch.randn(8, generator=torch.Generator().manual_seed(1))
    ours = SimpleShot(mean)(support, query)
    torch.testing.assert_close(ours, ref.simpleshot(support, query, mean), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eps", [1.0, 10.0])
def test_bd_cspn_matches_eqs_4_and_5_per_episode(eps: float) -> None:
    support, query = ref.clustered_episodes(3, 4, 2, 5, 6, seed=2)
    torch.testing.assert_close(
        BDCSPN(temperature=eps)(support, query),
        ref.bd_cspn(support, query, eps),
        atol=1e-5,
        rtol=1e-5,
    )


def test_laplacianshot_matches_algorithm_1_per_episode() -> None:
    support, query = ref.clustered_episodes(3, 3, 2, 4, 5, seed=3, noise=1.5)
    method = LaplacianShot(
        lambda_regularization=0.7, neighbours=2, steps=20, rectify_temperature=10.0
    )
    ours = method(support, query)
    for e in range(len(query)):
        naive = ref.laplacianshot_episode(support[e], query[e], 0.7, 2, 20, 10.0)
        torch.testing.assert_close(ours[e], naive.float(), atol=1e-4, rtol=1e-4)


def test_pt_map_matches_algorithm_1_per_episode() -> None:
    support, query = ref.clustered_episodes(3, 3, 2, 4, 6, seed=4)
    ours = PTMAP(steps=5, lr=0.2, lambda_regularization=10.0)(support, query)
    for e in range(len(query)):
        naive = ref.pt_map_episode(support[e], query[e], 5, 0.2, 10.0)
        torch.testing.assert_close(ours[e], naive, atol=1e-4, rtol=1e-3)
        # the transport constraints: every query carries mass 1, every class Q / N
        torch.testing.assert_close(ours[e].sum(1), torch.ones(12), atol=2e-3, rtol=0)
        torch.testing.assert_close(ours[e].sum(0), torch.full((3,), 4.0), atol=1e-3, rtol=0)


def _tim_episode(support: torch.Tensor, query: torch.Tensor, method: TIM) -> torch.Tensor:
    """TIM-GD on one episode alone, the loss written term by term from the paper."""
    n_way, k_shot, _ = support.shape
    protos = support.mean(1).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([protos], lr=method.lr)
    labels = torch.arange(n_way).repeat_interleave(k_shot)
    flat = support.reshape(n_way * k_shot, -1)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return method.temperature * torch.nn.functional.cosine_similarity(
            x[:, None], protos[None], dim=-1
        )

    for _ in range(method.steps):
        ce = torch.nn.functional.cross_entropy(logits(flat), labels)
        p = logits(query).softmax(1)
        conditional = -(p * torch.log(p + 1e-12)).sum(1).mean()
        marginal = -(p.mean(0) * p.mean(0).log()).sum()
        loss = method.cross_entropy_weight * ce - (
            method.marginal_entropy_weight * marginal
            - method.conditional_entropy_weight * conditional
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.nn.functional.cosine_similarity(query[:, None], protos.detach()[None], dim=-1)


def test_tim_matches_one_episode_at_a_time() -> None:
    support, query = ref.clustered_episodes(3, 4, 1, 3, 6, seed=5)
    method = TIM(steps=20, lr=1e-2)
    ours = method(support, query)
    for e in range(len(query)):
        torch.testing.assert_close(
            ours[e], _tim_episode(support[e], query[e], method), atol=1e-5, rtol=1e-4
        )


def test_finetune_matches_one_episode_at_a_time_and_ignores_queries() -> None:
    support, query = ref.clustered_episodes(3, 4, 2, 3, 6, seed=6)
    method = Finetune(steps=15, lr=1e-2, temperature=10.0)
    ours = method(support, query)
    for e in range(len(query)):
        head = support[e].mean(1).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([head], lr=1e-2)
        labels = torch.arange(4).repeat_interleave(2)
        for _ in range(15):
            logits = 10.0 * torch.nn.functional.cosine_similarity(
                support[e].reshape(8, -1)[:, None], head[None], dim=-1
            )
            loss = torch.nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        expected = torch.nn.functional.cosine_similarity(
            query[e][:, None], head.detach()[None], dim=-1
        )
        torch.testing.assert_close(ours[e], expected, atol=1e-5, rtol=1e-4)
    # inductive: one query alone scores as it does among the others
    torch.testing.assert_close(method(support, query[:, :1]), ours[:, :1], atol=1e-6, rtol=1e-5)


METHODS: list[EpisodeMethod] = [
    SimpleShot(torch.zeros(6)),
    BDCSPN(),
    LaplacianShot(),
    TIM(steps=5, lr=1e-2),
    PTMAP(steps=3),
    Finetune(steps=5),
]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: type(m).__name__)
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), n_way=st.integers(2, 4), k_shot=st.integers(1, 3))
def test_episodes_do_not_see_each_other_and_query_order_does_not_matter(
    method: EpisodeMethod, seed: int, n_way: int, k_shot: int
) -> None:
    support, query = ref.clustered_episodes(3, n_way, k_shot, 3, 6, seed=seed)
    batched = method(support, query)
    for e in range(3):  # scoring an episode alone gives its batched scores
        torch.testing.assert_close(
            method(support[e : e + 1], query[e : e + 1])[0], batched[e], atol=1e-4, rtol=1e-4
        )
    order = torch.randperm(query.shape[1], generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(
        method(support, query[:, order]), batched[:, order], atol=1e-4, rtol=1e-4
    )


def test_registry_flags_and_results_say_inductive_or_transductive() -> None:
    transductive = {name for name, spec in SCORERS.items() if spec.transductive}
    assert transductive == {"bd_cspn", "laplacianshot", "tim", "pt_map"}
    data = tiny_images(num_classes=4, per_class=8)
    centres = torch.eye(4) * 10.0
    noise = 0.01 * torch.randn(len(data), 4, generator=torch.Generator().manual_seed(0))
    vectors = Embeddings(centres[data.labels] + noise, data.labels, data.item_ids)
    episodes = EpisodeSet.sample(data, n_way=3, k_shot=2, n_query=3, episodes=4, seed=0)
    for name in ("bd_cspn", "pt_map"):
        result = evaluate_episodes(vectors, episodes, name)
        assert result.transductive and result.inference == "transductive" and result.mean == 1.0
    result = evaluate_episodes(
        vectors, episodes, scorer_for("simpleshot", context=ScorerContext(torch.zeros(4)))
    )
    assert not result.transductive and result.inference == "inductive" and result.mean == 1.0
    assert not evaluate_episodes(vectors, episodes, "prototype").transductive


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="scorer 'simpleshot' centres on the training-class mean"):
        scorer_for("simpleshot")
    with pytest.raises(ValueError, match="TIM: lr must be positive"):
        TIM(lr=0.0)
    with pytest.raises(ValueError, match="LaplacianShot: steps must be a positive integer"):
        LaplacianShot(steps=0)
    with pytest.raises(ValueError, match="belongs to another model"):
        SimpleShot(torch.zeros(3))(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="do not split evenly"):
        PTMAP()(torch.rand(1, 2, 1, 4), torch.rand(1, 3, 4))


def test_train_mean_is_stored_with_the_run(tmp_path) -> None:
    vectors = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    assert load_train_mean(tmp_path) is None
    mean = store_train_mean(tmp_path, vectors)
    torch.testing.assert_close(mean, vectors.mean(0))
    torch.testing.assert_close(load_train_mean(tmp_path), mean)


def test_sinkhorn_plan_survives_costs_whose_exp_underflows() -> None:
    from metriclab.evaluation.fewshot.pt_map import sinkhorn

    cost = torch.rand(2, 6, 3, generator=torch.Generator().manual_seed(0))
    far = sinkhorn(cost + 50.0, lam=10.0)  # exp(−500) is 0 in float32 and float64 alike
    assert torch.isfinite(far).all()
    torch.testing.assert_close(far, sinkhorn(cost, lam=10.0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(far.sum(2), torch.ones(2, 6), atol=1e-4, rtol=0)
