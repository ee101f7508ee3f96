"""End to end: train a few steps on digits, evaluate, and the CLI's error contract."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metriclab.cli import main


def test_train_then_eval_end_to_end(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    overrides = ["train.steps=20", "train.batch_size=32", "eval.episodes=50", "eval.pairs=200"]
    assert main(["train", "--no-progress", "--run-dir", str(run), *overrides]) == 0
    assert (run / "checkpoints/step-0000020.pt").is_file() and (run / "config.yaml").is_file()
    published = Path(__file__).parents[1] / "episodes" / "digits-5way-1shot.jsonl"
    argv = ["eval", str(run), "--no-progress", "--episodes", str(published), "eval.scorer=siamese"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "5-way 1-shot (seeded) accuracy" in out and "ROC AUC" in out
    results = json.loads((run / "results.json").read_text())
    seeded = results["episodes"]["5-way 1-shot (seeded)"]
    # Above chance (20 %, AUC 0.5) by more than the noise: a model or scorer that lost the
    # labels (constant embeddings, shuffled support) stays at chance. These 20 steps score about
    # 31.4 % and 31.8 %, AUC 0.54; the run is deterministic (train.threads=1).
    assert seeded["episodes"] == 50 and seeded["accuracy"] - seeded["ci95"] > 0.22
    published_result = results["episodes"]["digits-5way-1shot"]
    assert published_result["episodes"] == 1000
    assert published_result["accuracy"] - published_result["ci95"] > 0.22
    assert 0.5 < results["verification"]["auc"] <= 1.0
    for figure in ("curves.png", "roc.png", "embeddings.png"):
        assert (run / figure).read_bytes().startswith(b"\x89PNG")
    assert results["data"]["views"] == 1
    tta = tmp_path / "tta.json"
    argv = ["eval", str(run), "--no-progress", "--no-plots", "--json", str(tta), "eval.tta=true"]
    assert main(argv) == 0
    assert "mean of 9 views per image" in capsys.readouterr().out
    assert json.loads(tta.read_text())["data"]["views"] == 9


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "trian.steps=3"],
            "unknown config key 'trian.steps'; did you mean 'train.steps'?",
        ),
        (["train", "eval.n_way=9"], "eval.n_way=9 exceeds the 5 unseen classes"),
        (["eval", "/nonexistent/run"], "run folder /nonexistent/run does not exist"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(argv: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "metriclab", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert "Traceback" not in done.stderr


def test_checkpoint_with_pickled_code_is_refused(tmp_path, capsys) -> None:
    import pickle

    run = tmp_path / "evil"
    run.mkdir()

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    (run / "checkpoints").mkdir()
    (run / "checkpoints/step-0000020.pt").write_bytes(pickle.dumps(Boom()))
    assert main(["eval", str(run), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "pwned" not in captured.out
    assert "cannot load checkpoint" in captured.err and "pickled code" in captured.err
