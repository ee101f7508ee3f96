"""Config → objects: data splits, the model, the optimiser and the schedule.

The data functions live in :mod:`metriclab.assemble` and ``build_model`` in
:mod:`metriclab.assemble` (below run folders and evaluation); they are re-exported here
so that older imports keep working.
"""

from __future__ import annotations

import torch

from metriclab.assemble import (
    build_data,
    build_model,
    load_data,
    split_validation,
    training_classes,
)
from metriclab.config import Config
from metriclab.data.augment import Augmentation, build_augmentation
from metriclab.optim import OPTIMIZERS, SCHEDULES

__all__ = [
    "build_augment",
    "build_data",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "load_data",
    "split_validation",
    "training_classes",
]


def build_augment(config: Config) -> Augmentation | None:
    """The per-sample augmentation ``data.augment`` names (``affine``: Koch et al. 2015)."""
    return build_augmentation(config.data.augment)


def build_optimizer(config: Config, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimiser ``train.optimizer`` names (:data:`metriclab.optim.OPTIMIZERS`)."""
    train = config.train
    return OPTIMIZERS.get(train.optimizer)(
        parameters, lr=train.lr, weight_decay=train.weight_decay, momentum=train.momentum
    )


def build_scheduler(
    config: Config, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule ``train.schedule`` names (:data:`metriclab.optim.SCHEDULES`)."""
    train = config.train
    return SCHEDULES.get(train.schedule)(
        optimizer, steps=train.steps, step_size=train.step_size, gamma=train.gamma
    )
