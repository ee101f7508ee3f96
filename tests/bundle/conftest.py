"""Tiny exported bundles (a plain one of 10 training steps, TorchScript + ONNX, and one per learned
comparator) and folders of their test digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metriclab.cli import main
from metriclab.runs import open_run


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    run = root / "run"
    overrides = ["train.steps=10", "train.batch_size=16", "eval.pairs=200"]
    assert main(["train", "--no-progress", "--run-dir", str(run), *overrides]) == 0
    assert main(["export", str(run), "-o", str(root / "bundle")]) == 0
    return root / "bundle"


@pytest.fixture(scope="session")
def test_digits(bundle_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The run's unseen test digits: uint8 images (N, 1, 16, 16), labels (N,), class names."""
    run = open_run(bundle_dir.parent / "run")
    test = run.data.test
    return test.images.numpy(), test.labels.numpy(), list(test.class_names)


def write_class_folders(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str],
                        per_class: int, classes: list[int] | None = None, start: int = 0) -> Path:  # fmt: skip
    """PNG files ``root/<class>/<i>.png``: ``per_class`` images of each class from index ``start``."""
    for label in classes if classes is not None else range(len(names)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(labels == label)[start : start + per_class]:
            Image.fromarray(images[i, 0], mode="L").save(folder / f"{i:04d}.png")
    return root


COMMON = ["train.n_way=5", "train.k_shot=1", "train.n_query=3", "train.steps=6", "eval.pairs=300"]
KINDS = {
    "relation": ["train.objective=relation", "model.comparator=relation"],
    "matching": ["train.objective=matching", "model.comparator=matching"],
}


@pytest.fixture(scope="session", params=list(KINDS))
def exported(request, tmp_path_factory) -> tuple[str, Path, Path, dict]:
    """(kind, run folder, bundle folder, the run's results.json) for a tiny comparator run."""
    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    run, bundle = root / "run", root / "bundle"
    assert main(["train", "--no-progress", "--run-dir", str(run), *KINDS[kind], *COMMON]) == 0
    results = root / "results.json"
    argv = ["eval", str(run), "--no-progress", "--no-plots", "--json", str(results)]
    assert main(argv) == 0
    assert main(["export", str(run), "-o", str(bundle)]) == 0
    return kind, run, bundle, json.loads(results.read_text())
