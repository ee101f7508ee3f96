"""Tiny synthetic Omniglot trees and archives, written with PIL, with the pixels each should load as."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

ALPHABETS = {"Alpha_(one)": 3, "Beta": 3, "Gamma": 2}
DRAWERS = 4
SIDE = 20


def strokes(item_id: str) -> np.ndarray:
    """A distinct ``(SIDE, SIDE)`` bool stroke mask for each item id (True = ink)."""
    seed = int.from_bytes(item_id.encode(), "little") % (2**32)
    return np.random.default_rng(seed).random((SIDE, SIDE)) < 0.3


def png_bytes(mask: np.ndarray) -> bytes:
    """A 1-bit PNG with black (0) ink on white, as Omniglot ships."""
    buffer = io.BytesIO()
    Image.fromarray(~mask).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def item_ids(alphabets: Iterable[str] = tuple(ALPHABETS)) -> list[str]:
    ids = []
    for a, alphabet in enumerate(sorted(ALPHABETS)):
        if alphabet not in alphabets:
            continue
        for c in range(1, ALPHABETS[alphabet] + 1):
            for d in range(1, DRAWERS + 1):
                ids.append(f"{alphabet}/character{c:02d}/{100 * (a + 1) + c:04d}_{d:02d}.png")
    return ids


def write_tree(root: Path, alphabets: Iterable[str] = tuple(ALPHABETS)) -> list[str]:
    """``root/<Alphabet>/characterNN/<id>.png``; returns the item ids written."""
    ids = item_ids(alphabets)
    for item in ids:
        path = root / item
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(strokes(item)))
    return ids


def write_zip(archive: Path, prefix: str, alphabets: Iterable[str] = tuple(ALPHABETS)) -> list[str]:
    """An archive laid out like the originals: ``<prefix>/<Alphabet>/characterNN/<id>.png``."""
    ids = item_ids(alphabets)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr(f"{prefix}/", b"")
        for item in ids:
            out.writestr(f"{prefix}/{item}", png_bytes(strokes(item)))
    return ids


def expected(item: str) -> np.ndarray:
    """What the loader must return at native size: white (255) ink on black, ``(1, SIDE, SIDE)``."""
    return (strokes(item).astype(np.uint8) * 255)[None]
