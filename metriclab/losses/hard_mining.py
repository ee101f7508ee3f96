"""Hard mining loss (HMLoss) of Foahom Gouabou et al., "Addressing Class Imbalance with Hard
Mining Loss" (official TensorFlow code: ``CategoricalHardMiningLoss``, ``BinaryHardMiningLoss``).

HMLoss is cross-entropy modulated by a weight of the true-class probability ``p``::

    w(p) = sin(πp)/(πp) − e^{−δp}·sin(πδp)/(πδp) = sinc(p) − e^{−δp}·sinc(δp)
    loss = α · w(p)^γ · (−log p)

``sinc(p)`` falls from 1 at ``p = 0`` to 0 at ``p = 1``, so easy samples (``p → 1``) are
down-weighted as in focal loss; the second term cancels the first as ``p → 0`` (``w(0) = 0``),
so samples the model is confidently wrong about, likely outliers or label noise, are
down-weighted too. δ sets how fast that outlier suppression fades (``w ≈ δp`` for small ``p``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from metriclab.losses.base import LOSSES, Loss, LossInput, Reduction, check_finite
from metriclab.losses.classification import check_scores


def hard_mining_weight(p: torch.Tensor, delta: float) -> torch.Tensor:
    """``w(p) = sinc(p) − e^{−δp}·sinc(δp)`` elementwise, with ``sinc(x) = sin(πx)/(πx)``.

    ``torch.sinc`` takes the limit ``sinc(0) = 1`` (value and a zero gradient), so ``p = 0``
    gives ``w = 0`` without NaN. For ``p ≥ 0`` the exponent ``−δp`` is never positive: a huge δ
    underflows ``e^{−δp}`` to 0 instead of overflowing.
    """
    return torch.sinc(p) - torch.exp(-delta * p) * torch.sinc(delta * p)


def _modulate(weight: torch.Tensor, gamma: float) -> torch.Tensor:
    """``max(w, 0)^γ`` with finite gradients.

    For δ ≥ 1, ``w`` dips below 0 only next to ``p = 1``, by at most ``e^{−δ}/(πδ)`` (about 0.01
    at δ = 2.5, below float precision for the usual δ ≥ 1e5); a negative base has no real
    fractional power, so it counts as 0. ``w^γ`` at ``w = 0`` has an infinite slope for γ < 1,
    hence the safe base in the ``where``.
    """
    if gamma == 0:
        return torch.ones_like(weight)
    positive = weight > 0
    base = torch.where(positive, weight, torch.ones_like(weight))
    return torch.where(positive, base**gamma, torch.zeros_like(weight))


def _check_params(alpha: float, delta: float, gamma: float, allow_zero_alpha: bool) -> None:
    for name, value in (("alpha", alpha), ("delta", delta), ("gamma", gamma)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    low_ok = alpha >= 0 if allow_zero_alpha else alpha > 0
    if not (low_ok and alpha <= 1):
        interval = "[0, 1]" if allow_zero_alpha else "(0, 1]"
        raise ValueError(f"alpha must be in {interval}, got {alpha!r}")
    if delta < 1:
        raise ValueError(
            f"delta must be >= 1, got {delta!r}; below 1 the outlier term outweighs sinc(p) over "
            "much of [0, 1] and the weight turns negative (the paper uses 1e5 to 1e9)"
        )
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}")


def _log_clamped(p: torch.Tensor) -> torch.Tensor:
    # −log 0 = ∞ and ∞·w(0) = ∞·0 = NaN; at the smallest normal number w ≈ δ·tiny ≈ 0 instead.
    return torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))


def _check_probabilities(probs: torch.Tensor) -> None:
    if probs.numel() and (probs.min() < 0 or probs.max() > 1):
        raise ValueError(
            "probs must lie in [0, 1] with from_probs=True; pass logits with from_probs=False"
        )


@LOSSES.register("hard_mining")
class HardMiningLoss(Loss):
    """Multi-class HMLoss: ``α · w(p_y)^γ · (−log p_y)`` per sample.

    ``forward(scores, labels)``: ``scores`` ``(N, C)`` are logits (softmax is applied, stably
    via ``log_softmax``) or, with ``from_probs=True``, probabilities whose rows sum to 1;
    ``labels`` ``(N,)`` integers in ``[0, C)``. Only the true-class probability enters, as in
    the official code (whose one-hot ``y_true`` zeroes every other term). With probabilities, ``p``
    is clamped at the smallest normal float before the log; the official code clips at 1e-7,
    which differs only for ``p < 1e-7``.

    Args:
        alpha: balancing factor in ``(0, 1]`` (a constant factor here; it matters in the binary form).
        delta: outlier threshold δ ≥ 1 (official default 1e7).
        gamma: modulating exponent γ ≥ 0; γ = 0 is ``α``-scaled cross-entropy.
        from_probs: whether ``scores`` are probabilities rather than logits.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(N,)``).
    """

    consumes = frozenset({LossInput.CLASS_LOGITS})

    def __init__(
        self,
        alpha: float = 0.75,
        delta: float = 1e7,
        gamma: float = 1.0,
        from_probs: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(reduction)
        _check_params(alpha, delta, gamma, allow_zero_alpha=False)
        self.alpha, self.delta, self.gamma = float(alpha), float(delta), float(gamma)
        self.from_probs = from_probs

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, delta={self.delta:g}, gamma={self.gamma}, "
            f"from_probs={self.from_probs}, reduction={self.reduction!r}"
        )

    def forward(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.per_sample(scores, labels))

    def per_sample(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample losses ``(N,)``."""
        check_scores("probs" if self.from_probs else "logits", scores, labels)
        if self.from_probs:
            _check_probabilities(scores)
            sums = scores.sum(dim=1)
            if scores.numel() and not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
                raise ValueError(
                    "probs rows must sum to 1 with from_probs=True; pass logits with "
                    "from_probs=False"
                )
            p = scores.gather(1, labels[:, None]).squeeze(1)
            log_p = _log_clamped(p)
        else:
            log_p = torch.log_softmax(scores, dim=1).gather(1, labels[:, None]).squeeze(1)
            p = log_p.exp()
        weight = _modulate(hard_mining_weight(p, self.delta), self.gamma)
        return self.alpha * weight * -log_p


