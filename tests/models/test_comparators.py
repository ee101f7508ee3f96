"""Matching and Relation Networks comparators against per-episode, per-query loops written from
the papers' formulas (LSTMs from their gate equations), easyfsl's implementations on the same
weights, and properties that hold for any weights."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from metriclab.models import MatchingComparator, RelationComparator, build_comparator


def lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step from its gate equations (Hochreiter & Schmidhuber 1997; torch's gate order
    input, forget, cell, output)."""
    gates = w_ih @ x + b_ih + w_hh @ h + b_hh
    i, f, g, o = gates.chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def naive_matching(model: MatchingComparator, support, query) -> torch.Tensor:
    """Vinyals et al. 2016, Eq. 1–2 and Appendix A.2, one episode and one query at a time."""
    out = torch.empty(query.shape[0], query.shape[1], support.shape[1])
    for e in range(len(support)):
        xs = list(support[e].flatten(0, 1))
        labels = [n for n in range(support.shape[1]) for _ in range(support.shape[2])]
        g = xs
        if model.fce:
            lstm, d = model.support_lstm, model.dim
            forward, backward = [None] * len(xs), [None] * len(xs)
            h, c = torch.zeros(d), torch.zeros(d)
            for i, x in enumerate(xs):
                h, c = lstm_step(
                    x, h, c, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0
                )
                forward[i] = h
            h, c = torch.zeros(d), torch.zeros(d)
            for i in reversed(range(len(xs))):
                args = (lstm.weight_ih_l0_reverse, lstm.weight_hh_l0_reverse)
                h, c = lstm_step(
                    xs[i], h, c, *args, lstm.bias_ih_l0_reverse, lstm.bias_hh_l0_reverse
                )
                backward[i] = h
            g = [x + fw + bw for x, fw, bw in zip(xs, forward, backward, strict=True)]
        for j, q in enumerate(query[e]):
            f = q
            if model.fce:
                cell = model.query_cell
                h, c = q, torch.zeros_like(q)
                for _ in range(len(g)):
                    weights = torch.stack([h @ gi for gi in g]).softmax(0)
                    read = sum(w * gi for w, gi in zip(weights, g, strict=True))
                    h, c = lstm_step(
                        torch.cat([q, read]),
                        h,
                        c,
                        cell.weight_ih,
                        cell.weight_hh,
                        cell.bias_ih,
                        cell.bias_hh,
                    )
                    h = h + q
                f = h
            a = torch.stack([f @ gi / gi.norm() for gi in g]).softmax(0)
            for n in range(support.shape[1]):
                out[e, j, n] = math.log(sum(a[i] for i in range(len(g)) if labels[i] == n))
    return out


def naive_relation(model: RelationComparator, support, query) -> torch.Tensor:
    """Sung et al. 2018, Eq. 1–2: r = g([Σ_k f(x_nk), f(x_j)]), one pair at a time; the batch
    norm with its running statistics (evaluation)."""
    first, norm, _, second, _ = model.relation
    scale = norm.weight / (norm.running_var + norm.eps).sqrt()
    out = torch.empty(query.shape[0], query.shape[1], support.shape[1])
    for e in range(len(support)):
        for j, q in enumerate(query[e]):
            for n in range(support.shape[1]):
                pair = torch.cat([support[e, n].sum(0), q])
                linear = first.weight @ pair + first.bias
                hidden = torch.relu((linear - norm.running_mean) * scale + norm.bias)
                out[e, j, n] = torch.sigmoid(second.weight @ hidden + second.bias)[0]
    return out


def trained_statistics(model: RelationComparator, seed: int) -> RelationComparator:
    """The model after one training-mode pass (running statistics not the initial 0 / 1), in
    evaluation mode."""
    model.train()
    with torch.no_grad():
        model(*episodes(seed + 1))
    return model.eval()


def episodes(seed: int, e: int = 3, n: int = 4, k: int = 2, q: int = 3, d: int = 6):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(e, n, k, d, generator=generator), torch.randn(e, q, d, generator=generator)


@pytest.mark.parametrize("fce", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_matching_equals_the_papers_formula(fce: bool, k: int) -> None:
    torch.manual_seed(0)
    model = MatchingComparator(6, fce=fce)
    support, query = episodes(1, k=k)
    with torch.no_grad():
        torch.testing.assert_close(
            model(support, query), naive_matching(model, support, query), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("k", [1, 3])
def test_relation_equals_the_papers_formula(k: int) -> None:
    torch.manual_seed(0)
    model = trained_statistics(RelationComparator(6, hidden=5), 2)
    support, query = episodes(2, k=k)
    with torch.no_grad():
        torch.testing.assert_close(
            model(support, query), naive_relation(model, support, query), atol=1e-6, rtol=1e-5
        )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 3), fce=st.booleans())
