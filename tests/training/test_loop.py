"""The training loop: every objective trains, checkpoints resume exactly, faults are one clear error."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metriclab.config import ConfigError, resolve_config
from metriclab.runs import open_run
from metriclab.training import NonFiniteLoss, Trainer, checkpoints, train
from metriclab.training.loop import resume_config
from metriclab.training.metrics_log import read_metrics

FAST = ["train.batch_size=16", "eval.episodes=20", "eval.pairs=100", "train.log_every=1"]


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.objective=siamese", "train.loss=verification"],
        [
            "train.objective=episodic",
            "model.distance=squared_l2",
            "train.n_way=5",
            "train.k_shot=2",
            "train.n_query=3",
        ],
        ["train.objective=classifier", "train.loss=cross_entropy", "model.distance=cosine"],
        ["train.objective=siamese", "train.loss=contrastive", "model.distance=l2"],
        [
            "train.objective=triplet",
            "train.loss=triplet",
            "train.loss_params.mining=batch_hard",
            "train.classes_per_batch=4",
            "train.samples_per_class=4",
        ],
        [
            "train.objective=triplet",
            "train.loss=pml:TripletMarginLoss",
            "model.distance=l2",
            "train.miner=pml:BatchHardMiner",
            "train.classes_per_batch=4",
            "train.samples_per_class=4",
        ],
        ["train.objective=classifier", "train.loss=camri", "train.loss_params.margins={0: 0.3}"],
        [
            "train.objective=classifier",
            "train.loss=ohem",
            "train.loss_params.keep=0.5",
            "train.loss_params.loss={name: cosine, params: {ce_weight: 0.1, num_classes: 5}}",
        ],
        ["train.objective=classifier", "train.loss=hard_mining"],
        ["train.objective=classifier", "train.loss=complement_cross_entropy"],
        ["train.objective=classifier", "train.loss=pml:ArcFaceLoss"],
    ],
    ids=[
        "siamese",
        "episodic",
        "classifier",
        "contrastive",
        "triplet",
        "pml-triplet",
        "camri",
        "ohem-cosine",
        "hmloss",
        "cce",
        "pml-arcface",
    ],
)
def test_each_objective_trains_and_checkpoints(tmp_path: Path, overrides: list[str]) -> None:
    config = resolve_config(None, [*FAST, "train.steps=6", "train.checkpoint_every=3", *overrides])
    model = train(config, tmp_path / "run", progress=False)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert [p.name for p in checkpoints.step_checkpoints(tmp_path / "run")] == [
        "step-0000003.pt",
        "step-0000006.pt",
    ]
    loaded = open_run(tmp_path / "run").model
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # It learned: on the same batches (a step's batch is fixed by its index), the trained
    # weights give a lower loss than the initial ones.
    assert _loss_on_first_batches(config, tmp_path / "run") < _loss_on_first_batches(config, None)


def test_the_old_run_openers_warn_and_keep_their_shapes(tmp_path: Path) -> None:
    from metriclab import training

    train(resolve_config(None, [*FAST, "train.steps=2"]), tmp_path / "run", progress=False)
    run = open_run(tmp_path / "run")
    with pytest.warns(DeprecationWarning, match=r"metriclab\.runs\.open_run"):
        config, model, (train_set, test_set) = training.open_run(tmp_path / "run")
    with pytest.warns(DeprecationWarning, match="load_run is deprecated"):
        same_config, same_model = training.load_run(tmp_path / "run")
    assert config == run.config == same_config
    assert train_set.labels.tolist() == run.data.train.labels.tolist()
    assert test_set.labels.tolist() == run.data.test.labels.tolist()
    for a, b in zip(model.state_dict().values(), same_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _loss_on_first_batches(config, run: Path | None) -> float:
    """The mean loss over the batches of steps 1-6 with the weights of ``run`` (None: initial)."""
    trainer = Trainer(config, run or Path("unused-run-folder"), progress=False)
    if run is not None:
        trainer.restore(checkpoints.latest(run))
    with torch.no_grad():
        return sum(float(trainer.step_loss(step)[0]) for step in range(1, 7)) / 6


def test_validation_keeps_best_and_stops_early(tmp_path: Path) -> None:
    config = resolve_config(
        None,
        [
            *FAST,
            "train.steps=40",
            "train.validate_every=2",
            "train.patience=1",
            "train.val_episodes=10",
            "data.val_fraction=0.4",
            "eval.n_way=3",
            "train.checkpoint_every=100",
        ],
    )
    train(config, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert any(r["val_accuracy"] for r in rows)
    # patience=1 stops at the first validation without improvement, long before step 40.
    assert int(rows[-1]["step"]) < 40


def test_non_finite_loss_names_step_and_last_checkpoint(tmp_path: Path, monkeypatch) -> None:
    config = resolve_config(None, [*FAST, "train.steps=10", "train.checkpoint_every=2"])
    trainer = Trainer(config, tmp_path, progress=False)
    real = trainer.objective.loss

    def poisoned(model, step):
        loss, used = real(model, step)
        return (loss * float("nan") if step == 3 else loss), used

    monkeypatch.setattr(trainer.objective, "loss", poisoned)
    with pytest.raises(
        NonFiniteLoss, match=r"at step 3; the last good checkpoint is .*step-0000002\.pt"
    ):
        trainer.run()


def test_a_diverging_learning_rate_is_named_with_its_step(tmp_path: Path) -> None:
    """Weights blown up by a huge lr make the loss refuse its NaN inputs: still the one message."""
    config = resolve_config(None, [*FAST, "train.steps=30", "train.lr=1e6"])
    with pytest.raises(NonFiniteLoss, match=r"at step \d+; .*lower train.lr"):
        train(config, tmp_path / "run", progress=False)


def test_existing_run_needs_resume(tmp_path: Path) -> None:
    config = resolve_config(None, [*FAST, "train.steps=2"])
    train(config, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(config, tmp_path, progress=False)
    changed = resolve_config(None, [*FAST, "train.steps=2", "train.lr=0.5"])
    with pytest.raises(ConfigError, match=r"train.lr: 0.001 → 0.5"):
        train(changed, tmp_path, resume=True, progress=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "metriclab", "train", "--no-progress", *args]


def test_resume_after_sigkill_is_bit_identical(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    overrides = [
        "train.steps=60",
        "train.batch_size=8",
        "train.checkpoint_every=5",
        "train.keep_last=30",
    ]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    subprocess.run(_cli("--run-dir", str(whole), *overrides), env=env, check=True, timeout=300)

    victim = subprocess.Popen(_cli("--run-dir", str(broken), *overrides), env=env)
    deadline = time.monotonic() + 240
    while not checkpoints.step_path(broken, 10).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not checkpoints.step_path(broken, 60).exists(), (
        "the run finished before it could be killed"
    )

    subprocess.run(_cli("--resume", str(broken)), env=env, check=True, timeout=300)
    a = checkpoints.load(checkpoints.step_path(whole, 60))
    b = checkpoints.load(checkpoints.step_path(broken, 60))
    for name in ("model", "optimizer"):
        flat_a, flat_b = _tensors(a[name]), _tensors(b[name])
        assert flat_a.keys() == flat_b.keys()
        for key in flat_a:
            assert torch.equal(flat_a[key], flat_b[key]), f"{name} {key} differs after resume"
    rows = read_metrics(broken / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(10, 61, 10))


def _tensors(tree, prefix: str = "") -> dict[str, torch.Tensor]:
    found = {}
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.update(_tensors(value, f"{prefix}/{key}"))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            found.update(_tensors(value, f"{prefix}/{i}"))
    return found


def test_faults_are_one_clear_error(tmp_path: Path, capsys) -> None:
    from metriclab.cli import main

    run = tmp_path / "run"
    assert main(["train", "--no-progress", "--run-dir", str(run), *FAST, "train.steps=2"]) == 0
    capsys.readouterr()
    # A 1-channel model on 3-channel data.
    tree = tmp_path / "rgb"
    for name in ("a", "b", "c", "d"):
        (tree / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(tree / name / f"{i}.png")
    argv = ["eval", str(run), "--no-progress", "--no-plots", "data.name=image_folder",
            f"data.path={tree}", "data.channels=3", "eval.n_way=2", "eval.n_query=1"]  # fmt: skip
    assert main(argv) == 2
    assert (
        "trained on 1-channel images but the data (image_folder) has 3" in capsys.readouterr().err
    )
    # A truncated checkpoint.
    newest = checkpoints.latest(run)
    newest.write_bytes(newest.read_bytes()[:1000])
    assert main(["eval", str(run), "--no-progress"]) == 2
    assert "is truncated or corrupt" in capsys.readouterr().err
    # An unwritable run folder (a path through a regular file), unknown choices.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "--no-progress", "--run-dir", str(blocker / "run"), "train.steps=1"]) == 2
    assert "cannot create run folder" in capsys.readouterr().err
    for override, message in (
        (
            "train.objective=magic",
            "unknown objective 'magic' for train.objective; choose one of siamese",
        ),
        ("train.loss=tripplet", "did you mean 'triplet'"),
        ("model.backbone=conv5", "unknown backbone 'conv5'"),
    ):
        assert main(["train", "--no-progress", "--run-dir", str(tmp_path / "x"), override]) == 2
        assert message in capsys.readouterr().err


def test_resume_overrides_apply_to_the_runs_config(tmp_path: Path, capsys) -> None:
    from metriclab.cli import main

    # A non-default config: overrides applied to the default config would report these as changes.
    made = [*FAST, "train.lr=0.002", "train.checkpoint_every=3", "train.keep_last=10"]
    short, whole = tmp_path / "short", tmp_path / "whole"
    assert main(["train", "--no-progress", "--run-dir", str(short), *made, "train.steps=6"]) == 0
    assert main(["train", "--no-progress", "--run-dir", str(whole), *made, "train.steps=12"]) == 0
    assert main(["train", "--no-progress", "--resume", str(short), "train.steps=12"]) == 0
    resumed = resume_config(short, None)
    assert resumed.train.steps == 12 and resumed.train.lr == 0.002
    # Training longer continues the run exactly: each step's randomness is (seed, step) alone.
    a = checkpoints.load(checkpoints.step_path(whole, 12))
    b = checkpoints.load(checkpoints.step_path(short, 12))
    for key, value in _tensors(a["model"]).items():
        assert torch.equal(value, _tensors(b["model"])[key]), key
    assert b["config"]["train"]["steps"] == 12
    capsys.readouterr()
    for argv, message in (
        (["train.lr=0.1"], "error: train.lr cannot change when resuming"),
        (["--config", "digits-siamese"], "error: --config cannot be combined with --resume"),
        (["train.steps=3"], "error: train.steps=3 is below step 12"),
    ):
        assert main(["train", "--no-progress", "--resume", str(short), *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1


def test_cosine_runs_refuse_a_new_length(tmp_path: Path) -> None:
    config = resolve_config(None, [*FAST, "train.steps=2", "train.schedule=cosine"])
    train(config, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="cosine schedule anneals the learning rate over"):
        train(None, tmp_path, resume=True, progress=False, overrides=["train.steps=4"])
    # Cadence keys stay free under any schedule.
    assert resume_config(tmp_path, None, ["train.log_every=5"]).train.log_every == 5


def test_resume_asks_the_schedule_whether_its_length_is_fixed(tmp_path: Path) -> None:
    """A schedule registered from outside, declared ``fixed_length``, is refused a new length
    under its own name; the undeclared built-ins (``step``) let the run train longer."""
    from metriclab.optim import SCHEDULES, fixed_length, length_is_fixed

    @fixed_length
    def toy_linear(optimizer, *, steps: int, step_size: int, gamma: float):
        return torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, total_iters=steps)

    assert length_is_fixed("cosine") and not length_is_fixed("step")
    assert not length_is_fixed("none")
    SCHEDULES.register("toy_linear", toy_linear)
    try:
        fixed, free = tmp_path / "fixed", tmp_path / "free"
        train(
            resolve_config(None, [*FAST, "train.steps=2", "train.schedule=toy_linear"]),
            fixed,
            progress=False,
        )
        with pytest.raises(ConfigError, match="its toy_linear schedule anneals"):
            resume_config(fixed, None, ["train.steps=4"])
    finally:
        SCHEDULES.unregister("toy_linear")
    train(
        resolve_config(None, [*FAST, "train.steps=2", "train.schedule=step"]), free, progress=False
    )
    assert resume_config(free, None, ["train.steps=4"]).train.steps == 4