@LOSSES.register("binary_hard_mining")
class BinaryHardMiningLoss(Loss):
    """Binary HMLoss: ``α_t · w(p_t)^γ · (−log p_t)`` per sample, with ``p_t = p`` and
    ``α_t = α`` for positives, ``p_t = 1 − p`` and ``α_t = 1 − α`` for negatives.

    ``forward(scores, targets)``: ``scores`` ``(N,)`` are logits of the positive class (or,
    with ``from_probs=True``, probabilities in ``[0, 1]``); ``targets`` ``(N,)`` are 0/1 (bool,
    integer or float). Logits are turned into ``log p_t = log σ(±z)`` stably.

    Args:
        alpha: weight of the positive class in ``[0, 1]``; negatives get ``1 − alpha``.
        delta: outlier threshold δ ≥ 1 (official default 1e5).
        gamma: modulating exponent γ ≥ 0.
        from_probs: whether ``scores`` are probabilities rather than logits.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(N,)``).
    """

    # Binary scores with 0/1 targets: a Siamese head's pair logits and same-class flags are
    # exactly that, so it trains under the siamese objective as a hard-mining verification loss.
    consumes = frozenset({LossInput.PAIR_LOGITS})

    def __init__(
        self,
        alpha: float = 0.75,
        delta: float = 1e5,
        gamma: float = 1.0,
        from_probs: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(reduction)
        _check_params(alpha, delta, gamma, allow_zero_alpha=True)
        self.alpha, self.delta, self.gamma = float(alpha), float(delta), float(gamma)
        self.from_probs = from_probs

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.per_sample(scores, targets))

    def per_sample(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-sample losses ``(N,)``."""
        name = "probs" if self.from_probs else "logits"
        if scores.ndim != 1 or scores.shape != targets.shape or not scores.is_floating_point():
            raise ValueError(
                f"{name} and targets must both have shape (N,) with floating-point {name}, got "
                f"{tuple(scores.shape)} {scores.dtype} and {tuple(targets.shape)}"
            )
        check_finite(name, scores)
        if not ((targets == 0) | (targets == 1)).all():
            raise ValueError("targets must be 0 or 1 (1 = positive class)")
        positive = targets.bool()
        if self.from_probs:
            _check_probabilities(scores)
            log_pt = _log_clamped(torch.where(positive, scores, 1 - scores))
        else:
            log_pt = F.logsigmoid(torch.where(positive, scores, -scores))
        alpha_t = torch.where(
            positive, scores.new_tensor(self.alpha), scores.new_tensor(1 - self.alpha)
        )
        weight = _modulate(hard_mining_weight(log_pt.exp(), self.delta), self.gamma)
        return alpha_t * weight * -log_pt
