"""Pen strokes: Omniglot's text files joined to the images by id, the general (strokes, label)
format, and arc-length resampling."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from metriclab.data import omniglot
from metriclab.data.strokes import (
    Drawing,
    StrokeRecord,
    omniglot_strokes,
    parse_stroke_text,
    read_stroke_records,
    resample,
    write_stroke_records,
)
from tests.data.synthetic import item_ids, write_zip

TEXT = "START\n1.0,-2.0,0\n3.0,-2.0,10\nBREAK\n5.5,-7.25,20\nBREAK\n"


def stroke_text(seed: int) -> str:
    """A random two-stroke drawing in Omniglot's format (y negated)."""
    rng = np.random.default_rng(seed)
    lines = ["START"]
    for _ in range(2):
        for x, y in rng.uniform(2, 18, size=(4, 2)):
            lines.append(f"{x:.4f},{-y:.4f},{int(rng.integers(1000))}")
        lines.append("BREAK")
    return "\n".join(lines) + "\n"


def write_stroke_zip(archive: Path, prefix: str) -> list[str]:
    """Stroke files for every synthetic image id, plus the macOS junk the real zips hold."""
    ids = item_ids()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr(f"{prefix}/.DS_Store", b"\0junk")
        out.writestr(f"__MACOSX/{prefix}/._x.txt", b"\0junk")
        for n, item in enumerate(ids):
            out.writestr(f"{prefix}/{item[:-4]}.txt", stroke_text(n))
    return ids


def test_parse_flips_y_back_and_keeps_times() -> None:
    drawing = parse_stroke_text(TEXT, "t.txt")
    assert len(drawing.strokes) == 2
    np.testing.assert_allclose(drawing.strokes[0], [[1.0, 2.0], [3.0, 2.0]])
    np.testing.assert_allclose(drawing.strokes[1], [[5.5, 7.25]])
    np.testing.assert_allclose(drawing.times[0], [0, 10])
    assert drawing.strokes[0].dtype == np.float32
    unflipped = parse_stroke_text(TEXT, "t.txt", flip_y=False)
    np.testing.assert_allclose(unflipped.strokes[0][:, 1], [-2.0, -2.0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("START\n1,2,3\n1,x,3\nBREAK\n", r"bad\.txt, line 3: expected 'x,y,t'"),
        ("START\n1,2,3,4\nBREAK\n", r"bad\.txt, line 2"),
        ("START\n1,nan,3\nBREAK\n", r"bad\.txt, line 2"),
        ("START\nBREAK\n", "holds no pen positions"),
    ],
)
def test_malformed_files_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_stroke_text(text, "bad.txt")


def test_omniglot_strokes_join_the_image_ids(tmp_path: Path) -> None:
    images = write_zip(tmp_path / "images_background.zip", "images_background")
    ids = write_stroke_zip(tmp_path / "strokes_background.zip", "strokes_background")
    drawings = omniglot_strokes(tmp_path / "strokes_background.zip")
    loaded = omniglot(tmp_path / "images_background.zip", size=None, cache=False, progress=False)
    assert sorted(drawings) == sorted(ids) == sorted(images) == sorted(loaded.item_ids)
    first = drawings[ids[0]]
    np.testing.assert_allclose(first.strokes[0], parse_stroke_text(stroke_text(0), "").strokes[0])
    kept = omniglot_strokes(tmp_path / "strokes_background.zip", alphabets=["Beta"])
    assert kept and all(item.startswith("Beta/") for item in kept)


def test_omniglot_strokes_from_a_folder_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "strokes" / "Greek" / "character01" / "0001_01.txt"
    path.parent.mkdir(parents=True)
    path.write_text(TEXT)
    assert list(omniglot_strokes(tmp_path / "strokes")) == ["Greek/character01/0001_01.png"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        omniglot_strokes(tmp_path / "missing.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no Omniglot strokes"):
        omniglot_strokes(tmp_path / "empty")
    path.write_text("START\n1,2,3\nBREAK\n0,oops,1\n")
    with pytest.raises(ValueError, match=r"0001_01\.txt, line 4"):
        omniglot_strokes(tmp_path / "strokes")


def test_records_round_trip_through_json_lines(tmp_path: Path) -> None:
    records = [
        StrokeRecord("w1/a", "w1", parse_stroke_text(TEXT, "a")),
        StrokeRecord("w2/b", "w2", Drawing((np.array([[0, 0], [4, 3]], np.float32),))),
    ]
    write_stroke_records(records, tmp_path / "s.jsonl")
    again = read_stroke_records(tmp_path / "s.jsonl")
    assert [(r.item_id, r.label) for r in again] == [("w1/a", "w1"), ("w2/b", "w2")]
    np.testing.assert_allclose(again[0].drawing.strokes[1], records[0].drawing.strokes[1])
    np.testing.assert_allclose(again[0].drawing.times[0], records[0].drawing.times[0])
    assert again[1].drawing.times is None


def test_records_from_a_folder_of_text_files(tmp_path: Path) -> None:
    for label, name in (("alice", "1.txt"), ("alice", "2.txt"), ("bob", "1.txt")):
        (tmp_path / label).mkdir(exist_ok=True)
        (tmp_path / label / name).write_text(TEXT)
    records = read_stroke_records(tmp_path)
    assert [r.label for r in records] == ["alice", "alice", "bob"]
    assert records[2].item_id == "bob/1.txt"
    assert records[0].drawing.strokes[0][0, 1] == -2.0  # the general format keeps y as written


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 1 is not valid JSON"),
        ('{"id": "a", "strokes": [[[0, 0]]]}', "needs the keys id, label and strokes"),
        ('{"id": "a", "label": "x", "strokes": []}', "non-empty list of strokes"),
        ('{"id": "a", "label": "x", "strokes": [[[0, 0, 0, 0]]]}', r"\[x, y\] or \[x, y, t\]"),
    ],
)
def test_bad_json_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "s.jsonl").write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        read_stroke_records(tmp_path / "s.jsonl")


def test_repeated_ids_are_refused(tmp_path: Path) -> None:
    row = '{"id": "a", "label": "x", "strokes": [[[0, 0]]]}\n'
    (tmp_path / "s.jsonl").write_text(row * 2)
    with pytest.raises(ValueError, match="id 'a' appears twice"):
        read_stroke_records(tmp_path / "s.jsonl")


def test_resample_is_uniform_in_arc_length() -> None:
    # Raw samples bunched at the start, as a slow pen start records them.
    stroke = np.array([[0, 0], [0.1, 0], [0.2, 0], [0.3, 0], [10, 0], [10, 10]], np.float32)
    out = resample(stroke, 1.0)
    gaps = np.linalg.norm(np.diff(out, axis=0), axis=1)
    assert gaps.max() <= 1.0 + 1e-5
    np.testing.assert_allclose(gaps, gaps.mean(), atol=1e-4)
    np.testing.assert_allclose(out[0], stroke[0])
    np.testing.assert_allclose(out[-1], stroke[-1])
    assert len(out) == 21  # 20 px of path at 1 px


def test_resample_keeps_a_dot_and_refuses_bad_spacing() -> None:
    dot = np.array([[3, 4], [3, 4]], np.float32)
    np.testing.assert_allclose(resample(dot, 1.0), [[3, 4]])
    with pytest.raises(ValueError, match="spacing must be a positive"):
        resample(dot, 0.0)
