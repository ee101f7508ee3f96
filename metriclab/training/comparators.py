"""Episodic training of the learned comparators (:mod:`metriclab.models.comparators`).

Each step draws one N-way K-shot episode with Q queries per class (``train.n_way``,
``train.k_shot``, ``train.n_query``), embeds it, and scores the queries with the model's
comparator (``model.comparator``), trained jointly with the embedding network:

* ``train.objective=matching``: Matching Networks (Vinyals et al. 2016), negative
  log-likelihood of the true class under the attention's class probabilities.
* ``train.objective=relation``: Relation Networks (Sung et al. 2018), mean squared error of the
  relation scores to one-hot targets (paper Eq. 3).

Both are their methods' own losses: they feed no ``train.loss``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from metriclab.config import ConfigError, TrainConfig
from metriclab.losses.registry import loss_declaration
from metriclab.models import SiameseNet
from metriclab.models.comparators import Comparator
from metriclab.training.objectives import (
    OBJECTIVES,
    Objective,
    Setup,
    _able,
    configured_loss,
    consumed_by,
    episode_draw,
    step_rng,
)


class ComparatorObjective(Objective):
    """Base: one episode per step scored by ``model.comparator``; subclasses give the loss."""

    #: The ``model.comparator`` this objective trains.
    comparator: ClassVar[str] = ""
    #: What the loss is, for the refusal of a ``train.loss``.
    own_loss: ClassVar[str] = ""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        data, config = setup.data, setup.config
        name = config.train.objective
        if config.train.loss != TrainConfig().loss:
            loss = config.train.loss
            fix = _able(loss_declaration(loss).consumes or consumed_by(configured_loss(setup)))
            raise ConfigError(
                f"train.objective={name} trains with its own {self.own_loss} and feeds no "
                f"train.loss; drop train.loss={loss}" + (f", or {fix}" if fix else "")
            )
        if config.model.comparator != self.comparator:
            raise ConfigError(
                f"train.objective={name} trains the model's {self.comparator} comparator but "
                f"model.comparator={config.model.comparator}; set model.comparator="
                f"{self.comparator}"
            )
        self.n_way, self.k_shot, self.n_query = (
            config.train.n_way,
            config.train.k_shot,
            config.train.n_query,
        )
        self.draw = episode_draw(data, config)

    def scores(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Comparator scores ``(N·Q, N)`` of ``step``'s episode, the query classes ``(N·Q,)``
        and the number of images embedded."""
        rng = step_rng(self.seed, step)
        _, items = self.draw.draw(rng, 1)  # (1, N, K + Q)
        support, query = items[0, :, : self.k_shot], items[0, :, self.k_shot :]
        positions = np.concatenate([support.ravel(), query.ravel()])
        embeddings = self.embed(model, positions, rng)
        n_support = self.n_way * self.k_shot
        shots = embeddings[:n_support].unflatten(0, (1, self.n_way, self.k_shot))
        comparator = model.comparator
        assert isinstance(comparator, Comparator)  # the config check above guarantees it
        scores = comparator(shots, embeddings[n_support:].unsqueeze(0))[0]
        target = torch.arange(self.n_way, device=scores.device).repeat_interleave(self.n_query)
        return scores, target, len(positions)


@OBJECTIVES.register("matching")
class MatchingObjective(ComparatorObjective):
    """Matching Networks (Vinyals et al. 2016): ``−log P(y | x̂, S)`` averaged over the queries."""

    comparator = "matching"
    own_loss = "negative log-likelihood of the attention's class probabilities"

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        log_probabilities, target, used = self.scores(model, step)
        return self.scaled(F.nll_loss(log_probabilities, target)), used


@OBJECTIVES.register("relation")
class RelationObjective(ComparatorObjective):
    """Relation Networks (Sung et al. 2018): ``mean (r_{n,j} − 1[y_j = n])²`` over the N·Q × N
    query-class pairs."""

    comparator = "relation"
    own_loss = "mean squared error of relation scores to one-hot targets"

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        relations, target, used = self.scores(model, step)
        one_hot = F.one_hot(target, self.n_way).to(relations.dtype)
        return self.scaled(F.mse_loss(relations, one_hot)), used
