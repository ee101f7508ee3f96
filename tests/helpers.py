"""Small synthetic data for tests."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from metriclab.data import Drawing, LabeledImages


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


def write_stroke_zip(archive: Path, ids: list[str], drawing: Callable[[int], Drawing]) -> None:
    """An Omniglot stroke zip: item ``ids[n]`` (an image id ending in ``.png``) drawn as
    ``drawing(n)``, y negated as in the originals, one ``strokes/<id>.txt`` per item."""
    with zipfile.ZipFile(archive, "w") as out:
        for n, item in enumerate(ids):
            lines = ["START"]
            for stroke in drawing(n).strokes:
                lines += [f"{x},{-y},0" for x, y in stroke] + ["BREAK"]
            out.writestr(f"strokes/{item[:-4]}.txt", "\n".join(lines) + "\n")
