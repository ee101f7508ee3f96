"""What every metriclab loss shares: a validated ``reduction`` and finite-input checks."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS = ("mean", "sum", "none")


class Loss(nn.Module):
    """Base of the loss family: subclasses compute per-sample losses and call ``reduce``."""

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.reduction = reduction

    def reduce(self, per_sample: torch.Tensor) -> torch.Tensor:
        """Apply the reduction to ``(N,)`` per-sample losses (mean of an empty batch is 0)."""
        if self.reduction == "none":
            return per_sample
        if self.reduction == "sum" or per_sample.numel() == 0:
            return per_sample.sum()
        return per_sample.mean()


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` if ``tensor`` holds NaN or infinity."""
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
