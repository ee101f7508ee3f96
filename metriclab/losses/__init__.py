"""Losses: pair (verification, contrastive), triplet, margin and classification losses."""

from metriclab.losses.base import Loss
from metriclab.losses.pair import VerificationLoss

__all__ = ["Loss", "VerificationLoss"]
