"""Run folders record their class split; evaluation scores exactly the recorded classes."""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metriclab.assemble import build_data, split_validation
from metriclab.cli import main
from metriclab.config import resolve_config
from metriclab.runs import SPLIT, RecordedSplit, SplitWarning, open_run

FOLDER_RUN = [
    "data.name=image_folder",
    "data.size=16",
    "train.steps=4",
    "train.batch_size=8",
    "eval.n_way=3",
    "eval.k_shot=1",
    "eval.n_query=1",
    "eval.episodes=10",
    "eval.pairs=40",
]


def _class_folders(root: Path, names: list[str], seed: int) -> None:
    """One folder of four random grey 16 px PNGs per class name."""
    rng = np.random.default_rng(seed)
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (16, 16), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{i}.png")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> tuple[Path, Path]:
    """A run trained on a folder of 12 classes: (run folder, data folder)."""
    base = tmp_path_factory.mktemp("split")
    data = base / "data"
    _class_folders(data, [f"class{c:02d}" for c in range(12)], seed=0)
    run = base / "run"
    argv = ["train", "--no-progress", "--run-dir", str(run), f"data.path={data}", *FOLDER_RUN]
    assert main(argv) == 0
    return run, data


def test_a_new_run_records_its_split(folder_run: tuple[Path, Path]) -> None:
    run, data = folder_run
    record = json.loads((run / SPLIT).read_text())
    config = resolve_config(None, [f"data.path={data}", *FOLDER_RUN])
    train, test = build_data(config)
    assert record["train"] == list(train.class_names)
    assert record["test"] == list(test.class_names) and len(record["test"]) == 6
    assert record["validation"] == []
    assert record["data"]["name"] == "image_folder" and record["data"]["path"] == [str(data)]


def test_validation_classes_are_recorded_apart(tmp_path: Path) -> None:
    config = resolve_config(None, ["data.val_fraction=0.4", "eval.n_way=3"])
    train, test = build_data(config)
    fit, val = split_validation(train, config)
    split = RecordedSplit.of(config, fit, val, test)
    split.save(tmp_path)
    loaded = RecordedSplit.load(tmp_path)
    assert loaded == split and loaded.validation == val.class_names
    assert not set(loaded.validation) & set(loaded.train)


def test_added_class_folders_are_ignored_and_reported(
    folder_run: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    run, data = folder_run
    grown = tmp_path / "grown"
    shutil.copytree(data, grown)
    # Names that sort among the old ones: a redrawn split over 15 classes would move classes.
    _class_folders(grown, ["class00b", "class05b", "class10b"], seed=1)
    recorded = json.loads((run / SPLIT).read_text())
    results = tmp_path / "results.json"
    argv = ["eval", str(run), "--no-progress", "--no-plots", "--json", str(results),
            f"data.path={grown}"]  # fmt: skip
    capsys.readouterr()
    with warnings.catch_warnings():
        # The note is the command's output: a user's -W ignore / PYTHONWARNINGS must not hide it.
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: 3 class(es) in the data are not in the split recorded")
    assert "'class00b'" in err and "were ignored" in err
    written = json.loads(results.read_text())
    assert written["split"]["test"] == recorded["test"]
    assert written["split"]["ignored_classes"] == ["class00b", "class05b", "class10b"]
    assert written["split"]["notes"] and "ignored" in written["split"]["notes"][0]
    assert written["data"]["classes"] == 6
    # The same recorded classes, with the same labels, as on the original folder.
    with pytest.warns(SplitWarning):
        opened = open_run(run, [f"data.path={grown}"])
    assert opened.data.test.class_names == tuple(recorded["test"])
    original = open_run(run)
    assert original.notes == ()
    assert np.array_equal(opened.data.test.labels.numpy(), original.data.test.labels.numpy())
    assert np.array_equal(opened.data.test.images.numpy(), original.data.test.images.numpy())


def test_a_missing_recorded_class_is_refused(
    folder_run: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    run, data = folder_run
    shrunk = tmp_path / "shrunk"
    shutil.copytree(data, shrunk)
    gone = json.loads((run / SPLIT).read_text())["test"][0]
    shutil.rmtree(shrunk / gone)
    capsys.readouterr()
    argv = ["eval", str(run), "--no-progress", "--no-plots", f"data.path={shrunk}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: class {gone!r} of the split recorded in ")
    assert err.count("\n") == 1 and "point data.path at the data the run was trained on" in err


def test_split_keys_cannot_change_at_evaluation(folder_run: tuple[Path, Path], capsys) -> None:
    run, _ = folder_run
    capsys.readouterr()
    assert main(["eval", str(run), "--no-progress", "--no-plots", "data.split_seed=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.split_seed cannot change for run ") and "split.json" in err


def test_a_run_without_split_json_warns_and_draws_as_before(
    folder_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, _ = folder_run
    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    (old / SPLIT).unlink()
    with pytest.warns(SplitWarning, match="has no split.json"):
        opened = open_run(old)
    assert not opened.data.recorded
    assert opened.data.test.class_names == tuple(json.loads((run / SPLIT).read_text())["test"])
