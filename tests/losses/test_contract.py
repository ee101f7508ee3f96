"""The loss contract: declarations, per-sample values, PML-style calls, PML declarations."""

from collections.abc import Callable

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.losses.mixins import WeightMixin
from torch import nn

from metriclab.distances import L2, Cosine
from metriclab.losses import (
    LOSSES,
    OHEM,
    ContrastiveLoss,
    CosineLoss,
    Loss,
    LossInput,
    TrainerValue,
    TripletLoss,
    build_loss,
    declaration_of,
    loss_declaration,
    per_sample_losses,
)
from metriclab.losses.contract import pml_declaration, signature

N, D, C = 12, 5, 4

# Constructor arguments a registered loss needs beyond what a trainer fills (same table as the
# objective walk in tests/training/test_objectives.py).
NEEDS: dict[str, dict] = {
    "camri": {"margins": {0: 0.3}},
    "ohem": {"keep": 0.5, "loss": {"name": "cosine", "params": {}}},
}
FILLED = {TrainerValue.NUM_CLASSES: C, TrainerValue.EMBEDDING_DIM: D, TrainerValue.DISTANCE: L2()}


def inputs(form: LossInput, seed: int) -> tuple[torch.Tensor, ...]:
    """Random float64 inputs of one declared form."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(N) % C
    same = torch.arange(N) % 2 == 0
    embeddings = torch.randn(N, D, generator=g, dtype=torch.float64)
    if form is LossInput.PAIR_LOGITS:
        return torch.randn(N, generator=g, dtype=torch.float64), same
    if form is LossInput.PAIRS:
        return embeddings, torch.randn(N, D, generator=g, dtype=torch.float64), same
    if form is LossInput.TRIPLETS:
        return tuple(torch.randn(N, D, generator=g, dtype=torch.float64) for _ in range(3))
    if form is LossInput.CLASS_LOGITS:
        return torch.randn(N, C, generator=g, dtype=torch.float64), labels
    return embeddings, labels  # LABELED_BATCH, CLASS_WEIGHTS


def build(name: str, reduction: str | None = None) -> nn.Module:
    params = dict(NEEDS.get(name, {}))
    for parameter, value in loss_declaration(name).fills.items():
        params.setdefault(parameter, FILLED[value])
    if reduction is not None:
        params["reduction"] = reduction
    return build_loss(name, params).double()


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_registered_loss_declares_inputs_and_fillable_parameters(name: str) -> None:
    declared = loss_declaration(name)
    accepted = signature(LOSSES[name])[0]
    assert set(declared.fills) <= accepted, f"{name} fills parameters it does not take"
    built = declaration_of(build(name))
    assert built.consumes, f"{name} declares no inputs"
    assert built.consumes <= set(LossInput)


@pytest.mark.parametrize("name", [n for n in LOSSES if issubclass(LOSSES[n], Loss)])
def test_per_sample_is_what_reduction_none_returns_and_ohem_ignores_the_inner_reduction(
    name: str,
) -> None:
    none = build(name, "none")
    mean = build(name, "mean")
    mean.load_state_dict(none.state_dict())
    for form in declaration_of(none).consumes - {LossInput.MINED_BATCH}:
        if form is LossInput.TRIPLETS and getattr(none, "mining", "all") != "all":
            continue
        args = inputs(form, seed=len(name))
        torch.testing.assert_close(none.per_sample(*args), none(*args), rtol=0, atol=0)
        torch.testing.assert_close(mean.per_sample(*args), none(*args), rtol=0, atol=0)
        torch.testing.assert_close(OHEM(mean, 0.5)(*args), OHEM(none, 0.5)(*args), rtol=0, atol=0)


def test_ohem_consumes_what_its_inner_loss_consumes() -> None:
    assert declaration_of(OHEM(CosineLoss(), 0.5)).consumes == {LossInput.CLASS_LOGITS}
    assert declaration_of(OHEM(TripletLoss(), 0.5)).consumes == TripletLoss.consumes
    assert declaration_of(OHEM(nn.CrossEntropyLoss(), 3)).consumes == {LossInput.CLASS_LOGITS}


def test_per_sample_losses_of_torch_cross_entropy_and_refusals() -> None:
    logits, labels = inputs(LossInput.CLASS_LOGITS, 3)
    per = per_sample_losses(nn.CrossEntropyLoss(label_smoothing=0.2), logits, labels)
    expected = [
        -(0.8 * torch.log_softmax(row, 0)[y] + 0.2 * torch.log_softmax(row, 0).mean()).item()
        for row, y in zip(logits, labels.tolist(), strict=True)
    ]
    assert per.tolist() == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="cannot get per-sample losses from BCEWithLogitsLoss"):
        per_sample_losses(nn.BCEWithLogitsLoss(), logits[:, 0], labels.double())
    with pytest.raises(ValueError, match="declares no inputs"):
        declaration_of(nn.MSELoss())


# -------------------------------------------------------- PML's (embeddings, labels) call


def _value_and_grad(
    call: Callable[[torch.Tensor], torch.Tensor], embeddings: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    x = embeddings.clone().requires_grad_(True)
    value = call(x)
    value.sum().backward()
    assert x.grad is not None
    return value.detach(), x.grad


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "loss",
    [
        TripletLoss(0.3, mining="all"),
        TripletLoss(0.3, mining="batch_hard", distance=Cosine()),
        TripletLoss(0.3, mining="semi_hard"),
        TripletLoss(0.0, mining="batch_hard", soft=True),
        ContrastiveLoss(1.5),
        ContrastiveLoss(0.5, distance=Cosine()),
    ],
    ids=["all", "batch-hard", "semi-hard", "soft", "contrastive", "contrastive-cosine"],
)
def test_pml_style_call_equals_the_batch_form(loss: Loss, reduction: str) -> None:
    loss.reduction = reduction
    embeddings, labels = inputs(LossInput.LABELED_BATCH, 7)
    called = _value_and_grad(lambda x: loss(x, labels), embeddings)
    batch = _value_and_grad(lambda x: loss.batch(x, labels), embeddings)  # type: ignore[operator]
    for a, b in zip(called, batch, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert called[1].abs().sum() > 0


def test_explicit_forms_still_take_three_tensors() -> None:
    a, p, n = inputs(LossInput.TRIPLETS, 1)
    expected = (L2()(a, p) - L2()(a, n) + 0.2).clamp_min(0).mean()
    torch.testing.assert_close(TripletLoss(0.2)(a, p, n), expected)
    e1, e2, same = inputs(LossInput.PAIRS, 2)
    d = L2()(e1, e2)
    expected = 0.5 * torch.where(same, d, (1.0 - d).clamp_min(0)).pow(2).mean()
    torch.testing.assert_close(ContrastiveLoss(1.0)(e1, e2, same), expected)


@pytest.mark.parametrize("loss", [TripletLoss(), ContrastiveLoss()], ids=["triplet", "contrastive"])
def test_calls_matching_neither_form_are_one_clear_error(loss: Loss) -> None:
    embeddings, labels = inputs(LossInput.LABELED_BATCH, 0)
    name = type(loss).__name__
    for bad in (
        (embeddings, labels.double()),  # float labels: not a labelled batch
        (embeddings,),
        (embeddings, labels, (labels, labels, labels)),  # a PML miner's indices_tuple
        (embeddings, labels[:, None]),
    ):
        with pytest.raises(ValueError, match=f"{name} takes .* or a labelled batch"):
            loss(*bad)
    with pytest.raises(ValueError, match="labels must have shape"):
        loss(embeddings, labels[:-1])


# ------------------------------------------------------------------- PML declarations


def _pml_loss_classes() -> list[type]:
    base = pml_losses.BaseMetricLossFunction
    return [
        cls
        for name, cls in sorted(vars(pml_losses).items())
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base
    ]


def test_pml_class_weight_losses_are_the_weight_mixins_plus_p2sgrad() -> None:
    owning = {
        cls.__name__
        for cls in _pml_loss_classes()
        if pml_declaration(cls).consumes == {LossInput.CLASS_WEIGHTS}
    }
    mixins = {cls.__name__ for cls in _pml_loss_classes() if issubclass(cls, WeightMixin)}
    assert owning == mixins | {"P2SGradLoss"}
    assert {"ArcFaceLoss", "ProxyAnchorLoss", "SoftTripleLoss"} <= owning
    assert "MarginLoss" not in owning  # num_classes alone: a per-class beta, not class weights


def test_pml_declarations_fill_the_parameters_their_constructors_take() -> None:
    for cls in _pml_loss_classes():
        declared = pml_declaration(cls)
        assert set(declared.fills) <= signature(cls)[0]
        if declared.consumes != {LossInput.CLASS_WEIGHTS}:
            assert declared.consumes == {LossInput.LABELED_BATCH, LossInput.MINED_BATCH}
    arcface = loss_declaration("pml:ArcFaceLoss")
    assert dict(arcface.fills) == {
        "num_classes": TrainerValue.NUM_CLASSES,
        "embedding_size": TrainerValue.EMBEDDING_DIM,
    }
    p2s = pml_declaration(pml_losses.P2SGradLoss)
    assert p2s.fills["descriptors_dim"] is TrainerValue.EMBEDDING_DIM
