"""Classification losses on class scores: cosine loss, OHEM, complement cross-entropy and COT.

Every loss here takes ``(N, C)`` scores and ``(N,)`` integer labels in ``[0, C)``. The
hard-mining loss (HMLoss) lives in :mod:`metriclab.losses.hard_mining`.
"""

from __future__ import annotations

import math
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from metriclab.losses.base import (
    LOSSES,
    REDUCTIONS,
    Loss,
    LossInput,
    Reduction,
    TrainerValue,
    check_finite,
    describe,
)
from metriclab.losses.contract import declaration_of, declare, gives_per_sample, per_sample_losses

# torch's own cross-entropy, on the logits of a linear head over the training classes.
LOSSES.register("cross_entropy", nn.CrossEntropyLoss)
declare(nn.CrossEntropyLoss, frozenset({LossInput.CLASS_LOGITS}))


def check_labels(labels: torch.Tensor, n: int, num_classes: int) -> None:
    """Raise ``ValueError`` unless ``labels`` is an ``(n,)`` integer tensor with values in ``[0, C)``."""
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be an integer tensor of class indices, got {labels.dtype}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got values from {int(labels.min())} to "
            f"{int(labels.max())}"
        )


def check_scores(name: str, scores: torch.Tensor, labels: torch.Tensor) -> None:
    """Validate ``(N, C)`` finite floating-point ``scores`` against ``(N,)`` ``labels``."""
    if scores.ndim != 2 or not scores.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor of shape (N, C), got {tuple(scores.shape)} "
            f"{scores.dtype}"
        )
    check_finite(name, scores)
    check_labels(labels, scores.shape[0], scores.shape[1])


