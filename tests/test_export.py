"""export → verify and index build → query round trips, against in-process scores."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metriclab.cli import main
from metriclab.data import to_float
from metriclab.export import Bundle
from metriclab.training import build_data, load_run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "run"
    overrides = ["train.steps=10", "train.batch_size=16", "eval.pairs=200"]
    assert main(["train", "--no-progress", "--run-dir", str(folder), *overrides]) == 0
    return folder


def _png(path: Path, image: torch.Tensor) -> Path:
    Image.fromarray(image[0].numpy(), mode="L").save(path)
    return path


def test_export_verify_equals_in_process_scores(run: Path, tmp_path: Path, capsys) -> None:
    bundle_dir = tmp_path / "bundle"
    assert main(["export", str(run), "-o", str(bundle_dir)]) == 0
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    assert manifest["threshold"]["calibrated_on"] == "unseen test classes"
    config, model = load_run(run)
    _, test = build_data(config)
    a, b = _png(tmp_path / "a.png", test.images[0]), _png(tmp_path / "b.png", test.images[1])
    with torch.no_grad():
        expected = model(to_float(test.images[:1]), to_float(test.images[1:2])).item()
    bundle = Bundle.load(bundle_dir)
    score, same = bundle.verify(a, b)
    assert score == pytest.approx(expected, abs=1e-4)
    assert same == (score >= manifest["threshold"]["value"])
    capsys.readouterr()
    assert main(["verify", str(bundle_dir), str(a), str(b)]) == 0
    assert ("→ same" if same else "→ different") in capsys.readouterr().out


def test_far_target_threshold_and_bad_bundle(run: Path, tmp_path: Path, capsys) -> None:
    bundle_dir = tmp_path / "strict"
    assert main(["export", str(run), "-o", str(bundle_dir), "--target-far", "0.01"]) == 0
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    assert manifest["threshold"]["rule"] == "false accept rate ≤ 0.01"
    assert main(["verify", str(tmp_path), "x.png", "y.png"]) == 2
    assert "is not a metriclab bundle" in capsys.readouterr().err


def test_index_build_and_query_find_the_item_itself(run: Path, tmp_path: Path, capsys) -> None:
    bundle_dir = tmp_path / "bundle"
    assert main(["export", str(run), "-o", str(bundle_dir)]) == 0
    gallery = tmp_path / "gallery.index"
    assert main(["index", "build", str(bundle_dir), "-o", str(gallery)]) == 0
    config, _ = load_run(run)
    _, test = build_data(config)
    image = _png(tmp_path / "q.png", test.images[7])
    capsys.readouterr()
    assert main(["index", "query", str(gallery), str(image), "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "1." and test.item_ids[7] in lines[1]
    assert float(lines[1].split()[2]) == pytest.approx(0.0, abs=1e-4)
    assert np.isfinite([float(line.split()[2]) for line in lines[1:4]]).all()
