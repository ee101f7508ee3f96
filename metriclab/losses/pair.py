"""Pair losses on row-aligned pairs, O(N) memory."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from metriclab.losses.base import Loss, Reduction, check_finite


class VerificationLoss(Loss):
    """Binary cross-entropy on Siamese verification logits (Koch et al. 2015, §3.2).

    ``forward(logits, same)``: ``(N,)`` logits ``b − d(x1, x2)`` from :class:`SiameseNet` and
    ``(N,)`` targets (1 = same class) → the cross-entropy
    ``−[y log σ(z) + (1 − y) log(1 − σ(z))]``, computed stably from the logits.
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__(reduction)

    def forward(self, logits: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 1 or logits.shape != same.shape:
            raise ValueError(
                f"logits and same must both have shape (N,), got {tuple(logits.shape)} and "
                f"{tuple(same.shape)}"
            )
        check_finite("logits", logits)
        per_pair = F.binary_cross_entropy_with_logits(
            logits, same.to(logits.dtype), reduction="none"
        )
        return self.reduce(per_pair)
