"""Triplet loss with in-batch mining: all, batch-hard (Hermans 2017), semi-hard (Schroff 2015).

A triplet ``(a, p, n)`` costs ``f(d(a, p) − d(a, n) + margin)`` with ``f = max(0, ·)`` (hinge) or
``f = softplus`` (``soft=True``; with ``margin=0`` this is the soft margin of Hermans et al. 2017).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from metriclab.distances import Distance
from metriclab.losses.base import LOSSES, Loss, LossInput, Reduction, TrainerValue
from metriclab.losses.inputs import (
    all_tensors,
    check_aligned,
    check_batch,
    check_margin,
    form_error,
    is_labeled_batch,
    resolve_distance,
)

MINING = ("all", "batch_hard", "semi_hard")

# Elements of one anchor chunk's (c, B, B) triplet tensor: c = max(1, budget // B²) anchors at a
# time keeps memory O(B²) (a few copies of 2²¹ floats, 8 MiB each, below B ≈ 1450).
_CHUNK_ELEMENTS = 2**21


@LOSSES.register("triplet")
class TripletLoss(Loss):
    """Triplet margin loss over explicit triplets or triplets mined from a labelled batch.

    The two forms are told apart by the arguments:

    * ``loss(anchor, positive, negative)``: explicit triplets, three ``(N, D)`` tensors →
      per-triplet losses ``(N,)``; ``"mean"`` averages over the ``N`` triplets. Only with
      ``mining="all"``: explicit triplets are already chosen.
    * ``loss(embeddings, labels)`` (pytorch-metric-learning's call), the same as
      ``loss.batch(embeddings, labels)``: ``(B, D)`` and integer ``(B,)``; the valid triplets are
      those with
      ``label[p] = label[a]``, ``p ≠ a`` and ``label[n] ≠ label[a]``, and ``mining`` selects:

      - ``"all"``: every valid triplet.
      - ``"batch_hard"`` (Hermans et al. 2017, eq. 5): per anchor, its farthest positive and its
        nearest negative; anchors without a positive or a negative are skipped.
      - ``"semi_hard"`` (Schroff et al. 2015, §3.2): every valid triplet whose negative is farther
        than the positive but within the margin, ``0 < d(a, n) − d(a, p) ≤ margin``; this is PML's
        ``TripletMarginMiner(type_of_triplets="semihard")``.

      ``reduction="none"`` returns ``(B,)``: the sum of each anchor's selected triplet losses (one
      triplet per anchor for batch-hard; 0 for an anchor with none). ``"sum"`` adds them all.
      ``"mean"`` divides that sum by the number of selected triplets, *counting those whose loss is
      zero* (PML's default AvgNonZeroReducer would count only non-zero ones; PML with
      ``reducer=MeanReducer()`` agrees with this). The mean of no triplets is 0.

    "batch_hard" mines on the ``B × B`` matrix without autograd and recomputes only the chosen
    distances, so its backward is O(B·D). "all" and "semi_hard" never build the ``B × B × B``
    tensor: anchors are processed in chunks of ``c`` with ``c·B² ≤ max(B², 2²¹)`` elements, each
    chunk checkpointed so that backward recomputes it instead of storing it. Memory is O(B²);
    time is O(B³).

    Args:
        margin: ``≥ 0``; must be ``> 0`` for ``"semi_hard"``, whose selection it defines.
        distance: a metriclab :class:`~metriclab.distances.Distance`; ``L2()`` if None (Hermans
            et al. use plain Euclidean; Schroff et al. squared Euclidean, ``SquaredL2()``).
        mining: ``"all"``, ``"batch_hard"`` or ``"semi_hard"``.
        soft: use ``softplus`` instead of the hinge.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    consumes = frozenset({LossInput.TRIPLETS, LossInput.LABELED_BATCH})
    # A learned model distance (WeightedL1) then trains through this loss.
    fills = MappingProxyType({"distance": TrainerValue.DISTANCE})

    def __init__(
        self,
        margin: float = 0.2,
        distance: Distance | None = None,
        mining: str = "all",
        soft: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(reduction)
        if mining not in MINING:
            raise ValueError(f"mining must be one of {', '.join(MINING)}, got {mining!r}")
        self.margin = check_margin("margin", margin, allow_zero=mining != "semi_hard")
        self.distance = resolve_distance(distance)
        self.mining = mining
        if not isinstance(soft, bool):
            raise ValueError(f"soft must be True or False, got {soft!r}")
        self.soft = soft

    def triplet_loss(self, violation: torch.Tensor) -> torch.Tensor:
        """``f(v)`` of the violations ``v = d(a, p) − d(a, n) + margin``, any shape."""
        return F.softplus(violation) if self.soft else violation.clamp_min(0.0)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if is_labeled_batch(inputs):
            return self.batch(*inputs)
        return self.reduce(self.per_sample(*inputs))

    def per_sample(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Per-triplet losses ``(N,)`` of ``(anchor, positive, negative)``, or per-anchor sums
        ``(B,)`` of ``(embeddings, labels)``."""
        if is_labeled_batch(inputs):
            return self._per_anchor(*inputs)[0]
        if len(inputs) == 3 and all_tensors(inputs):
            return self._explicit(*inputs)
        raise ValueError(form_error("TripletLoss", "anchor, positive, negative", inputs))

    def _explicit(
        self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> torch.Tensor:
        if self.mining != "all":
            raise ValueError(
                f"mining={self.mining!r} selects triplets from a labelled batch: call "
                ".batch(embeddings, labels) or loss(embeddings, labels), or use mining='all' for "
                "explicit triplets"
            )
        check_aligned(("anchor", "positive", "negative"), anchor, positive, negative)
        violation = self.distance(anchor, positive) - self.distance(anchor, negative) + self.margin
        return self.triplet_loss(violation)

    def batch(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of the triplets ``mining`` selects in a labelled batch ``(B, D)``, ``(B,)``."""
        per_anchor, counts = self._per_anchor(embeddings, labels)
        if self.reduction == "none":
            return per_anchor
        total = per_anchor.sum()
        return total if self.reduction == "sum" else total / counts.sum().clamp_min(1)

    def _per_anchor(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each anchor's loss sum ``(B,)`` and number of selected triplets ``(B,)``."""
        check_batch(embeddings, labels)
        same = labels[:, None] == labels[None, :]
        negative = ~same
        positive = same.fill_diagonal_(False)  # an anchor is not its own positive
        if len(labels) == 0:
            per_anchor, counts = embeddings.new_zeros(0), labels.new_zeros(0)
        elif self.mining == "batch_hard":
            per_anchor, counts = self._batch_hard(embeddings, positive, negative)
        else:
            distances = self.distance.matrix(embeddings, embeddings)
            per_anchor, counts = self._chunked(distances, positive, negative)
        return per_anchor, counts

    def _batch_hard(
        self, embeddings: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-anchor losses of the hardest positive and negative ``(B,)``, and 0/1 counts ``(B,)``.

        The choice needs the ``B × B`` matrix but no gradient: it is made without autograd, then
        only the ``2B`` chosen distances are recomputed row-aligned, so backward costs O(B·D).
        """
        with torch.no_grad():
            distances = self.distance.matrix(embeddings, embeddings)
            hardest_positive = distances.masked_fill(~positive, float("-inf")).argmax(1)
            hardest_negative = distances.masked_fill(~negative, float("inf")).argmin(1)
            valid = positive.any(1) & negative.any(1)
        # Anchors without a triplet get an arbitrary partner and are zeroed by the where.
        d_ap = self.distance(embeddings, embeddings[hardest_positive])
        d_an = self.distance(embeddings, embeddings[hardest_negative])
        losses = self.triplet_loss(d_ap - d_an + self.margin)
        return torch.where(valid, losses, 0.0), valid.long()

    def _chunked(
        self, distances: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-anchor loss sums ``(B,)`` and triplet counts ``(B,)``, chunk by chunk of anchors."""
        size = distances.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // max(1, size * size))
        sums, counts = [], []
        for start in range(0, size, chunk):
            rows = slice(start, start + chunk)
            loss, count = checkpoint(
                self._anchor_chunk,
                distances[rows],
                positive[rows],
                negative[rows],
                use_reentrant=False,
            )
            sums.append(loss)
            counts.append(count)
        return torch.cat(sums), torch.cat(counts)

    def _anchor_chunk(
        self, rows: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For ``c`` anchors' distance rows ``(c, B)``: loss sums and triplet counts, each ``(c,)``.

        Entry ``[i, p, n]`` of the ``(c, B, B)`` tensors is the triplet (anchor i, p, n).
        """
        ap, an = rows[:, :, None], rows[:, None, :]
        selected = positive[:, :, None] & negative[:, None, :]
        if self.mining == "semi_hard":
            gap = an - ap  # computed as PML computes it, so boundary cases agree
            selected &= (gap > 0) & (gap <= self.margin)
        losses = torch.where(selected, self.triplet_loss(ap - an + self.margin), 0.0)
        return losses.sum((1, 2)), selected.sum((1, 2))
