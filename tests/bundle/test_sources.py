"""The runtime decodes files as training decoded them, and finds images in folders and CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metriclab.bundle.sources import decode_image, resolve_items
from metriclab.data.decode import decode_one


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "1"])
@pytest.mark.parametrize(
    ("size", "channels", "invert"), [(16, 1, False), (28, 1, True), (20, 3, False)]
)
def test_decode_equals_training_decode(
    tmp_path: Path, mode: str, size: int, channels: int, invert: bool
) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 256, (37, 23, 3), dtype=np.uint8), "RGB").convert(mode).save(
        path
    )
    expected = decode_one(path.read_bytes(), str(path), size, channels, invert)
    served = decode_image(path, size, channels, invert)
    assert served.dtype == np.uint8 and served.shape == (channels, size, size)
    np.testing.assert_array_equal(served, expected)


def test_sources_folder_csv_files(tmp_path: Path) -> None:
    for name in ("b", "a"):
        (tmp_path / "classes" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (4, 4)).save(tmp_path / "classes" / name / f"{i}.png")
    items = resolve_items([tmp_path / "classes"])
    assert [(i.item_id, i.label) for i in items] == [
        ("a/0.png", "a"), ("a/1.png", "a"), ("b/0.png", "b"), ("b/1.png", "b"),
    ]  # fmt: skip
    (tmp_path / "list.csv").write_text("path,label\nclasses/a/0.png,x\nclasses/b/1.png,y\n")
    assert [(i.label, i.path.name) for i in resolve_items([tmp_path / "list.csv"])] == [
        ("x", "0.png"), ("y", "1.png"),
    ]  # fmt: skip
    files = resolve_items([tmp_path / "classes" / "a" / "0.png"], label="z")
    assert files[0].label == "z"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        resolve_items([tmp_path / "empty"])
    with pytest.raises(ValueError, match="pass one folder alone"):
        resolve_items([tmp_path / "classes", tmp_path / "list.csv"])
