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
from metriclab.losses.pair import ContrastiveLoss, VerificationLoss
from metriclab.losses.registry import LOSSES, build_loss, build_miner
from metriclab.losses.triplet import MINING, TripletLoss

__all__ = [
    "LOSSES",
    "MINING",
    "OHEM",
    "BinaryHardMiningLoss",
    "CAMRILoss",
    "ComplementCrossEntropy",
    "ContrastiveLoss",
    "CosineLoss",
    "HardMiningLoss",
    "Loss",
    "TripletLoss",
    "VerificationLoss",
    "build_loss",
    "build_miner",
    "complement_entropy",
    "hard_mining_weight",
]
