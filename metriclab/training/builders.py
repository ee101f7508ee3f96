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
from metriclab.optim import BACKBONE, OPTIMIZERS, SCHEDULES, freeze_for_steps, parameter_groups

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
    """The per-sample augmentation ``data.augment`` names (``affine``: Koch et al. 2015), built
    with ``data.augment_params``."""
    return build_augmentation(config.data.augment, config.data.augment_params)


def build_optimizer(
    config: Config,
    parameters: list[torch.nn.Parameter],
    backbone: torch.nn.Module | None = None,
) -> torch.optim.Optimizer:
    """The optimiser ``train.optimizer`` names (:data:`metriclab.optim.OPTIMIZERS`).

    With ``backbone`` given and ``train.head_lr_scale`` or ``train.freeze_backbone_steps`` set,
    the backbone's parameters form their own group (:func:`metriclab.optim.parameter_groups`);
    otherwise one group, as before (so older checkpoints' optimiser state still loads).
    """
    train = config.train
    split = backbone is not None and (train.head_lr_scale != 1.0 or train.freeze_backbone_steps)
    groups: list[torch.nn.Parameter] | list[dict[str, object]] = parameters
    if split and backbone is not None:
        groups = parameter_groups(
            parameters, backbone.parameters(), lr=train.lr, head_lr_scale=train.head_lr_scale
        )
    optimizer = OPTIMIZERS.get(train.optimizer)(
        groups,  # type: ignore[arg-type]  # torch optimisers take parameters or groups
        lr=train.lr,
        weight_decay=train.weight_decay,
        momentum=train.momentum,
    )
    freeze_for_steps(optimizer, BACKBONE, train.freeze_backbone_steps if split else 0)
    return optimizer


def build_scheduler(
    config: Config, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule ``train.schedule`` names (:data:`metriclab.optim.SCHEDULES`)."""
    train = config.train
    return SCHEDULES.get(train.schedule)(
        optimizer, steps=train.steps, step_size=train.step_size, gamma=train.gamma
    )
