import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.losses import (
    OHEM,
    BinaryHardMiningLoss,
    ComplementCrossEntropy,
    CosineLoss,
    HardMiningLoss,
    complement_entropy,
    hard_mining_weight,
)

# ---------------------------------------------------------------- naive references (math only)


def softmax_row(z: list[float]) -> list[float]:
    top = max(z)
    exps = [math.exp(v - top) for v in z]
    return [e / sum(exps) for e in exps]


def naive_cosine(outputs: torch.Tensor, labels: torch.Tensor, ce_weight: float, head=None) -> list:
    """Barz & Denzler: 1 − f_y/‖f‖ + λ·CE(V·f/‖f‖ + b, y), one sample at a time."""
    losses = []
    for f, y in zip(outputs.tolist(), labels.tolist(), strict=True):
        norm = math.sqrt(sum(v * v for v in f))
        loss = 1.0 - f[y] / norm
        if ce_weight:
            weight, bias = head.weight.tolist(), head.bias.tolist()
            z = [
                sum(w * v / norm for w, v in zip(row, f, strict=True)) + b
                for row, b in zip(weight, bias, strict=True)
            ]
            loss += ce_weight * -math.log(softmax_row(z)[y])
        losses.append(loss)
    return losses


def naive_complement(logits: torch.Tensor, labels: torch.Tensor) -> list[tuple[float, float]]:
    """(cross-entropy, complement entropy H_c) per sample, from ŷ and P̂_j = ŷ_j/(1 − ŷ_g)."""
    out = []
    for z, g in zip(logits.tolist(), labels.tolist(), strict=True):
        y_hat = softmax_row(z)
        h_c = 0.0
        for j, p in enumerate(y_hat):
            p_hat = p / (1.0 - y_hat[g])
            if j != g and p_hat > 0:
                h_c -= p_hat * math.log(p_hat)
        out.append((-math.log(y_hat[g]), h_c))
    return out


def naive_weight(p: float, delta: float) -> float:
    if p == 0:
        return 0.0
    sinc = math.sin(math.pi * p) / (math.pi * p)
    outlier = math.exp(-delta * p) * math.sin(math.pi * delta * p) / (math.pi * delta * p)
    return sinc - outlier


def naive_hml(p_true: list[float], alpha: float, delta: float, gamma: float) -> list[float]:
    return [alpha * max(naive_weight(p, delta), 0.0) ** gamma * -math.log(p) for p in p_true]


