"""Small synthetic data for tests."""

from __future__ import annotations

import torch

from metriclab.data import LabeledImages


def tiny_images(
    num_classes: int = 4, per_class: int = 6, size: int = 16, seed: int = 0
) -> LabeledImages:
    """Random uint8 images, ``per_class`` for each of ``num_classes`` classes."""
    generator = torch.Generator().manual_seed(seed)
    n = num_classes * per_class
    return LabeledImages(
        images=torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=generator),
        labels=torch.arange(num_classes).repeat_interleave(per_class),
        class_names=tuple(f"c{c}" for c in range(num_classes)),
        item_ids=tuple(f"tiny:{i}" for i in range(n)),
        description="tiny",
    )
