"""What the runtime reads: image files from a folder of class folders, a ``path,label`` CSV or a
list of files, decoded without torch exactly as training decoded its data.

``metriclab.data`` decodes with torch loaded; a serving process may have no torch, so the runtime
decodes here with PIL and numpy alone (a test checks it equals ``metriclab.data.decode``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm")
# Image.DecompressionBombError is not an OSError; SyntaxError is what PIL raises for some bad PNGs.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Item:
    """One image to embed: its file, its id (path relative to the source) and its class if known."""

    path: Path
    item_id: str
    label: str | None


def decode_image(path: Path, size: int, channels: int, invert: bool) -> np.ndarray:
    """uint8 ``(channels, size, size)``: grey or RGB first (PIL resizes palette and 1-bit images
    by nearest neighbour), then PIL's antialiased bilinear resize, then ``v → 255 − v`` if
    ``invert``; an image of other channels or size is converted, not refused."""
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except _DECODE_ERRORS as failure:
        raise ValueError(f"cannot decode image {path} ({failure}); replace or remove it") from None
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return 255 - array if invert else array


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def folder_items(folder: Path) -> list[Item]:
    """A folder of class folders (``folder/<class>/<image>``, labelled) or of images (unlabelled)."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        items = [Item(p, p.name, None) for p in _images_in(folder)]
    else:
        items = [Item(p, f"{c.name}/{p.name}", c.name) for c in classes for p in _images_in(c)]
    if not items:
        raise ValueError(
            f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in class folders "
            "(FOLDER/<class>/<image>) or directly; point at the folder that holds them"
        )
    return items


def csv_items(file: Path) -> list[Item]:
    """``path,label`` rows (an optional header); paths relative to the CSV's folder."""
    items = []
    with file.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or (line == 1 and [c.strip().lower() for c in row] == ["path", "label"]):
                continue
            if len(row) != 2:
                raise ValueError(f"{file} line {line}: expected 'path,label', got {row!r}")
            path = (file.parent / row[0].strip()).resolve()
            items.append(Item(path, row[0].strip(), row[1].strip()))
    if not items:
        raise ValueError(f"{file} lists no images; write one 'path,label' row per image")
    return items


def resolve_items(sources: Sequence[Path], label: str | None = None) -> list[Item]:
    """The images of one folder, one CSV, or image files (all of class ``label`` when given)."""
    if not sources:
        raise ValueError("name a folder, a CSV file or image files")
    if len(sources) == 1 and sources[0].is_dir():
        items = folder_items(sources[0])
    elif len(sources) == 1 and sources[0].suffix.lower() == ".csv":
        if not sources[0].is_file():
            raise FileNotFoundError(f"CSV file {sources[0]} does not exist; check the path")
        items = csv_items(sources[0])
    else:
        folders = [s for s in sources if s.is_dir()]
        if folders:
            raise ValueError(f"{folders[0]} is a folder; pass one folder alone, or image files")
        items = [Item(path, path.name, None) for path in sources]
    if label is not None:
        items = [Item(item.path, item.item_id, label) for item in items]
    return items