def _check_weight(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@LOSSES.register("cosine")
class CosineLoss(Loss):
    """Cosine loss of Barz & Denzler, "Deep Learning on Small Datasets without Pre-Training
    using Cosine Loss", WACV 2020, with one-hot class embeddings.

    ``forward(outputs, labels)``: ``outputs`` ``(N, C)`` are the network's raw outputs, one
    dimension per class (not probabilities; nothing is normalised beforehand), ``labels`` ``(N,)``.
    The per-sample loss is::

        1 − cos(f(x), e_y) + λ·CE(softmax(V·f(x)/‖f(x)‖ + b), y) = 1 − f_y/‖f‖ + λ·CE

    The cosine term lies in ``[0, 2]``; an all-zero output counts as cosine 0. The paper's combined
    loss (λ = 0.1 in their experiments) applies softmax cross-entropy through an *extra*
    fully-connected layer on top of the L2-normalised outputs; this loss owns that layer
    (``classifier``, ``C → C``, give its parameters to the optimiser). Their code also puts a ReLU
    and batch normalisation before it; we leave those out so that each sample's loss depends on
    that sample alone (which :class:`OHEM` relies on).

    Args:
        ce_weight: λ ≥ 0; 0 (the default) is the pure cosine loss.
        num_classes: C, required when ``ce_weight > 0`` (it sizes the classifier layer).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(N,)``).
        seed: seeds the classifier layer's initialisation.
    """

    consumes = frozenset({LossInput.CLASS_LOGITS})
    fills = MappingProxyType({"num_classes": TrainerValue.NUM_CLASSES})

    def __init__(
        self,
        ce_weight: float = 0.0,
        num_classes: int | None = None,
        reduction: Reduction = "mean",
        seed: int = 0,
    ) -> None:
        super().__init__(reduction)
        self.ce_weight = _check_weight("ce_weight", ce_weight)
        if self.ce_weight < 0:
            raise ValueError(f"ce_weight must be >= 0, got {ce_weight!r}; the paper uses 0.1")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if self.ce_weight > 0 and num_classes is None:
            raise ValueError(
                "num_classes is required when ce_weight > 0: the cross-entropy term needs its own "
                "classifier layer; pass CosineLoss(ce_weight=..., num_classes=C)"
            )
        self.num_classes = num_classes
        self.classifier: nn.Linear | None = None
        if self.ce_weight > 0 and num_classes is not None:
            # skip_init: no draw from the global RNG; the seeded init below is the only one
            self.classifier = nn.utils.skip_init(nn.Linear, num_classes, num_classes)
            generator = torch.Generator().manual_seed(seed)
            bound = 1 / math.sqrt(num_classes)  # nn.Linear's own default range, made seedable
            nn.init.uniform_(self.classifier.weight, -bound, bound, generator=generator)
            nn.init.uniform_(self.classifier.bias, -bound, bound, generator=generator)

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.per_sample(outputs, labels))

    def per_sample(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample losses ``(N,)``."""
        check_scores("outputs", outputs, labels)
        if self.num_classes is not None and outputs.shape[1] != self.num_classes:
            raise ValueError(
                f"outputs must have one column per class ({self.num_classes}), got "
                f"{outputs.shape[1]}"
            )
        unit = F.normalize(outputs, dim=1)
        per_sample = 1 - unit.gather(1, labels[:, None]).squeeze(1)
        if self.classifier is not None:
            class_logits = F.linear(
                unit, self.classifier.weight.to(unit.dtype), self.classifier.bias.to(unit.dtype)
            )
            per_sample = per_sample + self.ce_weight * F.cross_entropy(
                class_logits, labels, reduction="none"
            )
        return per_sample


def _keep_count(keep: float | int, n: int) -> int:
    if isinstance(keep, int):
        return min(keep, n)
    # round() first so that 0.7 * 10 = 7.000000000000001 keeps 7, not 8
    return min(n, max(1, math.ceil(round(keep * n, 9)))) if n else 0


@LOSSES.register("ohem")
class OHEM(Loss):
    """Online hard example mining (Shrivastava et al., CVPR 2016) over per-sample losses.

    ``forward(*inputs)`` asks the wrapped loss for its ``(N,)`` per-sample losses on the same
    inputs, whatever that loss's own reduction, ranks them and keeps the ``k`` largest.
    Cosine-OHEM is ``OHEM(CosineLoss(ce_weight=0.1, num_classes=C), keep=0.7)``: the cosine
    plus cross-entropy loss is both the ranking criterion and what is averaged. An OHEM consumes
    what its wrapped loss consumes (read it from the instance).

    Args:
        loss: a metriclab loss, torch's ``CrossEntropyLoss`` (with its weight and label
            smoothing) or any module built with ``reduction="none"`` that returns ``(N,)``.
        keep: a float in ``(0, 1]`` keeps ``ceil(keep·N)`` samples (at least 1); an int ≥ 1
            keeps ``min(keep, N)`` samples.
        reduction: ``"mean"`` averages the kept losses (``sum / k``), ``"sum"`` adds them,
            ``"none"`` returns ``(N,)`` with the dropped samples set to 0.

    Only the kept samples receive gradient; ties at the cut are broken arbitrarily, which does
    not change the value.
    """

    def __init__(self, loss: nn.Module, keep: float | int, reduction: Reduction = "mean") -> None:
        super().__init__(reduction)
        if not isinstance(loss, nn.Module) or not gives_per_sample(loss):
            raise ValueError(
                f"OHEM cannot rank the per-sample losses of {type(loss).__name__}: wrap a "
                "metriclab loss, torch's CrossEntropyLoss, or a module built with "
                "reduction='none', e.g. OHEM(CosineLoss(), keep=0.7)"
            )
        if isinstance(keep, bool) or not isinstance(keep, int | float):
            raise ValueError(f"keep must be a float in (0, 1] or an int >= 1, got {keep!r}")
        if isinstance(keep, int) and keep < 1:
            raise ValueError(f"keep as a count must be an int >= 1, got {keep!r}")
        if isinstance(keep, float) and not 0.0 < keep <= 1.0:
            raise ValueError(f"keep as a fraction must be a float in (0, 1], got {keep!r}")
        self.loss = loss
        self.keep = keep
        # An instance attribute: what OHEM consumes is what the loss it wraps consumes.
        self.consumes = declaration_of(loss).consumes  # type: ignore[misc]

    def extra_repr(self) -> str:
        return (
            f"keep={self.keep!r}, reduction={self.reduction!r}, consumes {describe(self.consumes)}"
        )

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        per_sample, kept = self._ranked(*inputs)
        if self.reduction == "none":
            return self._masked(per_sample, kept)
        total = per_sample[kept].sum()
        k = len(kept)
        return total if self.reduction == "sum" or k == 0 else total / k

    def per_sample(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The wrapped loss's per-sample losses ``(N,)`` with the dropped samples set to 0."""
        return self._masked(*self._ranked(*inputs))

    def _ranked(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The wrapped loss's per-sample losses ``(N,)`` and the indices ``(k,)`` kept."""
        per_sample = per_sample_losses(self.loss, *inputs)
        if per_sample.ndim != 1:
            raise ValueError(
                f"the wrapped loss must return per-sample losses of shape (N,), got "
                f"{tuple(per_sample.shape)}"
            )
        k = _keep_count(self.keep, per_sample.shape[0])
        return per_sample, torch.topk(per_sample.detach(), k).indices

    @staticmethod
    def _masked(per_sample: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        return per_sample * torch.zeros_like(per_sample).index_fill(0, kept, 1.0)


def _complement_entropy_per_sample(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``H_c = −Σ_{j≠g} P̂_j log P̂_j`` per sample, ``(N,)``, with ``P̂_j = ŷ_j/(1 − ŷ_g)``."""
    n, k = logits.shape
    # ŷ_j/(1 − ŷ_g) is the softmax over the K−1 wrong classes alone; dropping column g avoids
    # both 0/0 when ŷ_g → 1 and the 0·log 0 = NaN a masked column would produce.
    columns = torch.arange(k - 1, device=logits.device).expand(n, k - 1)
    others = columns + (columns >= labels[:, None]).long()
    log_p = torch.log_softmax(logits.gather(1, others), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def _check_two_classes(logits: torch.Tensor) -> None:
    if logits.shape[1] < 2:
        raise ValueError(
            f"logits need at least 2 classes for a complement entropy, got {logits.shape[1]}"
        )


def complement_entropy(
    logits: torch.Tensor, labels: torch.Tensor, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Complement entropy of Complement Objective Training (Chen et al., ICLR 2019).

    ``logits`` ``(N, K)`` and ``labels`` ``(N,)`` → ``H_c / K`` per sample, where
    ``H_c = −Σ_{j≠g} P̂_j log P̂_j`` (≥ 0) and ``P̂_j = ŷ_j/(1 − ŷ_g)``; ``"mean"`` gives
    ``(1/(N·K))·Σ_i H_c(i)``, the normalisation of the COT reference code (sum / N / K).

    COT alternates two steps per batch: a primary step minimising cross-entropy, then a
    complement step that *maximises* this value, i.e. minimises
    ``-complement_entropy(model(x), y)`` (the number the COT code returns as its loss).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    check_scores("logits", logits, labels)
    _check_two_classes(logits)
    per_sample = _complement_entropy_per_sample(logits, labels) / logits.shape[1]
    if reduction == "none":
        return per_sample
    if reduction == "sum" or per_sample.numel() == 0:
        return per_sample.sum()
    return per_sample.mean()


@LOSSES.register("complement_cross_entropy")
class ComplementCrossEntropy(Loss):
    """Complement cross-entropy (Kim, Lee & Jeon, "Imbalanced Image Classification with
    Complement Cross Entropy", Pattern Recognition Letters 2021, arXiv:2009.02189).

    ``forward(logits, labels)``: ``(N, K)`` logits (K ≥ 2), ``(N,)`` labels → per sample::

        CCE = −log ŷ_g + γ/(K−1) · H_c,    H_c = −Σ_{j≠g} P̂_j log P̂_j ≥ 0,  P̂_j = ŷ_j/(1 − ŷ_g)

    **Sign.** The paper writes the complement term with a balancing factor γ and recommends
    γ = −1, with the complement entropy taken as the (non-negative) entropy of the wrong-class
    distribution, as in COT. So the sign lives in γ: with γ < 0, minimising CCE *raises* H_c,
    flattening ("neutralising") the probabilities of the wrong classes so that the true class
    stands out. γ = 0 is plain cross-entropy; γ > 0 would reward peaked wrong-class predictions.
    Code that stores the complement term as ``Σ P̂ log P̂`` (= −H_c), like the COT reference,
    must use the opposite sign of γ. With γ < 0 the loss can be negative; it is bounded below by
    ``γ·log(K−1)/(K−1)``.

    Args:
        gamma: the balancing factor γ (the paper's −1 by default).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(N,)``).
    """

    consumes = frozenset({LossInput.CLASS_LOGITS})

    def __init__(self, gamma: float = -1.0, reduction: Reduction = "mean") -> None:
        super().__init__(reduction)
        self.gamma = _check_weight("gamma", gamma)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.per_sample(logits, labels))

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample losses ``(N,)``."""
        check_scores("logits", logits, labels)
        _check_two_classes(logits)
        per_sample = F.cross_entropy(logits, labels, reduction="none")
        if self.gamma != 0:
            h_c = _complement_entropy_per_sample(logits, labels)
            per_sample = per_sample + self.gamma / (logits.shape[1] - 1) * h_c
        return per_sample
