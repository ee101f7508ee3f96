"""``metriclab episodes make | show | import-omniglot-runs`` and their error contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metriclab import training
from metriclab.cli import main
from metriclab.config import resolve_config
from metriclab.data import EpisodeSet, load_omniglot_runs
from tests.data.test_omniglot_runs import write_runs


def test_make_draws_from_the_configs_unseen_classes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "set.jsonl"
    argv = ["episodes", "make", "--n-way", "3", "--k-shot", "2", "--n-query", "4"]
    assert main([*argv, "--count", "40", "--seed", "5", "-o", str(out)]) == 0
    assert f"wrote {out}: 40 episodes; fingerprint sha256:" in capsys.readouterr().out
    _train, test = training.build_data(resolve_config(None, []))
    loaded = EpisodeSet.load(out, data=test)
    expected = EpisodeSet.sample(test, 3, 2, 4, episodes=40, seed=5)
    np.testing.assert_array_equal(loaded.support, expected.support)
    np.testing.assert_array_equal(loaded.query, expected.query)
    assert set(loaded.classes.ravel()) <= set(test.class_names)
    assert loaded.meta["split"] == "test" and loaded.meta["seed"] == 5
    assert loaded.meta["command"].startswith("metriclab episodes make --config digits-siamese")


def test_make_defaults_follow_the_config_and_overrides(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    argv = ["episodes", "make", "--split", "train", "-o", str(out), "data.split_seed=3"]
    assert main([*argv, "eval.episodes=30", "eval.n_way=4"]) == 0
    train, _test = training.build_data(resolve_config(None, ["data.split_seed=3"]))
    loaded = EpisodeSet.load(out, data=train)
    assert (loaded.n_episodes, loaded.n_way, loaded.k_shot, loaded.n_query) == (30, 4, 1, 15)
    assert loaded.meta["config_data"]["split_seed"] == 3


def test_show_summarises(tmp_path: Path, capsys) -> None:
    out = tmp_path / "set.jsonl"
    assert main(["episodes", "make", "--count", "10", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["episodes", "show", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{out}: 10 episodes, 5-way 1-shot, 15 queries per class")
    assert "test split of config digits-siamese" in text and "command: metriclab" in text


def test_import_omniglot_runs(tmp_path: Path, capsys) -> None:
    write_runs(tmp_path / "runs", runs=2, classes=3)
    out = tmp_path / "runs.jsonl"
    assert main(["episodes", "import-omniglot-runs", str(tmp_path / "runs"), "-o", str(out)]) == 0
    assert "2 runs" in capsys.readouterr().out
    loaded = EpisodeSet.load(out)
    assert Path(loaded.meta["root"]).is_absolute()
    _episodes, images = load_omniglot_runs(loaded.meta["root"], size=21)
    loaded.check(images)
    assert (loaded.n_way, loaded.k_shot, loaded.n_query) == (3, 1, 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["make", "--n-way", "9"], "n_way=9 exceeds the 5 classes"),
        (["make", "--k-shot", "0"], "k_shot must be an integer of at least 1"),
        (["make", "--within-group"], "within_group needs data with groups"),
        (["make", "--n-query", "400"], "class '"),
        (["show", "/nonexistent/set.jsonl"], "episode file /nonexistent/set.jsonl does not exist"),
        (["import-omniglot-runs", "/nonexistent/runs"], "does not exist"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    out = tmp_path / "never.jsonl"
    extra = ["-o", str(out)] if argv[0] != "show" else []
    assert main(["episodes", *argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_truncated_file_through_the_real_command(tmp_path: Path) -> None:
    out = tmp_path / "set.jsonl"
    assert main(["episodes", "make", "--count", "5", "-o", str(out)]) == 0
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:3]))
    done = subprocess.run(
        [sys.executable, "-m", "metriclab", "episodes", "show", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {out} is truncated: it ends at line 3")
