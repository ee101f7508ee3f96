"""Pair losses: Koch's verification loss and Hadsell's contrastive loss, O(N) on aligned pairs."""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F

from metriclab.distances import Distance
from metriclab.losses.base import LOSSES, Loss, LossInput, Reduction, TrainerValue, check_finite
from metriclab.losses.inputs import (
    all_tensors,
    check_aligned,
    check_batch,
    check_margin,
    check_same,
    form_error,
    is_labeled_batch,
    resolve_distance,
)


@LOSSES.register("verification")
class VerificationLoss(Loss):
    """Binary cross-entropy on Siamese verification logits (Koch et al. 2015, §3.2).

    ``forward(logits, same)``: ``(N,)`` logits ``b − d(x1, x2)`` from :class:`SiameseNet` and
    ``(N,)`` targets (1 = same class) → the cross-entropy
    ``−[y log σ(z) + (1 − y) log(1 − σ(z))]``, computed stably from the logits.
    """

    consumes = frozenset({LossInput.PAIR_LOGITS})

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__(reduction)

    def forward(self, logits: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.per_sample(logits, same))

    def per_sample(self, logits: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """Per-pair losses ``(N,)``."""
        if logits.ndim != 1 or logits.shape != same.shape:
            raise ValueError(
                f"logits and same must both have shape (N,), got {tuple(logits.shape)} and "
                f"{tuple(same.shape)}"
            )
        check_finite("logits", logits)
        return F.binary_cross_entropy_with_logits(logits, same.to(logits.dtype), reduction="none")


@LOSSES.register("contrastive")
class ContrastiveLoss(Loss):
    """Contrastive loss of Hadsell, Chopra & LeCun 2006 (eq. 4), on distances ``D``.

    ``L = ½·D²`` for a similar pair and ``½·max(0, m − D)²`` for a dissimilar one.

    Two forms, told apart by the arguments:

    * ``loss(e1, e2, same)``: ``N`` row-aligned pairs, ``e1``, ``e2`` ``(N, D)`` and ``same``
      ``(N,)`` (bool or 0/1) → per-pair losses ``(N,)`` before reduction. O(N·D) memory: only the
      ``N`` aligned distances are computed, never an ``N × N`` matrix.
    * ``loss(embeddings, labels)`` (pytorch-metric-learning's call), the same as
      ``loss.batch(embeddings, labels)``: every pair ``i < j`` of a labelled batch, ``(B, D)`` and
      integer ``(B,)`` → per-pair losses ``(B(B−1)/2,)`` in ``torch.triu_indices(B, B, 1)`` order.
      O(B²) memory. It mines nothing and takes no miner tuples.

    ``reduction="mean"`` averages over all pairs, similar and dissimilar, including pairs whose loss
    is zero (Hadsell et al. sum over pairs; PML's default instead averages the non-zero positive and
    negative losses separately and adds the two means). The mean of no pairs is 0.

    Args:
        margin: ``m > 0``, the distance beyond which dissimilar pairs cost nothing.
        distance: a metriclab :class:`~metriclab.distances.Distance`; ``L2()`` (the paper's) if None.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    consumes = frozenset({LossInput.PAIRS, LossInput.LABELED_BATCH})
    # A learned model distance (WeightedL1) then trains through this loss.
    fills = MappingProxyType({"distance": TrainerValue.DISTANCE})

    def __init__(
        self, margin: float = 1.0, distance: Distance | None = None, reduction: Reduction = "mean"
    ) -> None:
        super().__init__(reduction)
        self.margin = check_margin("margin", margin, allow_zero=False)
        self.distance = resolve_distance(distance)

    def per_pair(self, distances: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """The loss of each pair from its distance ``(P,)`` and its ``same`` flag ``(P,)`` bool."""
        dissimilar = (self.margin - distances).clamp_min(0.0)
        return 0.5 * torch.where(same, distances, dissimilar).pow(2)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.per_sample(*inputs))

    def per_sample(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Per-pair losses of ``(e1, e2, same)`` ``(N,)`` or of ``(embeddings, labels)``
        ``(B(B−1)/2,)``."""
        if len(inputs) == 3 and all_tensors(inputs):
            return self._aligned(*inputs)
        if is_labeled_batch(inputs):
            return self._batch(*inputs)
        raise ValueError(form_error("ContrastiveLoss", "e1, e2, same", inputs))

    def batch(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss over every pair of a labelled batch ``(B, D)``, ``(B,)``, reduced."""
        return self.reduce(self._batch(embeddings, labels))

    def _aligned(self, e1: torch.Tensor, e2: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        check_aligned(("e1", "e2"), e1, e2)
        same = check_same(same, e1.shape[0])
        return self.per_pair(self.distance(e1, e2), same)

    def _batch(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_batch(embeddings, labels)
        rows, cols = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
        distances = self.distance.matrix(embeddings, embeddings)[rows, cols]
        return self.per_pair(distances, labels[rows] == labels[cols])
