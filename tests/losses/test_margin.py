import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning.losses import ArcFaceLoss
from pytorch_metric_learning.reducers import DoNothingReducer

from metriclab.losses import CAMRILoss


def naive_camri(
    embeddings: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    margins: dict[int, float],
    scale: float,
    training: bool,
) -> list[float]:
    """Per-sample CAMRI loss, one sample at a time, from the paper's formula (math module only)."""
    losses = []
    for x, y in zip(embeddings.tolist(), labels.tolist(), strict=True):
        norm_x = math.sqrt(sum(v * v for v in x))
        logits = []
        for j, w in enumerate(weight.tolist()):
            norm_w = math.sqrt(sum(v * v for v in w))
            cos = sum(a * b for a, b in zip(x, w, strict=True)) / (norm_x * norm_w)
            if training and j == y and y in margins:
                m = margins[y]
                theta = math.acos(max(-1.0, min(1.0, cos)))
                cos = math.cos(theta + m) if theta <= math.pi - m else cos - m * math.sin(m)
            logits.append(scale * cos)
        top = max(logits)
        log_sum = top + math.log(sum(math.exp(z - top) for z in logits))
        losses.append(log_sum - logits[y])
    return losses


def make_batch(
    loss: CAMRILoss, n: int, seed: int, opposite: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random float64 features and labels; the first ``opposite`` features point away from their
    class weight, so that θ_y > π − m and the monotone extension is exercised."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, loss.num_classes, (n,), generator=generator)
    embeddings = torch.randn(n, loss.embedding_dim, generator=generator, dtype=torch.float64)
    noise = 0.05 * torch.randn(
        opposite, loss.embedding_dim, generator=generator, dtype=torch.float64
    )
    embeddings[:opposite] = -loss.weight.detach()[labels[:opposite]].double() + noise
    return embeddings, labels


def test_camri_matches_naive_loop_in_training_and_eval() -> None:
    margins = {1: math.pi / 8, 3: 0.3}
    loss = CAMRILoss(6, 5, margins=margins, scale=16.0, reduction="none").double()
    embeddings, labels = make_batch(loss, 24, seed=0, opposite=6)
    weight = loss.weight.detach()
    expected = naive_camri(embeddings, weight, labels, margins, 16.0, training=True)
    assert loss(embeddings, labels).tolist() == pytest.approx(expected, abs=1e-9)
    loss.eval()
    expected_eval = naive_camri(embeddings, weight, labels, margins, 16.0, training=False)
    assert loss(embeddings, labels).tolist() == pytest.approx(expected_eval, abs=1e-9)
    assert expected != pytest.approx(expected_eval)  # the margin did something in training


def test_margin_only_on_important_targets_and_only_in_training() -> None:
    loss = CAMRILoss(4, 6, margins={2: 0.4, 5: 0.2}, scale=8.0).double()
    embeddings, labels = make_batch(loss, 30, seed=1)
    train_logits = loss.logits(embeddings, labels)
    loss.eval()
    eval_logits = loss.logits(embeddings)  # labels are optional in eval mode
    torch.testing.assert_close(loss.logits(embeddings, labels), eval_logits)
    cos = F.cosine_similarity(embeddings[:, None, :], loss.weight.double()[None], dim=2)
    torch.testing.assert_close(eval_logits, 8.0 * cos)
    changed = train_logits != eval_logits
    expected = torch.zeros_like(changed)
    important = (labels == 2) | (labels == 5)
    expected[torch.arange(30)[important], labels[important]] = True
    assert torch.equal(changed, expected)
    assert (train_logits[changed] < eval_logits[changed]).all()  # a margin lowers the target


def test_zero_margins_equal_scaled_cosine_softmax_cross_entropy() -> None:
    loss = CAMRILoss(5, 4, margins={0: 0.0, 3: 0.0}, scale=12.0).double()
    embeddings, labels = make_batch(loss, 16, seed=2)
    cos = F.cosine_similarity(embeddings[:, None, :], loss.weight.double()[None], dim=2)
    expected = F.cross_entropy(12.0 * cos, labels)
    torch.testing.assert_close(loss(embeddings, labels), expected)


def pml_arcface(loss: CAMRILoss, margin: float) -> ArcFaceLoss:
    """PML's ArcFace with our weights: PML takes degrees and stores W as (D, C)."""
    pml = ArcFaceLoss(
        loss.num_classes,
        loss.embedding_dim,
        margin=math.degrees(margin),
        scale=loss.scale,
        reducer=DoNothingReducer(),
    )
    pml.W.data = loss.weight.detach().double().T.clone()
    return pml


def test_all_classes_with_one_margin_equal_pml_arcface() -> None:
    m = 0.5
    loss = CAMRILoss(8, 5, margins={c: m for c in range(5)}, scale=10.0, reduction="none").double()
    embeddings, labels = make_batch(loss, 40, seed=3, opposite=10)
    expected = pml_arcface(loss, m)(embeddings, labels)["loss"]["losses"]
    torch.testing.assert_close(loss(embeddings, labels), expected)
    loss.reduction = "mean"
    torch.testing.assert_close(loss(embeddings, labels), expected.mean())


def test_one_important_class_is_arcface_on_it_and_plain_softmax_elsewhere() -> None:
    m = math.pi / 6
    loss = CAMRILoss(8, 5, margins={3: m}, scale=10.0, reduction="none").double()
    embeddings, labels = make_batch(loss, 60, seed=4, opposite=10)
    ours = loss(embeddings, labels)
    arcface = pml_arcface(loss, m)(embeddings, labels)["loss"]["losses"]
    plain = pml_arcface(loss, 0.0)(embeddings, labels)["loss"]["losses"]
    important = labels == 3
    assert important.any() and (~important).any()
    torch.testing.assert_close(ours[important], arcface[important])
    torch.testing.assert_close(ours[~important], plain[~important])


def test_camri_gradients_float64() -> None:
    loss = CAMRILoss(4, 3, margins={0: 0.3, 2: 1.2}, scale=4.0).double()
    embeddings, labels = make_batch(loss, 8, seed=5, opposite=2)
    embeddings.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (embeddings,))
    weight = loss.weight.detach().double().clone().requires_grad_(True)

    def by_weight(w: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(loss, {"weight": w}, (embeddings.detach(), labels))

    assert torch.autograd.gradcheck(by_weight, (weight,))


def test_camri_gradient_finite_when_feature_lies_on_its_weight() -> None:
    loss = CAMRILoss(3, 3, margins={1: 0.5}).double()
    embeddings = (2.0 * loss.weight.detach()[[1, 1]]).double().requires_grad_(True)
    loss(embeddings, torch.tensor([1, 1])).backward()
    assert torch.isfinite(embeddings.grad).all()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 12),
    margin=st.floats(0.0, 1.5),
    scale=st.floats(0.5, 64.0),
)
def test_camri_properties(seed: int, n: int, margin: float, scale: float) -> None:
    loss = CAMRILoss(4, 4, margins={0: margin, 2: margin / 2}, scale=scale, reduction="none")
    loss = loss.double()
    embeddings, labels = make_batch(loss, n, seed=seed, opposite=n // 3)
    per_sample = loss(embeddings, labels)
    assert per_sample.shape == (n,)
    assert (per_sample >= 0).all()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(loss(embeddings[order], labels[order]), per_sample[order])
    loss.reduction = "sum"
    total = loss(embeddings, labels)
    loss.reduction = "mean"
    torch.testing.assert_close(total, loss(embeddings, labels) * n)


def test_camri_seed_sets_the_class_weights() -> None:
    a, b, c = (CAMRILoss(4, 3, margins={}, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.weight, b.weight)
    assert not torch.equal(a.weight, c.weight)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"margins": {1: -0.1}}, "margins\\[1\\]"),
        ({"margins": {1: math.pi / 2}}, "margins\\[1\\]"),
        ({"margins": {1: float("nan")}}, "margins\\[1\\]"),
        ({"margins": {3: 0.1}}, "margins keys"),
        ({"margins": {True: 0.1}}, "margins keys"),
        ({"margins": [0.1, 0.2]}, "margins must be a mapping"),
        ({"margins": {}, "scale": 0.0}, "scale"),
        ({"margins": {}, "scale": float("inf")}, "scale"),
        ({"margins": {}, "num_classes": 1}, "num_classes"),
        ({"margins": {}, "embedding_dim": 0}, "embedding_dim"),
        ({"margins": {}, "reduction": "avg"}, "reduction"),
    ],
)
def test_camri_rejects_bad_settings(kwargs: dict, match: str) -> None:
    settings_ = {"embedding_dim": 4, "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        CAMRILoss(**settings_)


def test_camri_rejects_bad_inputs() -> None:
    loss = CAMRILoss(4, 3, margins={0: 0.2})
    embeddings, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="embeddings must have shape"):
        loss(torch.randn(5, 3), labels)
    with pytest.raises(ValueError, match="labels must have shape"):
        loss(embeddings, labels[:4])
    with pytest.raises(ValueError, match="labels must lie in"):
        loss(embeddings, torch.tensor([0, 1, 3, 0, 1]))
    with pytest.raises(ValueError, match="labels must be an integer"):
        loss(embeddings, labels.float())
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        loss(torch.full((5, 4), float("nan")), labels)
    with pytest.raises(ValueError, match="labels are required"):
        loss.logits(embeddings)
