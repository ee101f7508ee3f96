"""Turning uint8 batches into network inputs."""

from __future__ import annotations

import torch


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` in 0–255 → float32 in [0, 1], same shape."""
    if images.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 image batch, got {images.dtype}")
    return images.to(torch.float32).div_(255.0)
