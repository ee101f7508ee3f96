"""Turning uint8 batches into network inputs."""

from __future__ import annotations

import torch

from metriclab.data.preprocess import Preprocess


def to_float(images: torch.Tensor, preprocess: Preprocess | None = None) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` in 0–255 → float32 in [0, 1], same shape.

    With a ``preprocess`` record that declares a mean and std, the result is normalised as it says
    (:meth:`Preprocess.to_float`); without one, or for the built-in data sets, it is ``x / 255``.
    """
    if preprocess is not None:
        return preprocess.to_float(images)
    if images.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 image batch, got {images.dtype}")
    return images.to(torch.float32).div_(255.0)
