"""Two CPU ranks under torchrun (gloo) train a few steps; only rank 0 writes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from metriclab.training import checkpoints
from metriclab.training.metrics_log import read_metrics


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


def test_two_ranks_write_what_one_process_writes(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    overrides = [
        "train.objective=episodic",
        "model.distance=squared_l2",
        "train.n_way=4",
        "train.k_shot=1",
        "train.n_query=3",
        "train.steps=4",
        "train.checkpoint_every=2",
        "train.log_every=1",
    ]
    single, double = tmp_path / "single", tmp_path / "double"
    base = [sys.executable, "-m", "metriclab", "train", "--no-progress"]
    subprocess.run([*base, "--run-dir", str(single), *overrides], env=env, check=True, timeout=300)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                "--standalone", "-m", "metriclab", "train", "--no-progress"]  # fmt: skip
    for _attempt in range(2):
        shutil.rmtree(double, ignore_errors=True)
        done = subprocess.run(
            [*launcher, "--run-dir", str(double), *overrides],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        # A gloo rank dying of SIGABRT was seen in about 1 of 8 runs on a loaded 2-core machine
        # (not yet explained; see the issue 8 note): retry that one failure once, nothing else.
        if done.returncode == 0 or "Signal 6" not in done.stderr:
            break
    assert done.returncode == 0, done.stderr[-12000:]
    assert _files(double) == _files(single)
    assert [int(r["step"]) for r in read_metrics(double / "metrics.csv")] == [1, 2, 3, 4]
    state = checkpoints.load(checkpoints.step_path(double, 4))
    assert state["step"] == 4
