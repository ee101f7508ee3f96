"""``data.skip_bad``: files that cannot be decoded are left out, listed, and said once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from metriclab.data import from_csv, image_folder, load_dataset
from metriclab.data.decode import decode_one
from tests.data.photos import write_photos


def _spoil(root: Path) -> list[str]:
    """Break two files (garbage bytes; a PNG cut short) and return their item ids."""
    garbage, cut = root / "c1" / "001.jpg", root / "c2" / "000.png"
    garbage.write_bytes(b"not a jpeg at all")
    cut.write_bytes(cut.read_bytes()[:60])
    return ["c1/001.jpg", "c2/000.png"]


def _decodable_ids(root: Path) -> list[str]:
    """Reference: every image file under ``root`` that PIL opens and converts, by a plain loop."""
    ids = []
    for path in sorted(root.rglob("*.*")):
        try:
            with Image.open(path) as image:
                image.convert("RGB")
        except (OSError, SyntaxError, ValueError):
            continue
        ids.append(path.relative_to(root).as_posix())
    return ids


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_skip_bad_leaves_out_exactly_the_undecodable_files(
    tmp_path: Path, storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_photos(tmp_path / "photos", classes=3, per_class=4)
    bad = _spoil(root)
    skipped: list[str] = []
    data = image_folder(
        root, size=12, cache=False, progress=False, storage=storage, skip_bad=True, skipped=skipped
    )
    assert sorted(data.item_ids) == _decodable_ids(root)
    assert sorted(Path(s).relative_to(root).as_posix() for s in skipped) == bad
    # Every kept image is the decoding of its own file: positions did not shift past a gap.
    images = data.images if storage == "memory" else data.images.load()
    for row, item_id in enumerate(data.item_ids):
        expected = decode_one((root / item_id).read_bytes(), item_id, 12, 3, False)
        assert torch.equal(images[row], torch.from_numpy(expected.copy())), item_id
    assert capsys.readouterr().err == ""  # the loader functions are quiet; load_dataset speaks


def test_without_skip_bad_the_first_bad_file_is_named(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "photos", classes=3, per_class=4)
    _spoil(root)
    with pytest.raises(ValueError, match=r"cannot decode image .*(c1/001\.jpg|c2/000\.png)"):
        image_folder(root, size=12, cache=False, progress=False)


def test_load_dataset_says_it_once_and_csv_skips_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_photos(tmp_path / "photos", classes=3, per_class=4)
    bad = _spoil(root)
    skipped: list[str] = []
    data = load_dataset(
        "image_folder", root, size=12, cache=False, progress=False, skip_bad=True, skipped=skipped
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("data.skip_bad: skipped 2 file(s)")
    assert f"loaded {len(data)} images" in err and len(skipped) == 2
    rows = "".join(f"{p.relative_to(root).as_posix()},{p.parent.name}\n" for p in root.rglob("*.*"))
    (root / "list.csv").write_text(rows)
    listed: list[str] = []
    from_csv(root / "list.csv", size=12, cache=False, progress=False, skip_bad=True, skipped=listed)
    assert sorted(Path(s).relative_to(root).as_posix() for s in listed) == bad


def test_skip_bad_is_refused_where_no_files_of_yours_are_decoded() -> None:
    with pytest.raises(ValueError, match=r"data set 'digits' cannot skip.*drop data.skip_bad"):
        load_dataset("digits", skip_bad=True)
