"""Optimisers and learning-rate schedules by name: the registries ``train.optimizer`` and
``train.schedule`` read.

Each entry is a factory with one explicit signature, so a new optimiser or schedule is one
function plus its ``register`` call here, and config validation, error suggestions and the
builders all see it at once (an optimiser known to validation but not to the builder used to
fall back to AdamW silently). Every factory takes all the hyper-parameters the config offers and
uses the ones it needs: a factory cannot mistype a name that ``**kwargs`` would swallow.

>>> import torch
>>> optimizer = OPTIMIZERS.get("sgd")([torch.nn.Parameter(torch.zeros(2))], lr=0.1,
...                                   weight_decay=0.0, momentum=0.9)
>>> type(optimizer).__name__
'SGD'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from metriclab.registry import Registry


class OptimizerFactory(Protocol):
    """``(parameters, lr=, weight_decay=, momentum=) -> Optimizer``."""

    def __call__(
        self,
        parameters: Iterable[torch.nn.Parameter],
        *,
        lr: float,
        weight_decay: float,
        momentum: float,
    ) -> Optimizer: ...


class ScheduleFactory(Protocol):
    """``(optimizer, steps=, step_size=, gamma=) -> LRScheduler``, stepped once per training step."""

    def __call__(
        self, optimizer: Optimizer, *, steps: int, step_size: int, gamma: float
    ) -> LRScheduler: ...


OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer", key="train.optimizer")
SCHEDULES: Registry[ScheduleFactory] = Registry("schedule", key="train.schedule")


@OPTIMIZERS.register("adamw")
def adamw(
    parameters: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float, momentum: float
) -> Optimizer:
    """AdamW (Loshchilov & Hutter 2019): decoupled weight decay; ``momentum`` is unused."""
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adam")
def adam(
    parameters: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float, momentum: float
) -> Optimizer:
    """Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient; ``momentum`` unused."""
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd")
def sgd(
    parameters: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float, momentum: float
) -> Optimizer:
    """SGD with (heavy-ball) ``momentum`` and L2 weight decay, as Koch et al. 2015 train."""
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)


@SCHEDULES.register("none")
def constant(optimizer: Optimizer, *, steps: int, step_size: int, gamma: float) -> LRScheduler:
    """The learning rate stays put (a scheduler all the same, so checkpoints look alike)."""
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


@SCHEDULES.register("cosine")
def cosine(optimizer: Optimizer, *, steps: int, step_size: int, gamma: float) -> LRScheduler:
    """Cosine annealing to 0 over the ``steps`` training steps (Loshchilov & Hutter 2017, no restarts)."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


@SCHEDULES.register("step")
def step(optimizer: Optimizer, *, steps: int, step_size: int, gamma: float) -> LRScheduler:
    """The learning rate times ``gamma`` every ``step_size`` steps."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
