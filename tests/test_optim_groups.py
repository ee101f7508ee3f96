"""Parameter groups (a separate head learning rate) and backbone freezing for the first steps."""

from __future__ import annotations

import torch
from torch import nn

from metriclab.config import config_from_dict
from metriclab.training.builders import build_optimizer


def _toy() -> tuple[nn.Module, nn.Module, list[nn.Parameter]]:
    torch.manual_seed(0)
    trunk, head = nn.Linear(4, 3), nn.Linear(3, 2)
    return trunk, head, [*trunk.parameters(), *head.parameters()]


def _config(**train: object):
    return config_from_dict(
        {"train": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, **train}}
    )


def _step(trunk: nn.Module, head: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad()
    head(trunk(torch.ones(5, 4))).sum().backward()
    optimizer.step()


def test_head_learning_rate_is_scaled_and_backbone_keeps_lr() -> None:
    trunk, head, parameters = _toy()
    optimizer = build_optimizer(_config(head_lr_scale=10.0), parameters, trunk)
    lrs = {group["role"]: group["lr"] for group in optimizer.param_groups}
    assert lrs == {"backbone": 0.1, "head": 1.0}
    # Plain SGD without decay: each update is -lr · grad, checked against the gradient by hand.
    before = [p.detach().clone() for p in parameters]
    _step(trunk, head, optimizer)
    for p, old, lr in zip(parameters, before, [0.1, 0.1, 1.0, 1.0], strict=True):
        torch.testing.assert_close(p.detach(), old - lr * p.grad)


def test_default_settings_keep_one_group() -> None:
    trunk, _, parameters = _toy()
    assert len(build_optimizer(_config(), parameters, trunk).param_groups) == 1


def test_backbone_is_frozen_for_the_first_steps_and_resumes_the_count() -> None:
    trunk, head, parameters = _toy()
    optimizer = build_optimizer(_config(freeze_backbone_steps=2), parameters, trunk)
    start = trunk.weight.detach().clone()
    head_start = head.weight.detach().clone()
    _step(trunk, head, optimizer)
    assert torch.equal(trunk.weight, start)
    assert not torch.equal(head.weight, head_start)
    saved = optimizer.state_dict()
    # A resumed optimiser reads the count left from its state dict: one frozen step, then free.
    resumed = build_optimizer(_config(freeze_backbone_steps=2), parameters, trunk)
    resumed.load_state_dict(saved)
    _step(trunk, head, resumed)
    assert torch.equal(trunk.weight, start)
    _step(trunk, head, resumed)
    assert not torch.equal(trunk.weight, start)
