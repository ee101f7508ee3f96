"""The loss contract: what a loss consumes, what the trainer fills in, per-sample values, names.

Every loss declares, as class attributes, the inputs it consumes (:class:`LossInput`) and the
constructor parameters the trainer fills from the data and the model (:class:`TrainerValue`).
Training objectives feed a loss from that declaration alone, never from its name or class, so a
new loss is one file: the class, its two declarations and ``@LOSSES.register(name)``.

Losses of this package derive from :class:`Loss`: a validated ``reduction``, ``per_sample``
values whatever the reduction (what :class:`~metriclab.losses.OHEM` ranks) and ``forward``
reducing them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Literal

import torch
from torch import nn

from metriclab.registry import Registry

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS = ("mean", "sum", "none")

#: Every loss a config can name (``train.loss``); ``pml:<Name>`` losses are found in PML itself.
LOSSES: Registry[type[nn.Module]] = Registry("loss", key="train.loss")


class LossInput(enum.Enum):
    """What a loss is called with; an objective feeds a loss one of these it can produce."""

    #: ``logits (N,)`` of a Siamese head (``b − d(x1, x2)``) and ``same (N,)`` 0/1 flags.
    PAIR_LOGITS = "Siamese pair logits (N,) with same-class flags (N,)"
    #: row-aligned ``e1, e2 (N, D)`` and ``same (N,)``.
    PAIRS = "aligned embedding pairs e1, e2 (N, D) with same-class flags (N,)"
    #: ``embeddings (B, D)`` and integer ``labels (B,)``; the loss selects its own tuples.
    LABELED_BATCH = "a labelled batch: embeddings (B, D) and labels (B,)"
    #: a labelled batch plus the indices tuple of a pytorch-metric-learning miner.
    MINED_BATCH = "a labelled batch with a pytorch-metric-learning miner's tuples"
    #: ``anchor, positive, negative (N, D)``.
    TRIPLETS = "explicit triplets anchor, positive, negative (N, D)"
    #: ``logits (B, C)`` of a linear head over the training classes and ``labels (B,)``.
    CLASS_LOGITS = "class logits (B, C) of a linear head with labels (B,)"
    #: ``embeddings (B, D)`` and ``labels (B,)`` in ``[0, C)``: the loss owns the class weights.
    CLASS_WEIGHTS = "embeddings (B, D) with labels (B,) for the loss's own class weights"


class TrainerValue(enum.Enum):
    """A constructor argument the trainer knows and a config need not repeat."""

    NUM_CLASSES = "the number of training classes"
    EMBEDDING_DIM = "the embedding dimension (model.dim)"
    DISTANCE = "the model's distance (model.distance)"


def describe(inputs: frozenset[LossInput]) -> str:
    """``inputs`` in words, in declaration order, for messages."""
    return " or ".join(member.value for member in LossInput if member in inputs) or "nothing"


class Loss(nn.Module):
    """Base of the loss family.

    Subclasses set ``consumes`` (and ``fills`` if the trainer should supply constructor
    arguments, ``{parameter name: TrainerValue}``) and implement ``per_sample``; the default
    ``forward`` reduces it.
    """

    consumes: ClassVar[frozenset[LossInput]] = frozenset()
    fills: ClassVar[Mapping[str, TrainerValue]] = MappingProxyType({})

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.reduction = reduction

    def per_sample(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Per-sample losses ``(N,)`` of ``inputs``, whatever ``self.reduction`` is."""
        raise NotImplementedError(f"{type(self).__name__} does not define per_sample")

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.per_sample(*inputs))

    def reduce(self, per_sample: torch.Tensor) -> torch.Tensor:
        """Apply the reduction to ``(N,)`` per-sample losses (mean of an empty batch is 0)."""
        if self.reduction == "none":
            return per_sample
        if self.reduction == "sum" or per_sample.numel() == 0:
            return per_sample.sum()
        return per_sample.mean()


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` if ``tensor`` holds NaN or infinity."""
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
