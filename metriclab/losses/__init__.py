"""Losses: pair (verification, contrastive), triplet, margin and classification losses."""

from metriclab.losses.base import Loss
from metriclab.losses.classification import (
    OHEM,
    ComplementCrossEntropy,
    CosineLoss,
    complement_entropy,
)
from metriclab.losses.hard_mining import BinaryHardMiningLoss, HardMiningLoss, hard_mining_weight
from metriclab.losses.margin import CAMRILoss
from metriclab.losses.pair import VerificationLoss

__all__ = ["Loss", "VerificationLoss"]
__all__ += [
    "OHEM",
    "BinaryHardMiningLoss",
    "CAMRILoss",
    "ComplementCrossEntropy",
    "CosineLoss",
    "HardMiningLoss",
    "complement_entropy",
    "hard_mining_weight",
]
