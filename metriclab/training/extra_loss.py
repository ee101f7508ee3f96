"""A second loss over the batch an objective already embedded (``train.extra_loss``).

Practitioners combine a margin classifier with a pair or triplet term (e.g. ArcFace beside a
triplet loss; Deng et al. 2019 compare such combinations, and pytorch-metric-learning's
``MultipleLosses`` sums losses the same way): the total is ``train.loss +
train.extra_loss_weight · train.extra_loss``. The extra term reads the embeddings ``(B, D)`` and
labels ``(B,)`` of whatever batch the objective drew (pairs, P×K classes, an episode, random
images), so it consumes a labelled batch or owns class weights; losses that need pair logits,
aligned pairs, triplets or class logits are refused in one sentence. Its parameters (class
weights, proxies) live on the objective, so the optimiser steps them, checkpoints keep them and
the model stays the embedding network alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from metriclab.config import ConfigError, TrainConfig
from metriclab.losses import LOSSES, LossInput, TrainerValue, build_loss, declaration_of
from metriclab.losses.base import describe
from metriclab.losses.registry import PML_CHOICE, PML_PREFIX, filled_params, loss_declaration

#: What an extra loss may consume: both are ``(embeddings, labels)`` calls.
FEEDABLE = frozenset({LossInput.LABELED_BATCH, LossInput.CLASS_WEIGHTS})


class ExtraLoss(nn.Module):
    """``weight · criterion(embeddings, labels)`` over the batch recorded by :meth:`keep`.

    Args:
        criterion: a built loss consuming a labelled batch or owning class weights.
        weight: its positive weight in the total.
    """

    def __init__(self, criterion: nn.Module, weight: float) -> None:
        super().__init__()
        self.criterion = criterion
        self.weight = weight
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None
        #: The weighted term of the batch scored last, detached (what ``metrics.csv`` logs).
        self.last: torch.Tensor | None = None

    def keep(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Record the step's embeddings ``(B, D)`` (with their graph) and labels ``(B,)``."""
        self._batch = (embeddings, labels)

    def forward(self) -> torch.Tensor:
        """The weighted loss of the batch kept last; it is then forgotten (one use per step)."""
        if self._batch is None:
            raise RuntimeError("ExtraLoss has no batch: the objective embeds one before each step")
        embeddings, labels = self._batch
        self._batch = None
        value = self.weight * self.criterion(embeddings, labels)
        self.last = value.detach()
        return value


def build_extra_loss(train: TrainConfig, values: Mapping[TrainerValue, Any]) -> ExtraLoss | None:
    """``train.extra_loss`` built from ``train.extra_loss_params`` (the trainer's ``values``
    fill what the loss declares), or ``None`` when it is ``none``."""
    name = train.extra_loss
    if name == "none":
        return None
    if not name.startswith(PML_PREFIX) and name not in LOSSES:
        raise LOSSES.unknown(name, PML_CHOICE, key="train.extra_loss")
    declared = loss_declaration(name).consumes
    if declared:  # refuse before building when the class already tells (OHEM does not)
        _check_feedable(name, declared)
    criterion = build_loss(name, filled_params(name, train.extra_loss_params, values))
    _check_feedable(name, declaration_of(criterion).consumes)
    return ExtraLoss(criterion, train.extra_loss_weight)


def _check_feedable(name: str, consumes: frozenset[LossInput]) -> None:
    if consumes & FEEDABLE:
        return
    able = [other for other in LOSSES if loss_declaration(other).consumes & FEEDABLE]
    raise ConfigError(
        f"train.extra_loss={name} consumes {describe(consumes)}, but an extra loss is fed the "
        f"step's embeddings and labels; choose one that takes {describe(FEEDABLE)} "
        f"({', '.join(able)} or a {PML_PREFIX}<Name> loss), or make {name} train.loss"
    )