def random_logits(
    seed: int, n: int, c: int, spread: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = spread * torch.randn(n, c, generator=generator, dtype=torch.float64)
    return logits, torch.randint(0, c, (n,), generator=generator)


# ---------------------------------------------------------------------------- cosine loss


def test_cosine_loss_matches_naive_loop() -> None:
    outputs, labels = random_logits(0, 12, 5)
    assert CosineLoss(reduction="none")(outputs, labels).tolist() == pytest.approx(
        naive_cosine(outputs, labels, 0.0), abs=1e-12
    )
    loss = CosineLoss(ce_weight=0.1, num_classes=5, reduction="none").double()
    expected = naive_cosine(outputs, labels, 0.1, loss.classifier)
    assert loss(outputs, labels).tolist() == pytest.approx(expected, abs=1e-12)


def test_cosine_loss_hand_values() -> None:
    outputs = torch.tensor([[3.0, 0.0, 0.0], [0.0, -2.0, 0.0], [1.0, 1.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    per = CosineLoss(reduction="none")(outputs, labels)
    assert per.tolist() == pytest.approx([0.0, 2.0, 1 - 1 / math.sqrt(2)])


def test_cosine_loss_gradients_and_seed() -> None:
    outputs, labels = random_logits(1, 6, 4)
    loss = CosineLoss(ce_weight=0.5, num_classes=4).double()
    assert torch.autograd.gradcheck(lambda o: loss(o, labels), (outputs.requires_grad_(True),))
    a, b = CosineLoss(0.1, 4, seed=3), CosineLoss(0.1, 4, seed=3)
    assert torch.equal(a.classifier.weight, b.classifier.weight)


def test_cosine_loss_errors() -> None:
    with pytest.raises(ValueError, match="num_classes is required"):
        CosineLoss(ce_weight=0.1)
    with pytest.raises(ValueError, match="ce_weight"):
        CosineLoss(ce_weight=-1.0)
    with pytest.raises(ValueError, match="outputs must have one column per class"):
        CosineLoss(0.1, num_classes=4)(torch.randn(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="outputs must be a floating-point tensor"):
        CosineLoss()(torch.randn(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must lie in"):
        CosineLoss()(torch.randn(3, 4), torch.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match="outputs contains NaN"):
        CosineLoss()(torch.full((2, 3), float("nan")), torch.tensor([0, 1]))


# ------------------------------------------------------------------------------------ OHEM


@pytest.mark.parametrize(
    ("keep", "k"), [(0.5, 5), (0.7, 7), (0.25, 3), (1.0, 10), (3, 3), (50, 10)]
)
def test_ohem_averages_the_hardest(keep: float | int, k: int) -> None:
    outputs, labels = random_logits(2, 10, 4)
    inner = CosineLoss(ce_weight=0.1, num_classes=4, reduction="none").double()
    per = naive_cosine(outputs, labels, 0.1, inner.classifier)
    hardest = sorted(per, reverse=True)[:k]
    assert OHEM(inner, keep)(outputs, labels).item() == pytest.approx(sum(hardest) / k, abs=1e-12)
    assert OHEM(inner, keep, reduction="sum")(outputs, labels).item() == pytest.approx(sum(hardest))
    masked = OHEM(inner, keep, reduction="none")(outputs, labels).tolist()
    assert sorted(v for v in masked if v != 0) == pytest.approx(sorted(hardest))


def test_ohem_gradient_reaches_only_kept_samples() -> None:
    outputs, labels = random_logits(3, 8, 3)
    outputs.requires_grad_(True)
    inner = CosineLoss(reduction="none")
    OHEM(inner, 0.5)(outputs, labels).backward()
    per = inner(outputs.detach(), labels)
    kept = per >= per.sort(descending=True).values[3]
    assert (outputs.grad[~kept] == 0).all()
    assert (outputs.grad[kept].abs().sum(1) > 0).all()
    assert torch.autograd.gradcheck(lambda o: OHEM(inner, 3)(o, labels), (outputs,))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("inner_reduction", ["mean", "sum"])
def test_ohem_ranks_per_sample_losses_whatever_the_inner_reduction(
    reduction: str, inner_reduction: str
) -> None:
    outputs, labels = random_logits(4, 9, 4)
    reducing = CosineLoss(ce_weight=0.1, num_classes=4, reduction=inner_reduction).double()
    per_sample = CosineLoss(ce_weight=0.1, num_classes=4, reduction="none").double()
    per_sample.load_state_dict(reducing.state_dict())
    values, grads = [], []
    for inner in (reducing, per_sample):
        x = outputs.clone().requires_grad_(True)
        value = OHEM(inner, 0.6, reduction=reduction)(x, labels)  # type: ignore[arg-type]
        value.sum().backward()
        values.append(value.detach())
        grads.append(x.grad)
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=0)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_ohem_over_torch_cross_entropy_keeps_its_weight_and_label_smoothing() -> None:
    logits, labels = random_logits(5, 12, 4)
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    inner = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1)  # mean-reducing
    # Independent reference: smoothed targets, log-softmax, per-class weights, by hand.
    log_p = torch.log_softmax(logits, dim=1)
    smooth = torch.full_like(log_p, 0.1 / 4).scatter(1, labels[:, None], 0.9 + 0.1 / 4)
    per = -(smooth * log_p * weight).sum(1)
    hardest = per.sort(descending=True).values[:6]
    got = OHEM(inner, 0.5)(logits, labels)
    assert got.item() == pytest.approx(hardest.mean().item(), abs=1e-12)


def test_ohem_errors() -> None:
    with pytest.raises(ValueError, match="cannot rank the per-sample losses of BCEWithLogitsLoss"):
        OHEM(torch.nn.BCEWithLogitsLoss(), 0.5)
    with pytest.raises(ValueError, match="cannot rank"):
        OHEM(lambda x, y: x, 0.5)  # type: ignore[arg-type]
    inner = CosineLoss(reduction="none")
    for keep in (0.0, 1.5, -0.2, 0, -3, True, "half"):
        with pytest.raises(ValueError, match="keep"):
            OHEM(inner, keep)  # type: ignore[arg-type]


# ------------------------------------------------------------------ hard mining loss (HMLoss)

PUBLISHED_TRUE = [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
PUBLISHED_PRED = [[0.8, 0.1, 0.1], [0.9, 0.1, 0.0], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7]]


def test_hmloss_reproduces_published_example() -> None:
    # Official README: CategoricalHardMiningLoss(alpha=0.75, delta=1e7, gamma=1) → 0.46121484
    labels = torch.tensor(PUBLISHED_TRUE).argmax(1)
    probs = torch.tensor(PUBLISHED_PRED, dtype=torch.float64)
    loss = HardMiningLoss(alpha=0.75, delta=1e7, gamma=1.0, from_probs=True)
    assert loss(probs, labels).item() == pytest.approx(0.46121484, abs=1e-6)
    assert loss(probs.float(), labels).item() == pytest.approx(0.46121484, abs=1e-6)
    p_true = [row[int(y)] for row, y in zip(PUBLISHED_PRED, labels, strict=True)]
    assert sum(naive_hml(p_true, 0.75, 1e7, 1.0)) / 4 == pytest.approx(0.46121484, abs=1e-6)


def test_binary_hmloss_reproduces_published_example() -> None:
    # Official code: BinaryHardMiningLoss(alpha=0.75, delta=1e5, gamma=1) → 0.20466684
    loss = BinaryHardMiningLoss(alpha=0.75, delta=1e5, gamma=1.0, from_probs=True)
    value = loss(torch.tensor([0.8, 0.9, 0.9], dtype=torch.float64), torch.tensor([1, 1, 0]))
    assert value.item() == pytest.approx(0.20466684, abs=1e-6)


@pytest.mark.parametrize(("delta", "gamma"), [(1e7, 1.0), (2.0, 0.5), (30.0, 2.0), (5.0, 0.0)])
def test_hmloss_matches_naive_loop_from_logits(delta: float, gamma: float) -> None:
    logits, labels = random_logits(4, 16, 5, spread=4.0)
    p_true = [softmax_row(z)[y] for z, y in zip(logits.tolist(), labels.tolist(), strict=True)]
    loss = HardMiningLoss(alpha=0.6, delta=delta, gamma=gamma, reduction="none")
    assert loss(logits, labels).tolist() == pytest.approx(
        naive_hml(p_true, 0.6, delta, gamma), abs=1e-12
    )


def test_binary_hmloss_matches_naive_loop_from_logits() -> None:
    generator = torch.Generator().manual_seed(5)
    logits = 3 * torch.randn(20, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 2, (20,), generator=generator)
    expected = []
    for z, t in zip(logits.tolist(), targets.tolist(), strict=True):
        p = 1 / (1 + math.exp(-z))
        p_t, a_t = (p, 0.3) if t == 1 else (1 - p, 0.7)
        expected.append(a_t * max(naive_weight(p_t, 40.0), 0.0) ** 1.5 * -math.log(p_t))
    loss = BinaryHardMiningLoss(alpha=0.3, delta=40.0, gamma=1.5, reduction="none")
    assert loss(logits, targets).tolist() == pytest.approx(expected, abs=1e-12)
    assert loss(logits, targets.bool()).tolist() == pytest.approx(expected, abs=1e-12)


def test_hmloss_weight_limits_and_extremes() -> None:
    p = torch.tensor([0.0, 1e-300, 0.5, 1.0], dtype=torch.float64)
    w = hard_mining_weight(p, 1e30)
    assert torch.isfinite(w).all() and w[0] == 0
    assert w[2].item() == pytest.approx(2 / math.pi)
    # confidently wrong (p underflows to 0) and huge δ: finite value and gradient, no NaN
    logits = torch.tensor([[-800.0, 0.0, 5.0], [0.0, 900.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    for delta, gamma in ((1e30, 1.0), (1e7, 0.5), (3.0, 0.3)):
        value = HardMiningLoss(delta=delta, gamma=gamma)(logits, labels)
        (grad,) = torch.autograd.grad(value, logits)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
    probs = torch.tensor([[0.0, 0.5, 0.5], [0.0, 1.0, 0.0]], requires_grad=True)
    value = HardMiningLoss(from_probs=True, gamma=0.5)(probs, labels)
    (grad,) = torch.autograd.grad(value, probs)
    assert torch.isfinite(value) and torch.isfinite(grad).all()


def test_hmloss_gradients_float64() -> None:
    logits, labels = random_logits(6, 6, 4, spread=1.5)
    for loss in (HardMiningLoss(delta=3.0, gamma=1.0), HardMiningLoss(delta=1e7, gamma=0.5)):
        assert torch.autograd.gradcheck(
            lambda z, f=loss: f(z, labels), (logits.requires_grad_(True),)
        )
    probs = torch.softmax(logits.detach(), 1).requires_grad_(True)
    from_probs = HardMiningLoss(delta=4.0, from_probs=True)
    # perturbations leave the rows summing to 1 only to first order; gradcheck uses 1e-6 steps
    assert torch.autograd.gradcheck(lambda p: from_probs(p, labels), (probs,))
    binary = BinaryHardMiningLoss(delta=2.0, gamma=2.0)
    targets = torch.tensor([1, 0, 1, 1, 0, 0])
    assert torch.autograd.gradcheck(
        lambda z: binary(z, targets), (logits[:, 0].detach().requires_grad_(True),)
    )


def test_hmloss_errors() -> None:
    for kwargs, match in (
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"delta": 0.5}, "delta"),
        ({"gamma": -1.0}, "gamma"),
        ({"delta": float("inf")}, "delta"),
    ):
        with pytest.raises(ValueError, match=match):
            HardMiningLoss(**kwargs)
    with pytest.raises(ValueError, match="alpha"):
        BinaryHardMiningLoss(alpha=-0.1)
    labels = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="probs rows must sum to 1"):
        HardMiningLoss(from_probs=True)(torch.tensor([[0.5, 0.2], [0.5, 0.5]]), labels)
    with pytest.raises(ValueError, match="probs must lie in"):
        HardMiningLoss(from_probs=True)(torch.tensor([[1.5, -0.5], [0.5, 0.5]]), labels)
    with pytest.raises(ValueError, match="logits contains NaN"):
        HardMiningLoss()(torch.tensor([[float("nan"), 0.0], [0.0, 0.0]]), labels)
    with pytest.raises(ValueError, match="labels must lie in"):
        HardMiningLoss()(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="targets must be 0 or 1"):
        BinaryHardMiningLoss()(torch.zeros(2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="shape"):
        BinaryHardMiningLoss()(torch.zeros(2, 1), torch.tensor([0, 1]))


# ---------------------------------------------------------- complement cross-entropy and COT


@pytest.mark.parametrize("gamma", [-1.0, 0.0, 2.5])
def test_complement_cross_entropy_matches_naive_loop(gamma: float) -> None:
    logits, labels = random_logits(7, 12, 6)
    expected = [ce + gamma / 5 * h for ce, h in naive_complement(logits, labels)]
    got = ComplementCrossEntropy(gamma, reduction="none")(logits, labels)
    assert got.tolist() == pytest.approx(expected, abs=1e-12)


def test_complement_cross_entropy_rewards_a_flat_wrong_class_distribution() -> None:
    # same true-class probability 0.6; the wrong classes share 0.4 evenly, or not
    flat = torch.log(torch.tensor([[0.6, 0.1, 0.1, 0.1, 0.1]], dtype=torch.float64))
    peaked = torch.log(torch.tensor([[0.6, 0.37, 0.01, 0.01, 0.01]], dtype=torch.float64))
    label = torch.tensor([0])
    ce = F.cross_entropy(flat, label)
    torch.testing.assert_close(ce, F.cross_entropy(peaked, label))
    cce = ComplementCrossEntropy(gamma=-1.0)
    assert cce(flat, label) < cce(peaked, label) < ce
    # at the flat optimum, H_c = log(K − 1): the documented lower bound relative to CE
    torch.testing.assert_close(cce(flat, label), ce - math.log(4) / 4)
    assert ComplementCrossEntropy(gamma=1.0)(flat, label) > ComplementCrossEntropy(1.0)(
        peaked, label
    )


def test_complement_entropy_is_cot_normalised() -> None:
    logits, labels = random_logits(8, 10, 4)
    h = [h_c for _, h_c in naive_complement(logits, labels)]
    assert complement_entropy(logits, labels).item() == pytest.approx(sum(h) / (10 * 4), abs=1e-12)
    per = complement_entropy(logits, labels, reduction="none")
    assert per.tolist() == pytest.approx([v / 4 for v in h], abs=1e-12)
    assert (per >= 0).all() and (per <= math.log(3) / 4 + 1e-12).all()


def test_complement_terms_stay_finite_when_the_true_class_saturates() -> None:
    logits = torch.tensor([[100.0, -50.0, -60.0], [0.0, 0.0, 800.0]], requires_grad=True)
    labels = torch.tensor([0, 2])
    for value in (ComplementCrossEntropy()(logits, labels), -complement_entropy(logits, labels)):
        (grad,) = torch.autograd.grad(value, logits)
        assert torch.isfinite(value) and torch.isfinite(grad).all()


def test_complement_gradients_float64() -> None:
    logits, labels = random_logits(9, 5, 4, spread=1.0)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: ComplementCrossEntropy()(z, labels), (logits,))
    assert torch.autograd.gradcheck(lambda z: complement_entropy(z, labels), (logits,))


def test_complement_errors() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        ComplementCrossEntropy()(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="gamma"):
        ComplementCrossEntropy(gamma=float("nan"))
    with pytest.raises(ValueError, match="reduction"):
        complement_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels must have shape"):
        ComplementCrossEntropy()(torch.zeros(2, 3), torch.tensor([0, 1, 2]))


# --------------------------------------------------------------------- shared properties

LOSSES = {
    "cosine": lambda r: CosineLoss(reduction=r),
    "cosine+ce": lambda r: CosineLoss(ce_weight=0.1, num_classes=4, reduction=r).double(),
    "ohem": lambda r: OHEM(
        CosineLoss(ce_weight=0.1, num_classes=4, reduction="none").double(), 0.6, r
    ),
    "hml": lambda r: HardMiningLoss(delta=50.0, gamma=0.7, reduction=r),
    "cce": lambda r: ComplementCrossEntropy(reduction=r),
}
NON_NEGATIVE = {"cosine", "cosine+ce", "ohem", "hml"}  # CCE with γ < 0 can go below 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), name=st.sampled_from(sorted(LOSSES)))
def test_loss_properties(seed: int, n: int, name: str) -> None:
    logits, labels = random_logits(seed, n, 4)
    per_sample = LOSSES[name]("none")(logits, labels)
    assert per_sample.shape == (n,)
    if name in NON_NEGATIVE:
        assert (per_sample >= 0).all()
    else:
        assert (
            per_sample
            >= F.cross_entropy(logits, labels, reduction="none") - math.log(3) / 3 - 1e-12
        ).all()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    mean = LOSSES[name]("mean")(logits, labels)
    torch.testing.assert_close(LOSSES[name]("mean")(logits[order], labels[order]), mean)
    total = LOSSES[name]("sum")(logits, labels)
    count = math.ceil(round(0.6 * n, 9)) if name == "ohem" else n
    torch.testing.assert_close(total, mean * count)
    torch.testing.assert_close(per_sample.sum(), total)
    if name != "ohem":
        torch.testing.assert_close(
            LOSSES[name]("none")(logits[order], labels[order]), per_sample[order]
        )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12))
def test_binary_hmloss_properties(seed: int, n: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    logits = 4 * torch.randn(n, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 2, (n,), generator=generator)
    per_sample = BinaryHardMiningLoss(reduction="none")(logits, targets)
    assert per_sample.shape == (n,) and (per_sample >= 0).all()
    order = torch.randperm(n, generator=generator)
    torch.testing.assert_close(
        BinaryHardMiningLoss(reduction="none")(logits[order], targets[order]), per_sample[order]
    )
    torch.testing.assert_close(
        BinaryHardMiningLoss(reduction="sum")(logits, targets),
        BinaryHardMiningLoss()(logits, targets) * n,
    )
