"""The ORL faces loader on miniature copies of its zip and folder layouts."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metriclab.data import load_dataset


def write_faces(root: Path, subjects: int = 3, photos: int = 2) -> tuple[Path, Path]:
    """``root/orl_faces/sNN/MM.pgm`` (6 × 6 grey) and the same as a zip; returns both."""
    rng = np.random.default_rng(0)
    folder = root / "orl_faces"
    for s in range(1, subjects + 1):
        for m in range(1, photos + 1):
            path = folder / f"s{s:02d}" / f"{m:02d}.pgm"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(path)
    archive = root / "orl_faces_small.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in sorted(folder.rglob("*.pgm")):
            out.write(file, file.relative_to(root).as_posix())
    return folder, archive


def test_zip_and_folder_give_the_stored_pixels_one_class_per_subject(tmp_path: Path) -> None:
    folder, archive = write_faces(tmp_path)
    options = {"size": 6, "cache": False, "progress": False}  # stored size: no resampling
    from_zip = load_dataset("faces-orl", archive, **options)
    from_folder = load_dataset("faces-orl", folder, **options)
    assert from_zip.class_names == ("s01", "s02", "s03")
    assert (
        from_zip.item_ids
        == from_folder.item_ids
        == tuple(f"s{s:02d}/{m:02d}.pgm" for s in (1, 2, 3) for m in (1, 2))
    )
    assert torch.equal(from_zip.images, from_folder.images)
    for position, item_id in enumerate(from_zip.item_ids):
        expected = np.array(Image.open(folder / item_id))
        assert np.array_equal(from_zip.images[position, 0].numpy(), expected)
        assert from_zip.class_names[int(from_zip.labels[position])] == item_id.split("/")[0]


def test_a_path_without_faces_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no sNN/MM.pgm"):
        load_dataset("faces-orl", tmp_path, cache=False, progress=False)
    with pytest.raises(FileNotFoundError, match="missing.zip does not exist"):
        load_dataset("faces-orl", tmp_path / "missing.zip", cache=False, progress=False)
