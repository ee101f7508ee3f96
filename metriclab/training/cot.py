"""Complement Objective Training as a schedule of the classifier objective.

Chen, Chang, Chen, Lin, Yang & Juan, "Complement Objective Training" (ICLR 2019),
https://arxiv.org/abs/1903.01182. Every training step takes two optimiser steps on one batch:

1. the primary step: ``train.loss`` (cross-entropy in the paper) on the logits of a linear head;
2. the complement step, on the same images after that update: maximise the complement entropy
   ``H_c / K`` (the wrong-class distribution ``ŷ_j / (1 − ŷ_g)`` made flat), with the COT code's
   normalisation ``Σ_i H_c(i) / (N·K)`` (:func:`metriclab.losses.complement_entropy`), i.e.
   minimise its negative.

``train.objective=cot`` with ``train.loss=cross_entropy``. Complement cross-entropy (Kim et al.
2020) is a single loss instead (``train.objective=classifier train.loss=complement_cross_entropy``).
"""

from __future__ import annotations

import torch

from metriclab.losses import LossInput
from metriclab.losses.classification import complement_entropy
from metriclab.models import SiameseNet
from metriclab.training.objectives import OBJECTIVES, ClassifierObjective, step_rng


@OBJECTIVES.register("cot")
class CotObjective(ClassifierObjective):
    """The classifier objective with COT's complement step after every primary step."""

    # Class logits only: the complement entropy needs the head's class probabilities, so a loss
    # that brings its own class weights (camri) is refused by name.
    produces = (LossInput.CLASS_LOGITS,)
    phases = 2

    def batch(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Head logits ``(B, C)``, labels ``(B,)`` and the image count of ``step``'s batch: the
        same images (and augmentations) in both phases, drawn from ``(seed, step)`` alone."""
        rng = step_rng(self.seed, step)
        count = min(self.batch_size, len(self.data))
        positions = rng.choice(len(self.data), size=count, replace=False)
        embeddings = self.embed(model, positions, rng)
        labels = self.data.labels[torch.from_numpy(positions)].to(self.device)
        assert self.head is not None  # produces only CLASS_LOGITS: the classifier builds a head
        return self.head(embeddings), labels, len(positions)

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        logits, labels, used = self.batch(model, step)
        return self.scaled(self.criterion(logits, labels)), used

    def phase_loss(self, model: SiameseNet, step: int, phase: int) -> tuple[torch.Tensor, int]:
        logits, labels, used = self.batch(model, step)
        return self.scaled(-complement_entropy(logits, labels)), used
