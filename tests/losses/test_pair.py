import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers as pml_reducers

from metriclab.distances import L2, Cosine, SquaredL2, WeightedL1, to_pml
from metriclab.losses import ContrastiveLoss, VerificationLoss


def test_verification_loss_matches_hand_computed_value() -> None:
    # logits 0 and 2 for a same pair and a different pair:
    # −log σ(0) = log 2;  −log(1 − σ(2)) = log(1 + e²).
    logits = torch.tensor([0.0, 2.0])
    same = torch.tensor([True, False])
    expected = (math.log(2.0) + math.log(1.0 + math.e**2)) / 2
    assert VerificationLoss()(logits, same).item() == pytest.approx(expected, rel=1e-6)
    per_pair = VerificationLoss(reduction="none")(logits, same)
    assert per_pair.tolist() == pytest.approx([math.log(2.0), math.log(1.0 + math.e**2)])
    assert VerificationLoss(reduction="sum")(logits, same).item() == pytest.approx(2 * expected)


def test_verification_loss_errors() -> None:
    with pytest.raises(ValueError, match="reduction"):
        VerificationLoss(reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        VerificationLoss()(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="logits contains NaN"):
        VerificationLoss()(torch.tensor([float("nan")]), torch.ones(1))


def test_verification_loss_gradient() -> None:
    logits = torch.randn(6, dtype=torch.float64, requires_grad=True)
    same = torch.tensor([1, 0, 1, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda z: VerificationLoss()(z, same), (logits,))


# --- ContrastiveLoss ------------------------------------------------------------------------------


def naive_contrastive(e1: torch.Tensor, e2: torch.Tensor, same: list[bool], margin: float) -> list:
    """Hadsell et al. 2006, eq. 4, pair by pair with a Euclidean distance written as a loop."""
    losses = []
    for x, y, similar in zip(e1.tolist(), e2.tolist(), same, strict=True):
        d = math.sqrt(sum((a - b) ** 2 for a, b in zip(x, y, strict=True)))
        losses.append(0.5 * d * d if similar else 0.5 * max(0.0, margin - d) ** 2)
    return losses


def random_pairs(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    e1 = torch.randn(n, dim, dtype=torch.float64, generator=generator)
    e2 = torch.randn(n, dim, dtype=torch.float64, generator=generator) * 0.7
    same = torch.rand(n, generator=generator) < 0.5
    return e1, e2, same


def test_contrastive_aligned_pairs_match_the_formula() -> None:
    e1, e2, same = random_pairs(12, 5, seed=0)
    expected = naive_contrastive(e1, e2, same.tolist(), margin=3.0)
    assert any(v == 0 for v in expected) and any(v > 0 for v in expected)  # both hinge branches
    per_pair = ContrastiveLoss(margin=3.0, reduction="none")(e1, e2, same)
    assert per_pair.tolist() == pytest.approx(expected, abs=1e-12)
    mean = ContrastiveLoss(margin=3.0)(e1, e2, same.long())  # 0/1 flags work too
    assert mean.item() == pytest.approx(sum(expected) / 12, abs=1e-12)
    total = ContrastiveLoss(margin=3.0, reduction="sum")(e1, e2, same)
    assert total.item() == pytest.approx(sum(expected), abs=1e-12)


def test_contrastive_batch_covers_every_pair_once() -> None:
    generator = torch.Generator().manual_seed(1)
    embeddings = torch.randn(7, 4, dtype=torch.float64, generator=generator)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2])
    pairs = [(i, j) for i in range(7) for j in range(i + 1, 7)]
    expected = naive_contrastive(
        embeddings[[i for i, _ in pairs]],
        embeddings[[j for _, j in pairs]],
        [bool(labels[i] == labels[j]) for i, j in pairs],
        margin=2.5,
    )
    per_pair = ContrastiveLoss(margin=2.5, reduction="none").batch(embeddings, labels)
    assert per_pair.tolist() == pytest.approx(expected, abs=1e-12)
    assert ContrastiveLoss(margin=2.5).batch(embeddings, labels).item() == pytest.approx(
        sum(expected) / len(pairs), abs=1e-12
    )
    assert ContrastiveLoss().batch(embeddings[:1], labels[:1]).item() == 0  # no pairs


class NoMatrix(L2):
    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise AssertionError("aligned pairs must not build an N × N matrix")


def test_contrastive_aligned_pairs_never_build_a_matrix() -> None:
    e1, e2, same = random_pairs(50, 3, seed=2)
    ContrastiveLoss(distance=NoMatrix())(e1, e2, same)


def test_contrastive_gradients_in_float64() -> None:
    e1, e2, same = random_pairs(6, 4, seed=3)
    e1.requires_grad_(True)
    e2.requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1, 2, 0])
    for distance in (L2(), Cosine(), SquaredL2(), WeightedL1(4).double()):
        loss = ContrastiveLoss(margin=2.0, distance=distance)
        assert torch.autograd.gradcheck(lambda x, y, f=loss: f(x, y, same), (e1, e2))
        assert torch.autograd.gradcheck(lambda x, f=loss: f.batch(x, labels), (e1,))


