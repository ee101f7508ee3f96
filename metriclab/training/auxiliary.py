"""An auxiliary training target read off the backbone's feature map (training only).

Some augmentations know more about an item than its pixels: :class:`~metriclab.data.
stroke_augment.StrokeAugmentation` knows how each character was drawn (stroke starts, order,
direction; :mod:`metriclab.data.stroke_maps`). An augmentation that sets ``auxiliary`` (a loss
weight > 0) and defines ``auxiliary_targets(item_ids, side) -> (targets (B, K, side, side),
known (B,), weighted channels)`` gets an :class:`AuxiliaryHead`: a 1×1 convolution on the
backbone's ``(B, F, side, side)`` output predicting the ``K`` maps, its squared error added to
the metric loss with that weight (multi-task learning as an inductive bias, Caruana 1997).
The head belongs to the objective, not the model: evaluation, export and bundles see images
and the embedding network alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from metriclab.config import ConfigError


class AuxiliaryHead(nn.Module):
    """Predicts an augmentation's auxiliary maps from the backbone's last feature map.

    Args:
        backbone: the embedding network's backbone; a hook keeps its last spatial feature map
            ``(B, F, S, S)`` of the latest forward pass with gradients (the training batch).
        augment: the augmentation that makes the targets (see the module docstring).
        in_channels, image_size: the network's input, to size the head once.
    """

    def __init__(
        self, backbone: nn.Module, augment: Any, in_channels: int, image_size: int
    ) -> None:
        super().__init__()
        self.weight = float(augment.auxiliary)
        self.augment = augment
        self._features: torch.Tensor | None = None
        # A hook, not a second forward: the training step's own features feed the head. The
        # map is the input of the backbone's last Flatten (metriclab's conv backbones end in
        # one), else the backbone's output.
        flatten = [m for m in backbone.modules() if isinstance(m, nn.Flatten)]
        if flatten:
            flatten[-1].register_forward_pre_hook(lambda _, inputs: self._keep(inputs[0]))
        else:
            backbone.register_forward_hook(lambda _, __, output: self._keep(output))
        was_training = backbone.training
        backbone.eval()
        with torch.no_grad(), torch.enable_grad():  # grad mode on, so the probe is kept
            backbone(torch.zeros(1, in_channels, image_size, image_size))
        backbone.train(was_training)
        probe, self._features = self._features, None
        if probe is None or probe.ndim != 4 or probe.shape[2] != probe.shape[3]:
            shape = None if probe is None else tuple(probe.shape)
            raise ConfigError(
                f"an auxiliary target needs a backbone with a square feature map (B, F, S, S), "
                f"got {shape}; use a convolutional backbone such as conv4_nopool or set "
                f"data.augment_params.auxiliary=0"
            )
        self.side = int(probe.shape[2])
        channels = int(augment.auxiliary_channels)
        self.conv = nn.Conv2d(int(probe.shape[1]), channels, kernel_size=1)

    def _keep(self, features: torch.Tensor) -> None:
        if torch.is_grad_enabled():
            self._features = features

    def loss(self, item_ids: Sequence[str]) -> torch.Tensor:
        """``weight`` × the mean squared error of the maps of ``item_ids`` (the batch the backbone
        saw last, in order); channels the augmentation names as weighted count by the first
        channel (their values are means over it); items without targets count for nothing."""
        features = self._features
        if features is None or len(features) != len(item_ids):
            raise RuntimeError("the auxiliary head saw no training batch of these items")
        self._features = None
        targets, known, weighted = self.augment.auxiliary_targets(item_ids, self.side)
        targets = targets.to(features.device)
        known = known.to(features.device, torch.float32)
        predicted = self.conv(features)
        error = (predicted - targets).square()
        weights = torch.ones_like(error)
        weights[:, list(weighted)] = targets[:, :1]
        # Per item: mean over cells and channels; then over items with targets.
        per_item = (error * weights).flatten(1).sum(1) / weights.flatten(1).sum(1).clamp_min(1e-6)
        return self.weight * (per_item * known).sum() / known.sum().clamp_min(1.0)


def auxiliary_head(augment: Any, embedding_net: nn.Module) -> AuxiliaryHead | None:
    """The head an augmentation asks for (``auxiliary`` > 0), else None."""
    if not float(getattr(augment, "auxiliary", 0.0) or 0.0) > 0:
        return None
    return AuxiliaryHead(
        embedding_net.backbone, augment, embedding_net.in_channels, embedding_net.image_size
    )


__all__ = ["AuxiliaryHead", "auxiliary_head"]
