"""Reading the loss contract of any loss: ours, torch's and pytorch-metric-learning's.

Our losses declare ``consumes`` and ``fills`` as class attributes (:class:`~metriclab.losses.Loss`).
Classes we cannot edit get theirs here: torch's ``CrossEntropyLoss`` through :func:`declare`,
every pytorch-metric-learning loss through :func:`pml_declaration`. :func:`per_sample_losses`
gets per-sample values from any loss that can give them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from metriclab.losses.base import Loss, LossInput, TrainerValue

PML_MODULE = "pytorch_metric_learning"


@dataclass(frozen=True)
class Declaration:
    """What a loss consumes and which constructor parameters the trainer fills."""

    consumes: frozenset[LossInput]
    fills: Mapping[str, TrainerValue] = field(default_factory=lambda: MappingProxyType({}))


_FOREIGN: dict[type, Declaration] = {}


def declare(
    cls: type[nn.Module],
    consumes: frozenset[LossInput],
    fills: Mapping[str, TrainerValue] | None = None,
) -> None:
    """Declare the contract of a loss class we cannot give class attributes (another library's)."""
    _FOREIGN[cls] = Declaration(frozenset(consumes), MappingProxyType(dict(fills or {})))


def declaration_of(loss: type[nn.Module] | nn.Module) -> Declaration:
    """The contract of a loss class or instance.

    An instance may narrow its class's declaration: :class:`~metriclab.losses.OHEM` consumes
    what its inner loss consumes, known only once built.
    """
    cls = loss if isinstance(loss, type) else type(loss)
    consumes = getattr(loss, "consumes", None)
    if consumes is not None:
        return Declaration(frozenset(consumes), MappingProxyType(dict(getattr(loss, "fills", {}))))
    for klass in cls.__mro__:
        if klass in _FOREIGN:
            return _FOREIGN[klass]
    if cls.__module__.split(".")[0] == PML_MODULE:
        return pml_declaration(cls)
    raise ValueError(
        f"loss {cls.__qualname__} declares no inputs; give it a class attribute "
        "consumes = frozenset({LossInput...}) (see metriclab.losses.LossInput)"
    )


def pml_declaration(cls: type[nn.Module]) -> Declaration:
    """The contract of a pytorch-metric-learning loss class.

    PML losses take ``(embeddings, labels, indices_tuple=None)``: a labelled batch, optionally
    with a miner's tuples. Those that own a ``(D, C)`` class-weight matrix (ArcFace, CosFace,
    SphereFace, LargeMarginSoftmax, NormalizedSoftmax, ProxyAnchor, ProxyNCA, SoftTriple,
    SubCenterArcFace, P2SGrad) need labels in ``[0, C)`` over every training class, and the number
    of classes and the embedding size: they consume :attr:`LossInput.CLASS_WEIGHTS` and the trainer
    fills those two parameters.

    Which ones own class weights is decided by the constructor: a ``num_classes`` parameter *and*
    an embedding-size parameter (``embedding_size``, or ``descriptors_dim`` for P2SGradLoss).
    In PML 2.x this is exactly the ``WeightMixin`` subclasses plus P2SGradLoss (which holds its
    weights without the mixin); ``MarginLoss`` takes ``num_classes`` alone (a per-class β) and is
    a labelled-batch loss. The test suite checks this rule against ``WeightMixin``.
    """
    parameters = signature(cls)[0]
    size = next((p for p in ("embedding_size", "descriptors_dim") if p in parameters), None)
    if "num_classes" in parameters and size is not None:
        fills = {"num_classes": TrainerValue.NUM_CLASSES, size: TrainerValue.EMBEDDING_DIM}
        return Declaration(frozenset({LossInput.CLASS_WEIGHTS}), MappingProxyType(fills))
    return Declaration(frozenset({LossInput.LABELED_BATCH, LossInput.MINED_BATCH}))


def signature(cls: type) -> tuple[set[str], set[str]]:
    """Named constructor parameters (following ``**kwargs`` up the MRO) and the required ones."""
    accepted: set[str] = set()
    required: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass in (nn.Module, object):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        named = [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        accepted |= {p.name for p in named}
        required |= {p.name for p in named if p.default is p.empty and klass is cls}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return accepted, required


def gives_per_sample(loss: nn.Module) -> bool:
    """Whether :func:`per_sample_losses` can get per-sample values from ``loss``."""
    return (
        isinstance(loss, Loss | nn.CrossEntropyLoss) or getattr(loss, "reduction", None) == "none"
    )


def per_sample_losses(loss: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """Per-sample losses ``(N,)`` of ``loss`` on ``inputs``, whatever its reduction.

    Ours give them through :meth:`Loss.per_sample`; torch's ``CrossEntropyLoss`` through
    ``F.cross_entropy(..., reduction="none")`` with its own weight, ignore_index and label
    smoothing; any other module only if it was built with ``reduction="none"``.
    """
    if isinstance(loss, Loss):
        return loss.per_sample(*inputs)
    if isinstance(loss, nn.CrossEntropyLoss):
        if len(inputs) != 2:
            raise ValueError(f"CrossEntropyLoss takes (logits, labels), got {len(inputs)} inputs")
        logits, labels = inputs
        return F.cross_entropy(
            logits,
            labels,
            weight=loss.weight,
            ignore_index=loss.ignore_index,
            reduction="none",
            label_smoothing=loss.label_smoothing,
        )
    if getattr(loss, "reduction", None) == "none":
        return loss(*inputs)
    raise ValueError(
        f"cannot get per-sample losses from {type(loss).__name__}: use a metriclab loss, torch's "
        "CrossEntropyLoss, or a module built with reduction='none'"
    )
