"""Optimisers and schedules by name: every entry builds and steps; builders only look up."""

import pytest
import torch

from metriclab.config import resolve_config
from metriclab.optim import OPTIMIZERS, SCHEDULES
from metriclab.training.builders import build_optimizer, build_scheduler

SETTINGS = {"lr": 0.1, "weight_decay": 0.01, "momentum": 0.5}


def quadratic_step(optimizer: torch.optim.Optimizer, weight: torch.nn.Parameter) -> float:
    loss = (weight - 3.0).pow(2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_builds_and_lowers_a_quadratic(name: str) -> None:
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = OPTIMIZERS.get(name)([weight], **SETTINGS)
    losses = [quadratic_step(optimizer, weight) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]
    assert optimizer.param_groups[0]["lr"] == 0.1
    assert optimizer.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_schedule_builds_and_steps(name: str) -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    schedule = SCHEDULES.get(name)(optimizer, steps=10, step_size=3, gamma=0.5)
    rates = []
    for _ in range(10):
        quadratic_step(optimizer, weight)
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert all(0.0 <= r <= 1.0 for r in rates)
    expected_last = {"none": 1.0, "cosine": 0.0, "step": 0.5**3}
    assert rates[-1] == pytest.approx(expected_last[name])


@pytest.mark.parametrize(
    ("optimizer", "cls", "extra"),
    [
        ("adamw", torch.optim.AdamW, {}),
        ("adam", torch.optim.Adam, {}),
        ("sgd", torch.optim.SGD, {"momentum": 0.7}),
    ],
)
def test_builders_give_the_optimizers_they_gave_before(optimizer, cls, extra) -> None:
    config = resolve_config(
        None, [f"train.optimizer={optimizer}", "train.lr=2e-3", "train.weight_decay=3e-4",
               "train.momentum=0.7"]
    )  # fmt: skip
    built = build_optimizer(config, [torch.nn.Parameter(torch.zeros(2))])
    assert type(built) is cls
    group = built.param_groups[0]
    assert group["lr"] == 0.002 and group["weight_decay"] == 0.0003
    assert all(group[k] == v for k, v in extra.items())
    reference = cls([torch.nn.Parameter(torch.zeros(2))], lr=0.002, weight_decay=0.0003, **extra)
    assert {k: v for k, v in group.items() if k != "params"} == {
        k: v for k, v in reference.param_groups[0].items() if k != "params"
    }


def test_builders_give_the_schedules_they_gave_before() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cases = {
        "none": (torch.optim.lr_scheduler.ConstantLR, {"factor": 1.0, "total_iters": 0}),
        "cosine": (torch.optim.lr_scheduler.CosineAnnealingLR, {"T_max": 40}),
        "step": (torch.optim.lr_scheduler.StepLR, {"step_size": 7, "gamma": 0.25}),
    }
    for name, (cls, attributes) in cases.items():
        config = resolve_config(
            None,
            [f"train.schedule={name}", "train.steps=40", "train.step_size=7", "train.gamma=0.25"],
        )
        schedule = build_scheduler(config, optimizer)
        assert type(schedule) is cls
        assert all(getattr(schedule, k) == v for k, v in attributes.items())
