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


def fixed_length(factory: ScheduleFactory) -> ScheduleFactory:
    """Declare that ``factory``'s schedule is shaped by ``train.steps`` as a whole (e.g. it
    anneals to 0 at the last step), so a resumed run cannot be given another length."""
    factory.fixed_length = True  # type: ignore[attr-defined]
    return factory


def length_is_fixed(name: str) -> bool:
    """Whether the schedule registered as ``name`` declared :func:`fixed_length`: its learning
    rate at a step depends on ``train.steps``, so training a run longer would change its past."""
    return bool(getattr(SCHEDULES.get(name), "fixed_length", False))


@SCHEDULES.register("cosine")
@fixed_length
def cosine(optimizer: Optimizer, *, steps: int, step_size: int, gamma: float) -> LRScheduler:
    """Cosine annealing to 0 over the ``steps`` training steps (Loshchilov & Hutter 2017, no restarts)."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


@SCHEDULES.register("step")
def step(optimizer: Optimizer, *, steps: int, step_size: int, gamma: float) -> LRScheduler:
    """The learning rate times ``gamma`` every ``step_size`` steps."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


#: The ``role`` of the parameter group that holds the (usually pretrained) backbone.
BACKBONE = "backbone"
#: The ``role`` of the group of everything else: embedding head, proxies, class weights, distance.
HEAD = "head"


def parameter_groups(
    parameters: Iterable[torch.nn.Parameter],
    backbone: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    head_lr_scale: float,
) -> list[dict[str, object]]:
    """Two optimiser groups: the ``backbone`` parameters at ``lr``, every other one at
    ``lr · head_lr_scale``.

    A pretrained trunk wants a small step, while the new embedding layer and a loss's proxies or
    class weights (Proxy-NCA, ArcFace) start from random and want a larger one: Musgrave et al.
    2020 tune them apart, and PML users ask for it. Each group records its ``role`` (kept in the
    optimiser's state dict). An empty group is left out.
    """
    trunk_ids = {id(p) for p in backbone}
    listed = list(parameters)
    trunk = [p for p in listed if id(p) in trunk_ids]
    rest = [p for p in listed if id(p) not in trunk_ids]
    groups: list[dict[str, object]] = []
    if trunk:
        groups.append({"params": trunk, "lr": lr, "role": BACKBONE})
    if rest:
        groups.append({"params": rest, "lr": lr * head_lr_scale, "role": HEAD})
    return groups


def freeze_for_steps(optimizer: Optimizer, role: str, steps: int) -> None:
    """Leave the parameter groups of ``role`` unchanged for the next ``steps`` optimiser steps.

    Their gradients are dropped before each of those steps, so the optimiser neither moves them
    nor updates their moments or weight decay, exactly as if they were frozen. The count left
    lives in the group (``frozen_steps``), hence in the optimiser's state dict, so a resumed run
    unfreezes at the same step. Warming a new head up on a frozen pretrained trunk keeps its
    random gradients from wrecking the trunk's features in the first steps.
    """
    if steps <= 0:
        return
    for group in optimizer.param_groups:
        if group.get("role") == role:
            group["frozen_steps"] = steps

    def drop_gradients(opt: Optimizer, args: object, kwargs: object) -> None:
        for group in opt.param_groups:
            if group.get("frozen_steps", 0) > 0:
                for parameter in group["params"]:
                    parameter.grad = None

    def count_down(opt: Optimizer, args: object, kwargs: object) -> None:
        for group in opt.param_groups:
            if group.get("frozen_steps", 0) > 0:
                group["frozen_steps"] -= 1

    optimizer.register_step_pre_hook(drop_gradients)
    optimizer.register_step_post_hook(count_down)
