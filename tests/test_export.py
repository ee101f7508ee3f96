"""export → verify and index build → query round trips, against in-process scores."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metriclab.cli import main
from metriclab.data import PairSampler, to_float, tta_views
from metriclab.evaluation import embed, score_pairs
from metriclab.export import Bundle, export_bundle
from metriclab.runs import open_run
from metriclab.training import build_data


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
    opened = open_run(run)
    config, model = opened.config, opened.model
    _, test = build_data(config)
    a, b = _png(tmp_path / "a.png", test.images[0]), _png(tmp_path / "b.png", test.images[1])
    with torch.no_grad():
        expected = model(to_float(test.images[:1]), to_float(test.images[1:2])).item()
    bundle = Bundle.load(bundle_dir)
    score, same = bundle.verify(a, b)
    assert score == pytest.approx(expected, abs=1e-4)
    assert same == (score >= manifest["threshold"]["value"])
    capsys.readouterr()
    assert main(["verify", str(bundle_dir), str(a), str(b)]) == (0 if same else 1)
    assert ("→ same" if same else "→ different") in capsys.readouterr().out


def test_far_target_threshold_and_bad_bundle(run: Path, tmp_path: Path, capsys) -> None:
    bundle_dir = tmp_path / "strict"
    assert main(["export", str(run), "-o", str(bundle_dir), "--target-far", "0.01"]) == 0
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    assert manifest["threshold"]["rule"] == "false accept rate ≤ 0.01"
    # Measure the rates on the calibration pairs, scored here without export's code.
    opened = open_run(run)
    config, model = opened.config, opened.model
    _, test = build_data(config)
    first, second, same = next(
        iter(PairSampler(test.labels, config.eval.pairs, 1, seed=config.eval.seed))
    )
    with torch.no_grad():
        scores = model(to_float(test.images[first]), to_float(test.images[second])).numpy()
    accepted = scores >= manifest["threshold"]["value"]
    assert (~same).sum() >= 50 and same.sum() >= 50
    assert accepted[~same].mean() <= 0.01  # the measured false accept rate meets the target
    assert accepted[same].mean() == pytest.approx(manifest["threshold"]["tar"])
    assert accepted[same].mean() > 0  # not the trivial threshold that accepts nothing
    assert main(["verify", str(tmp_path), "x.png", "y.png"]) == 2
    assert "is not a metriclab bundle" in capsys.readouterr().err


def test_index_build_and_query_find_the_item_itself(run: Path, tmp_path: Path, capsys) -> None:
    bundle_dir = tmp_path / "bundle"
    assert main(["export", str(run), "-o", str(bundle_dir)]) == 0
    gallery = tmp_path / "gallery.index"
    assert main(["index", "build", str(bundle_dir), "-o", str(gallery)]) == 0
    config = open_run(run).config
    _, test = build_data(config)
    image = _png(tmp_path / "q.png", test.images[7])
    capsys.readouterr()
    assert main(["index", "query", str(gallery), str(image), "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "1." and test.item_ids[7] in lines[1]
    assert float(lines[1].split()[2]) == pytest.approx(0.0, abs=1e-4)
    assert np.isfinite([float(line.split()[2]) for line in lines[1:4]]).all()


def test_bundle_loads_and_verifies_without_training_code(run: Path, tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    assert main(["export", str(run), "-o", str(bundle_dir)]) == 0
    config = open_run(run).config
    _, test = build_data(config)
    a, b = _png(tmp_path / "a.png", test.images[0]), _png(tmp_path / "b.png", test.images[9])
    expected, _ = Bundle.load(bundle_dir).verify(a, b)
    program = (
        "import sys\n"
        "from pathlib import Path\n"
        "from metriclab.bundle import Bundle\n"
        f"score, same = Bundle.load(Path({str(bundle_dir)!r})).verify(Path({str(a)!r}), Path({str(b)!r}))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('metriclab.training', 'metriclab.export')))\n"
        "print(repr(score), loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )  # fmt: skip
    score, loaded = done.stdout.split(" ", 1)
    assert loaded.strip() == "[]"
    assert float(score) == pytest.approx(expected, abs=1e-6)


def test_report_and_calibration_score_pairs_alike(run: Path, tmp_path: Path) -> None:
    """No validation classes: export calibrates on the report's own test pairs (same seed and
    count), so with one pair scorer the EER thresholds agree to the last bit."""
    results = tmp_path / "results.json"
    assert main(["eval", str(run), "--no-progress", "--no-plots", "--json", str(results)]) == 0
    bundle_dir = tmp_path / "bundle"
    manifest = export_bundle(run, bundle_dir)
    report = json.loads(results.read_text())["verification"]
    assert manifest["threshold"]["calibrated_on"] == "unseen test classes"
    assert manifest["threshold"]["value"] == report["eer_threshold"]
    assert manifest["threshold"]["eer"] == report["eer"]


def test_far_target_is_met_on_the_calibration_pairs(run: Path, tmp_path: Path) -> None:
    manifest = export_bundle(run, tmp_path / "strict", target_far=0.05)
    opened = open_run(run)
    config, model = opened.config, opened.model
    _, test = build_data(config)
    vectors = embed(model.embedding_net, test, progress=False).vectors
    first, second, same = next(
        iter(PairSampler(test.labels, config.eval.pairs, 1, seed=config.eval.seed))
    )
    scores = score_pairs(model.logits, vectors, torch.as_tensor(first), torch.as_tensor(second))
    accepted = scores.numpy() >= manifest["threshold"]["value"]
    far = accepted[~same].mean()
    assert far <= 0.05
    assert accepted[same].mean() == pytest.approx(manifest["threshold"]["tar"], abs=1e-9)


@pytest.fixture(scope="module")
def tta_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export-tta") / "run"
    overrides = ["train.steps=10", "train.batch_size=16", "eval.pairs=200", "eval.tta=true"]
    assert main(["train", "--no-progress", "--run-dir", str(folder), *overrides]) == 0
    return folder


def test_tta_bundle_scores_equal_the_reports(tta_run: Path, tmp_path: Path) -> None:
    manifest = export_bundle(tta_run, tmp_path / "bundle")
    assert manifest["views"]["kind"] == "tta" and manifest["views"]["count"] == 9
    bundle = Bundle.load(tmp_path / "bundle")
    opened = open_run(tta_run)
    config, model = opened.config, opened.model
    _, test = build_data(config)
    first, second, _ = next(iter(PairSampler(test.labels, 64, 1, seed=1)))
    first, second = torch.as_tensor(first), torch.as_tensor(second)
    # What evaluate_run scores: nine-view embeddings through the model's pair head.
    views = tta_views(config.data.size)
    evaluated = embed(model.embedding_net, test, progress=False, views=views).vectors
    report_scores = score_pairs(model.logits, evaluated, first, second)
    served = bundle.embed_images(test.images)
    bundle_scores = bundle.score(served[first], served[second])
    torch.testing.assert_close(bundle_scores, report_scores, rtol=0, atol=1e-4)
    # One view scores differently: the comparison above can fail.
    single = embed(model.embedding_net, test, progress=False).vectors
    assert (score_pairs(model.logits, single, first, second) - report_scores).abs().max() > 1e-3
    # And the threshold: calibrated on the report's pairs with the report's embedding.
    results = tmp_path / "results.json"
    assert main(["eval", str(tta_run), "--no-progress", "--no-plots", "--json", str(results)]) == 0
    report = json.loads(results.read_text())
    assert report["data"]["views"] == 9
    assert manifest["threshold"]["value"] == pytest.approx(
        report["verification"]["eer_threshold"], abs=1e-9
    )


def test_format_1_distance_records_still_load(run: Path, tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    manifest = export_bundle(run, bundle_dir)
    assert "raw_weight" in manifest["distance"]  # written by Distance.to_dict
    new = Bundle.load(bundle_dir)
    old = {"name": manifest["distance"]["name"], "weights": manifest["distance"]["weights"]}
    (bundle_dir / "bundle.json").write_text(json.dumps({**manifest, "distance": old}))
    del_views = json.loads((bundle_dir / "bundle.json").read_text())
    del del_views["views"], del_views["split"]  # bundles written before views and splits
    (bundle_dir / "bundle.json").write_text(json.dumps(del_views))
    loaded = Bundle.load(bundle_dir)
    assert loaded.views is None and loaded.split is None
    torch.testing.assert_close(loaded.distance.weight, new.distance.weight, rtol=1e-6, atol=1e-7)


def test_bundle_records_onnx_open_set_threshold_and_dir(run: Path, tmp_path: Path) -> None:
    """Export writes ONNX, and an open-set threshold that meets its false-alarm rate on the
    calibration classes, recomputed here by brute force with the torch distance."""
    manifest = export_bundle(run, tmp_path / "bundle", target_far=0.05)
    assert (
        manifest["files"]["onnx"] == "embedder.onnx"
        and (tmp_path / "bundle/embedder.onnx").is_file()
    )
    open_set = manifest["open_set"]
    assert open_set["calibrated_on"] == "unseen test classes"
    opened = open_run(run)
    config, model = opened.config, opened.model
    _, test = build_data(config)
    vectors = embed(model.embedding_net, test, progress=False).vectors
    with torch.no_grad():
        matrix = model.distance.matrix(vectors, vectors).numpy()
    labels = test.labels.numpy()
    rng = np.random.default_rng(config.eval.seed)
    probes = np.sort(rng.permutation(len(labels))[: open_set["probes"]])
    impostor = np.where(labels[None, :] != labels[:, None], matrix, np.inf).min(1)[probes]
    # The runtime's numpy distance and torch's cdist differ by float32 rounding (~1e-7 here).
    assert (impostor <= open_set["distance"] - 1e-6).mean() <= 0.05
    assert (impostor <= open_set["distance"] + 1e-6).mean() > 0.05 - 1 / len(probes)  # the loosest
    report = open_set["test"]
    assert set(report["dir_at_far"]) == {"0.001", "0.01", "0.1"}
    assert all(0.0 <= v <= report["rank1"] for v in report["dir_at_far"].values())


def test_export_verify_and_index_print_no_torch_warnings(run: Path, tmp_path: Path) -> None:
    """torch's TorchScript deprecation and tracer notices are not the user's business."""
    config = open_run(run).config
    _, test = build_data(config)
    a = _png(tmp_path / "a.png", test.images[0])
    bundle_dir, gallery = tmp_path / "bundle", tmp_path / "gallery.index"
    for argv in (
        ["export", str(run), "-o", str(bundle_dir)],
        ["verify", str(bundle_dir), str(a), str(a)],
        ["index", "build", str(bundle_dir), "-o", str(gallery)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "metriclab", *argv],
            capture_output=True,
            text=True,
            timeout=300,
            # as a user runs it: Python's default filters (DeprecationWarning hidden)
            env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},
        )
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr, done.stderr
