"""Backbones: convolutional feature extractors, looked up by name through one registry."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 conv → batch norm → ReLU → 2×2 max pool: one block of Conv-4."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def conv4(in_channels: int = 1, hidden: int = 64) -> nn.Module:
    """Conv-4 of Vinyals et al. 2016 / Snell et al. 2017: four conv blocks, then flatten.

    ``(B, C, H, W)`` → ``(B, hidden · ⌊H/16⌋ · ⌊W/16⌋)``; 28×28 inputs give 64 features.
    """
    return nn.Sequential(
        conv_block(in_channels, hidden),
        conv_block(hidden, hidden),
        conv_block(hidden, hidden),
        conv_block(hidden, hidden),
        nn.Flatten(),
    )


BACKBONES: dict[str, Callable[[int], nn.Module]] = {
    "conv4": conv4,
}


def backbone(name: str, in_channels: int = 1) -> nn.Module:
    """The backbone a config names, for inputs with ``in_channels`` channels."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be at least 1, got {in_channels}")
    return BACKBONES[name](in_channels)


@torch.no_grad()
def output_features(module: nn.Module, in_channels: int, image_size: int) -> int:
    """The flat feature count ``module`` produces for one ``(in_channels, image_size, image_size)`` image."""
    was_training = module.training
    module.eval()
    try:
        out = module(torch.zeros(1, in_channels, image_size, image_size))
    except RuntimeError as failure:
        raise ValueError(
            f"the backbone cannot take {image_size}×{image_size} inputs with {in_channels} "
            f"channel(s): {failure}; use larger images or another backbone"
        ) from None
    finally:
        module.train(was_training)
    return int(out.flatten(1).shape[1])