def test_matching_probabilities_sum_to_one_and_ignore_shot_order(
    seed: int, k: int, fce: bool
) -> None:
    torch.manual_seed(seed)
    model = MatchingComparator(6, fce=fce)
    support, query = episodes(seed, k=k)
    with torch.no_grad():
        scores = model(support, query)
        torch.testing.assert_close(scores.exp().sum(-1), torch.ones(scores.shape[:2]))
        if not fce:  # FCE reads the support as a sequence, so its order matters there
            shuffled = support[
                :, :, torch.randperm(k, generator=torch.Generator().manual_seed(seed))
            ]
            torch.testing.assert_close(model(shuffled, query), scores)
            classes = torch.randperm(
                support.shape[1], generator=torch.Generator().manual_seed(seed)
            )
            torch.testing.assert_close(model(support[:, classes], query), scores[..., classes])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 3))
def test_relation_scores_in_unit_interval_and_equivariant(seed: int, k: int) -> None:
    torch.manual_seed(seed)
    model = trained_statistics(RelationComparator(6, hidden=4), seed)
    support, query = episodes(seed, k=k)
    with torch.no_grad():
        scores = model(support, query)
        assert ((scores >= 0) & (scores <= 1)).all()
        classes = torch.randperm(support.shape[1], generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(model(support[:, classes], query), scores[..., classes])
        # each query is scored alone: dropping the others leaves its scores unchanged
        torch.testing.assert_close(model(support, query[:, :1]), scores[:, :1])


def test_bad_inputs_and_params_name_the_culprit() -> None:
    with pytest.raises(ValueError, match="8-dimensional"):
        MatchingComparator(8)(torch.zeros(1, 2, 1, 6), torch.zeros(1, 3, 6))
    with pytest.raises(ValueError, match=r"support \(E, N, K, D\)"):
        RelationComparator(6)(torch.zeros(2, 6), torch.zeros(1, 3, 6))
    with pytest.raises(ValueError, match="model.comparator_params.width is not a parameter"):
        build_comparator("relation", 6, {"width": 3})
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        build_comparator("relation", 6, {"hidden": 0})
    assert build_comparator("none", 6, {}) is None


easyfsl = pytest.importorskip("easyfsl.methods")


def test_matching_fce_equals_easyfsl_on_the_same_weights() -> None:
    """easyfsl's MatchingNetworks always uses FCE (support over the whole support size, query
    unnormalised), as ours with ``fce=True``; it adds 1e-6 inside the log, so the
    probabilities are compared."""
    torch.manual_seed(0)
    ours = MatchingComparator(6, fce=True)
    support, query = episodes(3, k=2)
    theirs = easyfsl.MatchingNetworks(nn.Identity(), feature_dimension=6)
    theirs.support_features_encoder.load_state_dict(ours.support_lstm.state_dict())
    theirs.query_features_encoding_cell.load_state_dict(ours.query_cell.state_dict())
    labels = torch.arange(support.shape[1]).repeat_interleave(support.shape[2])
    with torch.no_grad():
        scores = ours(support, query)
        for e in range(len(support)):
            theirs.process_support_set(support[e].flatten(0, 1), labels)
            torch.testing.assert_close(
                scores[e].exp(), theirs(query[e]).exp() - 1e-6, atol=1e-5, rtol=1e-5
            )


@pytest.mark.parametrize("k", [1, 3])
def test_relation_equals_easyfsl_on_the_same_module(k: int) -> None:
    """easyfsl's RelationNetworks takes feature maps (here D×1×1) and averages the shots where
    the paper sums them, so its support is given as K·x: the mean of K·x is the sum of x."""
    torch.manual_seed(0)
    ours = trained_statistics(RelationComparator(6, hidden=5), 4)
    support, query = episodes(4, k=k)
    theirs = easyfsl.RelationNetworks(
        nn.Identity(),
        feature_dimension=6,
        relation_module=nn.Sequential(nn.Flatten(), ours.relation),
    )
    labels = torch.arange(support.shape[1]).repeat_interleave(k)
    with torch.no_grad():
        scores = ours(support, query)
        for e in range(len(support)):
            theirs.process_support_set((k * support[e].flatten(0, 1))[..., None, None], labels)
            torch.testing.assert_close(
                scores[e], theirs(query[e][..., None, None]), atol=1e-6, rtol=1e-5
            )
