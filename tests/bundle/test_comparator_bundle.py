"""A run trained with a learned comparator exports a bundle that verifies pairs with it: the
report's verification figures equal the bundle's, ONNX serves it without torch, and bundles
without a comparator still score ``bias − distance``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metriclab.bundle import Bundle
from metriclab.cli import main
from metriclab.data import PairSampler
from metriclab.evaluation import verification_metrics
from metriclab.runs import open_run


def _report_pairs(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The report's verification pairs (its seed and count) as uint8 images, and whether alike."""
    opened = open_run(run)
    test, config = opened.data.test, opened.config
    first, second, same = next(
        iter(PairSampler(test.labels, config.eval.pairs, 1, seed=config.eval.seed))
    )
    images = test.images.numpy()
    return images[np.asarray(first)], images[np.asarray(second)], np.asarray(same), images


@pytest.mark.parametrize("backend", ["torchscript", "onnx"])
def test_bundle_verification_equals_the_reports(exported, backend: str) -> None:
    kind, run, bundle_dir, results = exported
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    assert manifest["comparator"]["name"] == kind
    assert manifest["format"] == 2  # a format-1 runtime would score it as bias − distance
    assert manifest["comparator"]["files"]["onnx"] == "pair_scorer.onnx"
    bundle = Bundle.load(bundle_dir, backend)
    assert bundle.comparator is not None and bundle.comparator.name == backend
    first, second, same, _ = _report_pairs(run)
    scores = bundle.score(bundle.embed(first), bundle.embed(second))
    ours = verification_metrics(scores, same)
    report = results["verification"]
    assert ours.auc == pytest.approx(report["auc"], abs=1e-4)
    assert ours.eer == pytest.approx(report["eer"], abs=1e-4)
    # The comparator's score, not bias − distance: the two differ on these pairs.
    a, b = bundle.embed(first[:20]), bundle.embed(second[:20])
    plain = bundle.bias - bundle.scorer.pairwise(a, b)
    assert np.abs(bundle.score(a, b) - plain).max() > 1e-3
    # Torch tensors in, torch tensors out, the same values.
    tensor = bundle.score(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(tensor.numpy(), bundle.score(a, b), atol=1e-6)


def test_relation_pair_score_is_the_one_shot_episode_score(exported) -> None:
    """The pair score is what the comparator gives a query against a one-shot class."""
    kind, run, bundle_dir, _ = exported
    comparator = open_run(run).model.comparator
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, comparator.dim, generator=g), torch.randn(7, comparator.dim, generator=g)
    with torch.no_grad():
        pair = comparator.pair_scores(a, b)
        if kind == "relation":  # one episode per pair: 1 way, 1 shot, 1 query
            episode = comparator(a.view(7, 1, 1, -1), b.view(7, 1, -1)).view(7)
            torch.testing.assert_close(pair, episode)
        else:  # matching: the cosine of the two embeddings
            torch.testing.assert_close(pair, torch.nn.functional.cosine_similarity(a, b))
    scorer = Bundle.load(bundle_dir, "onnx").comparator
    assert scorer is not None
    np.testing.assert_allclose(scorer(a.numpy(), b.numpy()), pair.numpy(), atol=1e-5)


_PROGRAM = """
import json, sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError
from pathlib import Path
from metriclab.bundle import Bundle
bundle = Bundle.load(Path(sys.argv[1]))
score, same = bundle.verify(Path(sys.argv[2]), Path(sys.argv[3]))
print(json.dumps([bundle.engine.name, bundle.comparator.name, score, same]))
"""


def test_comparator_bundle_verifies_without_torch(exported, tmp_path: Path, capsys) -> None:
    _, run, bundle_dir, _ = exported
    *_, images = _report_pairs(run)
    files = []
    for i in (0, 9):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(images[i, 0]).save(files[-1])
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(bundle_dir), *map(str, files)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    engine, scorer, score, same = json.loads(done.stdout)
    assert engine == scorer == "onnx"
    expected, expected_same = Bundle.load(bundle_dir, "torchscript").verify(*files)
    assert score == pytest.approx(expected, abs=1e-4) and same == expected_same
    capsys.readouterr()
    assert main(["verify", str(bundle_dir), *map(str, files)]) == (0 if same else 1)
    assert "comparator's pair score" in capsys.readouterr().out


def test_bundles_without_a_comparator_score_bias_minus_distance(bundle_dir: Path) -> None:
    """The shared plain bundle (conftest): no comparator record, the Siamese logit as before."""
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    assert "comparator" not in manifest and manifest["format"] == 1
    bundle = Bundle.load(bundle_dir, "onnx")
    assert bundle.comparator is None
    g = np.random.default_rng(0)
    a, b = g.normal(size=(4, 64)).astype(np.float32), g.normal(size=(4, 64)).astype(np.float32)
    np.testing.assert_allclose(bundle.score(a, b), bundle.bias - bundle.scorer.pairwise(a, b))


@pytest.mark.parametrize("written", [3, 0, "2"])
def test_a_bundle_format_this_runtime_does_not_read_is_refused_by_name(
    bundle_dir: Path, tmp_path: Path, written: object
) -> None:
    copy = tmp_path / "bundle"
    copy.mkdir()
    for file in bundle_dir.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    manifest = json.loads((copy / "bundle.json").read_text())
    (copy / "bundle.json").write_text(json.dumps({**manifest, "format": written}))
    with pytest.raises(ValueError, match=rf"bundle format {written!r} .* reads formats 1 to 2"):
        Bundle.load(copy, "onnx")