def test_contrastive_gradient_is_finite_for_identical_embeddings() -> None:
    e1 = torch.randn(40, 8, requires_grad=True)
    labels = torch.arange(40) % 3
    loss = ContrastiveLoss()(e1, e1.detach().clone(), torch.ones(40, dtype=torch.bool))
    loss = loss + ContrastiveLoss().batch(torch.cat([e1, e1]), torch.cat([labels, labels]))
    loss.backward()
    assert torch.isfinite(e1.grad).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), margin=st.floats(0.1, 5.0))
def test_contrastive_is_non_negative_and_batch_order_invariant(seed: int, margin: float) -> None:
    e1, e2, same = random_pairs(8, 3, seed)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(seed))
    loss = ContrastiveLoss(margin=margin, reduction="none")
    per_pair = loss(e1, e2, same)
    assert (per_pair >= 0).all()
    torch.testing.assert_close(loss(e1[order], e2[order], same[order]), per_pair[order])
    labels = torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(seed))
    mean = ContrastiveLoss(margin=margin)
    torch.testing.assert_close(mean.batch(e1[order], labels[order]), mean.batch(e1, labels))


def pml_per_pair(pml_loss: object, embeddings: torch.Tensor, indices: tuple) -> tuple:
    out = pml_loss(embeddings, indices_tuple=indices)
    return out["pos_loss"]["losses"], out["neg_loss"]["losses"]


def test_contrastive_agrees_with_pml_on_aligned_pairs() -> None:
    # PML's ContrastiveLoss is not squared: pos relu(D − pos_margin), neg relu(neg_margin − D).
    # With pos_margin=0 and neg_margin=m both are exactly the quantity ours squares and halves,
    # so ours = ½·PML² pair by pair. DoNothingReducer exposes PML's per-pair values.
    e1, e2, same = random_pairs(30, 6, seed=4)
    n = len(same)
    idx = torch.arange(n)
    indices = (idx[same], n + idx[same], idx[~same], n + idx[~same])
    pml = pml_losses.ContrastiveLoss(
        pos_margin=0.0,
        neg_margin=3.0,
        distance=to_pml(L2()),
        reducer=pml_reducers.DoNothingReducer(),
    )
    pml_pos, pml_neg = pml_per_pair(pml, torch.cat([e1, e2]), indices)
    ours = ContrastiveLoss(margin=3.0, reduction="none")(e1, e2, same)
    torch.testing.assert_close(ours[same], 0.5 * pml_pos**2)
    torch.testing.assert_close(ours[~same], 0.5 * pml_neg**2)
    assert (pml_neg > 0).any() and (pml_neg == 0).any()


def test_contrastive_batch_agrees_with_pml_with_cosine_similarity() -> None:
    # Cosine: PML uses the similarity s = 1 − d (is_inverted), so our margin m on d is PML's
    # neg_margin 1 − m on s, and a similar pair's d = 1 − s is PML's pos loss with pos_margin 1.
    generator = torch.Generator().manual_seed(5)
    embeddings = torch.randn(9, 4, dtype=torch.float64, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 1])
    rows, cols = torch.triu_indices(9, 9, offset=1)
    same = labels[rows] == labels[cols]
    indices = (rows[same], cols[same], rows[~same], cols[~same])
    pml = pml_losses.ContrastiveLoss(
        pos_margin=1.0,
        neg_margin=1.0 - 0.8,
        distance=to_pml(Cosine()),
        reducer=pml_reducers.DoNothingReducer(),
    )
    pml_pos, pml_neg = pml_per_pair(pml, embeddings, indices)
    ours = ContrastiveLoss(margin=0.8, distance=Cosine(), reduction="none").batch(
        embeddings, labels
    )
    torch.testing.assert_close(ours[same], 0.5 * pml_pos**2)
    torch.testing.assert_close(ours[~same], 0.5 * pml_neg**2)
    assert (pml_neg > 0).any() and (pml_neg == 0).any()


def test_contrastive_errors_name_the_argument() -> None:
    e1, e2, same = random_pairs(4, 3, seed=6)
    for margin in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="margin must be a finite number > 0"):
            ContrastiveLoss(margin=margin)
    with pytest.raises(ValueError, match="e1, e2 must all have the same shape"):
        ContrastiveLoss()(e1, e2[:3], same)
    with pytest.raises(ValueError, match=r"same must have shape \(4,\)"):
        ContrastiveLoss()(e1, e2, same[:3])
    with pytest.raises(ValueError, match="same must hold only"):
        ContrastiveLoss()(e1, e2, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="e2 contains NaN"):
        ContrastiveLoss()(e1, e2.clone().fill_(float("nan")), same)
    with pytest.raises(ValueError, match="labels must be integer"):
        ContrastiveLoss().batch(e1, torch.zeros(4))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        ContrastiveLoss().batch(e1, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="from_pml"):
        ContrastiveLoss(distance=pml_distances.LpDistance())  # type: ignore[arg-type]
