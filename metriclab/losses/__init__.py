"""Losses: pair (verification, contrastive), triplet, margin and classification losses.

Each loss declares what it consumes (:class:`LossInput`) and registers itself in :data:`LOSSES`
next to its class; training objectives feed it from that declaration.
"""

from metriclab.losses.base import LOSSES, Loss, LossInput, TrainerValue
from metriclab.losses.classification import (
    OHEM,
    ComplementCrossEntropy,
    CosineLoss,
    complement_entropy,
)
from metriclab.losses.contract import Declaration, declaration_of, per_sample_losses
from metriclab.losses.hard_mining import BinaryHardMiningLoss, HardMiningLoss, hard_mining_weight
from metriclab.losses.margin import CAMRILoss
from metriclab.losses.pair import ContrastiveLoss, VerificationLoss
from metriclab.losses.registry import build_loss, build_miner, loss_declaration
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
    "Declaration",
    "HardMiningLoss",
    "Loss",
    "LossInput",
    "TrainerValue",
    "TripletLoss",
    "VerificationLoss",
    "build_loss",
    "build_miner",
    "complement_entropy",
    "declaration_of",
    "hard_mining_weight",
    "loss_declaration",
    "per_sample_losses",
]
