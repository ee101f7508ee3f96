"""A tiny exported bundle (10 training steps, TorchScript + ONNX) and folders of its test digits."""

from __future__ import annotations

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
