"""The serving commands: embed, gallery create|add|remove|calibrate|info, identify, verify's exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from metriclab.bundle import Bundle
from metriclab.cli import main
from tests.bundle.conftest import write_class_folders


def test_three_commands_from_a_folder_to_unknown(
    bundle_dir: Path, test_digits, tmp_path: Path, capsys
) -> None:
    images, labels, names = test_digits
    enrol = write_class_folders(tmp_path / "mine", images, labels, names, 4, classes=[0, 1, 2])
    probe = write_class_folders(tmp_path / "probe", images, labels, names, 2, start=10)
    files = sorted(str(p) for p in probe.glob("*/*.png"))
    gallery = tmp_path / "gallery"
    assert (
        main(
            ["gallery", "create", str(bundle_dir), str(enrol), "-o", str(gallery), "--no-progress"]
        )
        == 0
    )
    assert main(["gallery", "calibrate", str(gallery), "--far", "0.1"]) == 0
    capsys.readouterr()
    assert main(["identify", str(gallery), *files, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in rows] == files
    threshold = json.loads((gallery / "gallery.json").read_text())["threshold"]["distance"]
    for row in rows:
        assert row["threshold"] == threshold
        assert row["label"] == ("unknown" if row["distance"] > threshold else row["candidate"])
        assert row["candidate"] in names[:3]
    assert (
        main(
            [
                "identify",
                str(gallery),
                *files[:3],
                "--csv",
                "--rule",
                "prototype",
                "--threshold",
                "none",
            ]
        )
        == 0
    )
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == 3 and all(r["label"] == r["candidate"] for r in table)


def test_gallery_add_remove_info_and_errors(
    bundle_dir: Path, test_digits, tmp_path: Path, capsys
) -> None:
    images, labels, names = test_digits
    enrol = write_class_folders(tmp_path / "mine", images, labels, names, 2, classes=[0, 1])
    gallery = tmp_path / "gallery"
    assert (
        main(
            ["gallery", "create", str(bundle_dir), str(enrol), "-o", str(gallery), "--no-progress"]
        )
        == 0
    )
    extra = write_class_folders(tmp_path / "extra", images, labels, names, 2, classes=[2], start=3)
    new_files = [str(p) for p in sorted(extra.glob("*/*.png"))]
    assert (
        main(["gallery", "add", str(gallery), *new_files, "--class", "newcomer", "--no-progress"])
        == 0
    )
    capsys.readouterr()
    assert main(["gallery", "info", str(gallery), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["per_class"] == {names[0]: 2, names[1]: 2, "newcomer": 2}
    assert main(["gallery", "remove", str(gallery), "--class", "newcommer"]) == 2
    assert "'newcommer' is not enrolled (closest: newcomer" in capsys.readouterr().err
    assert main(["gallery", "remove", str(gallery), "--class", "newcomer"]) == 0
    assert main(["gallery", "info", str(gallery)]) == 0
    assert "4 items, 2 classes" in capsys.readouterr().out
    assert main(["gallery", "create", str(bundle_dir), str(enrol), "-o", str(gallery)]) == 2
    assert "already a gallery" in capsys.readouterr().err
    # The bundle re-exported (another identity) at the same path: refused, naming both.
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    moved = tmp_path / "bundle-copy"
    shutil.copytree(bundle_dir, moved)
    record = json.loads((gallery / "gallery.json").read_text())
    (moved / "bundle.json").write_text(json.dumps({**manifest, "bias": manifest["bias"] + 1}))
    (gallery / "gallery.json").write_text(
        json.dumps({**record, "bundle": {**record["bundle"], "path": str(moved)}})
    )
    assert main(["identify", str(gallery), new_files[0]]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: gallery")
        and record["bundle"]["identity"] in err
        and "Traceback" not in err
    )


def test_embed_writes_ids_vectors_labels(bundle_dir: Path, test_digits, tmp_path: Path) -> None:
    images, labels, names = test_digits
    folder = write_class_folders(tmp_path / "mine", images, labels, names, 3)
    out = tmp_path / "vectors.npz"
    assert main(["embed", str(bundle_dir), str(folder), "-o", str(out), "--no-progress"]) == 0
    with np.load(out) as arrays:
        ids, vectors, got = arrays["ids"], arrays["vectors"], arrays["labels"]
    files = sorted(folder.glob("*/*.png"))
    assert ids.tolist() == [f"{f.parent.name}/{f.name}" for f in files]
    assert got.tolist() == [f.parent.name for f in files]
    np.testing.assert_allclose(vectors, Bundle.load(bundle_dir).embed(files), atol=1e-6)
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(files[0], flat / "only.png")
    assert main(["embed", str(bundle_dir), str(flat), "-o", str(out), "--no-progress"]) == 0
    with np.load(out) as arrays:
        assert "labels" not in arrays and arrays["ids"].tolist() == ["only.png"]


@pytest.mark.parametrize(
    ("threshold", "code", "verdict"), [(-1e9, 0, "same"), (1e9, 1, "different")]
)
def test_verify_exit_status(bundle_dir: Path, test_digits, tmp_path: Path, capsys, threshold: float,
                            code: int, verdict: str) -> None:  # fmt: skip
    images, labels, names = test_digits
    folder = write_class_folders(tmp_path / "pair", images, labels, names, 1, classes=[0, 1])
    a, b = sorted(folder.glob("*/*.png"))
    strict = tmp_path / "bundle"
    shutil.copytree(bundle_dir, strict)
    manifest = json.loads((strict / "bundle.json").read_text())
    manifest["threshold"]["value"] = threshold
    (strict / "bundle.json").write_text(json.dumps(manifest))
    assert main(["verify", str(strict), str(a), str(b)]) == code
    out = capsys.readouterr().out
    assert f"→ {verdict}" in out and "score = bias − weighted_l1 distance" in out
