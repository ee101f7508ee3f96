"""Config → objects: data splits, the model, the optimiser and the schedule.

The data functions live in :mod:`metriclab.data.from_config` and ``build_model`` in
:mod:`metriclab.models.from_config` (below run folders and evaluation); they are re-exported here
so that older imports keep working.
"""

from __future__ import annotations

import torch

from metriclab.config import Config
from metriclab.data.augment import KochAffine
from metriclab.data.from_config import build_data, load_data, split_validation, training_classes
from metriclab.models.from_config import build_model

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


def build_augment(config: Config) -> KochAffine | None:
    """The per-sample augmentation ``data.augment`` names (``affine``: Koch et al. 2015)."""
    return KochAffine() if config.data.augment == "affine" else None


def build_optimizer(config: Config, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    train = config.train
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
        )
    if train.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.AdamW(parameters, lr=train.lr, weight_decay=train.weight_decay)


def build_scheduler(
    config: Config, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    train = config.train
    if train.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.steps)
    if train.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=train.step_size, gamma=train.gamma
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
