"""Training from disk: the same seeds give the same batches, hence the same weights, as memory;
a folder of RGB photos over the memory budget trains and evaluates from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metriclab.cli import main
from metriclab.config import resolve_config
from metriclab.training import train
from tests.data.photos import write_photos


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos") / "set", classes=6, per_class=8)


def _overrides(photos: Path, objective: list[str]) -> list[str]:
    return [
        "data.name=image_folder", f"data.path={photos}", "data.size=24", "data.channels=3",
        "data.test_fraction=0.34", "model.width=0.25", "model.dim=16", "train.steps=3",
        "train.log_every=1", "eval.n_way=2", *objective,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "objective",
    [
        ["train.objective=siamese", "train.batch_size=8", "data.augment=photo"],
        ["train.objective=triplet", "train.loss=triplet", "train.classes_per_batch=3",
         "train.samples_per_class=3", "model.distance=l2"],
    ],
)  # fmt: skip
def test_disk_trains_to_the_weights_memory_trains_to(
    photos: Path, tmp_path: Path, objective: list[str]
) -> None:
    models = {}
    for storage in ("memory", "disk"):
        config = resolve_config(None, [*_overrides(photos, objective), f"data.storage={storage}"])
        models[storage] = train(config, tmp_path / storage, progress=False)
    for key, value in models["memory"].state_dict().items():
        assert torch.equal(value, models["disk"].state_dict()[key]), key
    memory_log = (tmp_path / "memory" / "metrics.csv").read_text().splitlines()
    disk_log = (tmp_path / "disk" / "metrics.csv").read_text().splitlines()
    losses = [[row.split(",")[1] for row in log[1:]] for log in (memory_log, disk_log)]
    assert losses[0] == losses[1]


def test_photos_over_the_budget_train_and_evaluate_from_the_command_line(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = [*_overrides(photos, ["data.augment=photo", "train.batch_size=8"]),
            "data.storage=auto", "data.memory_budget=0.00001", "eval.episodes=20",
            "eval.pairs=50", "eval.n_query=2"]  # fmt: skip
    assert main(["train", "--no-progress", "--run-dir", str(run), *argv]) == 0
    assert "streamed from disk" in capsys.readouterr().err
    assert main(["eval", str(run), "--no-progress", "--no-plots"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert "streamed from disk" in capsys.readouterr().err
    seeded = results["episodes"]["2-way 1-shot (seeded)"]
    assert seeded["episodes"] == 20 and 0.0 <= seeded["accuracy"] <= 1.0
    assert 0.0 <= results["verification"]["auc"] <= 1.0
    # Export and verify take the RGB photos too.
    assert main(["export", str(run), "-o", str(tmp_path / "bundle")]) == 0
    a, b = sorted(photos.glob("c0/*"))[:2]
    assert main(["verify", str(tmp_path / "bundle"), str(a), str(b)]) == 0
    assert "same" in capsys.readouterr().out


@pytest.mark.parametrize("copies", [["data.rotations=[90]"], ["data.mirror=true"]])
def test_class_copies_and_disk_storage_are_one_clear_error(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], copies: list[str]
) -> None:
    """``disk`` is refused by config validation; ``auto`` that chose disk, when training starts."""
    base = [*_overrides(photos, ["train.batch_size=8"]), *copies]
    for storage in (["data.storage=disk"], ["data.storage=auto", "data.memory_budget=0.00001"]):
        argv = ["train", "--no-progress", "--run-dir", str(tmp_path / storage[0][-4:]), *base]
        assert main([*argv, *storage]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err[-1].startswith("error: data.rotations and data.mirror copy the decoded")
        assert "streams them from disk; set data.storage=memory" in err[-1]
        assert not any("Traceback" in line for line in err)


def test_skip_bad_trains_and_lists_the_files_in_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_photos(tmp_path / "photos", classes=6, per_class=8)
    (root / "c3" / "005.jpg").write_bytes(b"not a jpeg")
    base = [*_overrides(root, ["train.batch_size=8"]), "data.storage=disk"]
    run = tmp_path / "run"
    assert main(["train", "--no-progress", "--run-dir", str(run), *base, "data.skip_bad=true"]) == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if "data.skip_bad" in line]
    assert len(notices) == 1 and "skipped 1 file(s)" in notices[0]
    assert (run / "skipped.txt").read_text() == f"{root / 'c3' / '005.jpg'}\n"
