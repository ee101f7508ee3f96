"""Tiny synthetic photo folders: RGB JPEG and PNG of mixed sizes, some greyscale, per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_photos(root: Path, classes: int = 4, per_class: int = 6, seed: int = 0) -> Path:
    """``root/c<k>/<i>.{jpg,png}``: each class a base colour plus noise; every third image grey."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        folder = root / f"c{k}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, size=3)
        for i in range(per_class):
            height, width = (int(v) for v in rng.integers(20, 41, size=2))
            noise = rng.integers(-40, 41, size=(height, width, 3))
            pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            if i % 3 == 2:
                image = image.convert("L")  # mixed grey and RGB files in one folder
            suffix = "jpg" if i % 2 else "png"
            image.save(folder / f"{i:03d}.{suffix}")
    return root
