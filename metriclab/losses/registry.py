"""Config names → loss classes. (Placeholder until the full registry lands.)"""

from __future__ import annotations

from typing import Any

from torch import nn

from metriclab.losses.pair import VerificationLoss

LOSSES: dict[str, type[nn.Module]] = {"verification": VerificationLoss}


def build_loss(name: str, params: dict[str, Any]) -> nn.Module:
    """The loss a config names, built with ``params``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name](**params)
