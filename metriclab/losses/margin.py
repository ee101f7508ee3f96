"""Class-sensitive additive angular margin: CAMRI (Nishiyama et al., IJCNN 2022).

Nishiyama, Fukuchi, Akimoto, Sakuma, "CAMRI Loss: Improving Recall of a Specific Class without
Sacrificing Accuracy", IJCNN 2022 (arXiv:2209.10920). Features ``x`` and class weights ``W_j`` are
L2-normalised so that logit ``j`` is ``s·cos θ_j``. ArcFace (Deng et al., CVPR 2019) replaces the
target logit of every sample by ``s·cos(θ_y + m)``; CAMRI does so only when the target ``y`` is an
important class, with that class's own margin ``m_y``, and only while training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from metriclab.losses.base import LOSSES, Loss, LossInput, Reduction, TrainerValue, check_finite
from metriclab.losses.classification import check_labels


def _check_margins(margins: Mapping[int, float], num_classes: int) -> dict[int, float]:
    if not isinstance(margins, Mapping):
        raise ValueError(
            f"margins must be a mapping {{class index: margin}}, got {type(margins).__name__}; "
            "e.g. margins={3: math.pi / 16}"
        )
    checked: dict[int, float] = {}
    for cls, margin in margins.items():
        if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < num_classes:
            raise ValueError(
                f"margins keys must be class indices in [0, {num_classes}), got {cls!r}; "
                "use the integer label of each important class"
            )
        if not isinstance(margin, int | float) or not 0.0 <= margin < math.pi / 2:
            raise ValueError(
                f"margins[{cls}] must be a float in radians with 0 <= m < pi/2, got {margin!r}; "
                "the paper uses pi/64 .. pi/4"
            )
        checked[cls] = float(margin)
    return checked


@LOSSES.register("camri")
class CAMRILoss(Loss):
    """CAMRI loss: softmax cross-entropy on scaled cosines with a margin on important classes.

    Logits (``x̂ = x/‖x‖``, ``Ŵ_j = W_j/‖W_j‖``, ``cos θ_j = x̂·Ŵ_j``)::

        z_j = s·cos θ_j                 for j ≠ y, for unimportant y, and always in eval mode
        z_y = s·ψ_y(θ_y)                for an important target class y in training mode
        ψ_y(θ) = cos(θ + m_y)           if θ ≤ π − m_y
               = cos θ − m_y·sin m_y    otherwise

    **Beyond π − m.** ``cos(θ + m)`` rises again once ``θ + m > π``, which would reward moving a
    feature *away* from its class. Like ArcFace's reference code and PML's ``ArcFaceLoss``, the
    target logit switches to ``cos θ − m·sin m`` (the first-order expansion ``cos θ − m·sin θ``
    of ``cos(θ + m)`` with ``sin θ`` frozen at its switch-point value ``sin m``). That keeps ψ
    decreasing in θ everywhere; at the switch it steps down by ``cos m + m·sin m − 1 ≈ m²/2``. We chose this over ArcFace's "easy margin"
    (no margin when ``cos θ < 0``) because easy margin drops the penalty exactly for the worst
    samples, and over the raw formula of the CAMRI code, which is non-monotonic there.

    **Margin range.** ``0 ≤ m < π/2``: at ``m ≥ π/2`` a feature lying exactly on its class
    weight (θ = 0) would get a non-positive target logit ``cos m ≤ 0``, and the monotone branch
    ``[0, π − m]`` would no longer cover all acute angles. The paper uses ``m`` from π/64 to π/4.

    Args:
        embedding_dim: feature dimension D.
        num_classes: number of classes C (≥ 2).
        margins: ``{class index: margin in radians}`` for the important classes; classes not
            listed get no margin. Several classes may each have their own margin.
        scale: the logit scale ``s > 0`` (the paper uses 16).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the batch.
        seed: seeds the Glorot-uniform initialisation of the class weights.

    Shapes: ``embeddings`` ``(N, D)``, ``labels`` ``(N,)`` integers in ``[0, C)``; ``logits``
    returns ``(N, C)``; ``forward`` returns a scalar, or ``(N,)`` with ``reduction="none"``.
    The class weights are the parameter ``weight`` of shape ``(C, D)``: give them to the optimiser.
    """

    consumes = frozenset({LossInput.CLASS_WEIGHTS})
    fills = MappingProxyType(
        {"embedding_dim": TrainerValue.EMBEDDING_DIM, "num_classes": TrainerValue.NUM_CLASSES}
    )

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        margins: Mapping[int, float],
        scale: float = 16.0,
        reduction: Reduction = "mean",
        seed: int = 0,
    ) -> None:
        super().__init__(reduction)
        if (
            isinstance(embedding_dim, bool)
            or not isinstance(embedding_dim, int)
            or embedding_dim < 1
        ):
            raise ValueError(f"embedding_dim must be a positive integer, got {embedding_dim!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a finite number > 0, got {scale!r}; the paper uses 16")
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes
        self.scale = float(scale)
        self.margins = _check_margins(margins, num_classes)
        # float64 so that .double() later does not inherit float32 rounding of the margins
        margin = torch.zeros(num_classes, dtype=torch.float64)
        important = torch.zeros(num_classes, dtype=torch.bool)
        for cls, m in self.margins.items():
            margin[cls], important[cls] = m, True
        self.register_buffer("margin", margin)
        self.register_buffer("important", important)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight, generator=torch.Generator().manual_seed(seed))

    def extra_repr(self) -> str:
        return f"margins={self.margins}, scale={self.scale}, reduction={self.reduction!r}"

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(N, D)`` features → ``(N, C)`` cosines between features and class weights."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have shape (N, {self.embedding_dim}), got {tuple(embeddings.shape)}"
            )
        check_finite("embeddings", embeddings)
        weight = self.weight.to(embeddings.dtype)
        return F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).T

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled logits ``(N, C)``; ``labels`` are required in training mode, ignored in eval."""
        cos = self.cosines(embeddings)
        if not self.training:
            return self.scale * cos
        if labels is None:
            raise ValueError(
                "labels are required by CAMRILoss.logits in training mode; pass labels or call .eval()"
            )
        check_labels(labels, cos.shape[0], self.num_classes)
        target = cos.gather(1, labels[:, None]).squeeze(1)
        m = self.margin.to(cos.dtype)[labels]
        # sqrt'(0) is infinite: clamping keeps the gradient finite (zero) at θ = 0 or π exactly.
        sin_target = torch.sqrt((1 - target * target).clamp_min(torch.finfo(cos.dtype).tiny))
        with_margin = target * torch.cos(m) - sin_target * torch.sin(m)
        # θ ≤ π − m  ⇔  cos θ ≥ cos(π − m) = −cos m
        extended = torch.where(target >= -torch.cos(m), with_margin, target - m * torch.sin(m))
        new_target = torch.where(self.important[labels], extended, target)
        return self.scale * cos.scatter(1, labels[:, None], new_target[:, None])

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.per_sample(embeddings, labels))

    def per_sample(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample cross-entropies ``(N,)`` on the margin logits."""
        logits = self.logits(embeddings, labels)
        check_labels(labels, logits.shape[0], self.num_classes)
        return F.cross_entropy(logits, labels, reduction="none")
