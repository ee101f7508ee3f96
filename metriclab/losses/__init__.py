"""Losses: pair (verification, contrastive), triplet, margin and classification losses."""

from metriclab.losses.base import Loss
from metriclab.losses.pair import ContrastiveLoss, VerificationLoss
from metriclab.losses.registry import LOSSES, build_loss, build_miner
from metriclab.losses.triplet import MINING, TripletLoss

__all__ = [
    "LOSSES",
    "MINING",
    "ContrastiveLoss",
    "Loss",
    "TripletLoss",
    "VerificationLoss",
    "build_loss",
    "build_miner",
]
