"""Multi-process training: two CPU ranks (gloo) against one process.

1. Under torchrun two ranks train a few steps and write what one process writes (rank 0 only).
2. Two ranks give every parameter the gradient one process gives it, and the same loss. The
   reference is the plain single-process step on the whole global batch ``B``; the two ranks each
   embed ``B / 2`` and gather the rest (:meth:`World.gather`). BatchNorm is put in eval mode on
   both sides, because per-rank batch statistics differ from full-batch ones by design (on CPU
   there is no SyncBatchNorm to compare with).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metriclab.config import Config, resolve_config
from metriclab.training import checkpoints
from metriclab.training.distributed import World
from metriclab.training.loop import Trainer
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


#: (objective, loss, distance, extra overrides): every kind of parameter outside the embedding
#: network: Siamese bias and WeightedL1 weights, CAMRI class weights, a linear head, and the
#: in-batch (cross-rank) mining of the triplet and episodic objectives.
CASES = {
    "siamese-verification": ["train.objective=siamese", "train.loss=verification",
                             "model.distance=weighted_l1", "train.batch_size=8"],
    "siamese-contrastive": ["train.objective=siamese", "train.loss=contrastive",
                            "model.distance=weighted_l1", "train.batch_size=8"],
    "classifier-camri": ["train.objective=classifier", "train.loss=camri",
                         "train.loss_params.margins={0: 0.4}", "model.distance=cosine",
                         "train.batch_size=16"],
    "classifier-head": ["train.objective=classifier", "train.loss=cross_entropy",
                        "model.distance=cosine", "train.batch_size=16"],
    "triplet": ["train.objective=triplet", "train.loss=triplet", "model.distance=l2",
                "train.classes_per_batch=4", "train.samples_per_class=4"],
    "episodic": ["train.objective=episodic", "model.distance=squared_l2", "train.n_way=4",
                 "train.k_shot=1", "train.n_query=3"],
}  # fmt: skip


def _config(case: str) -> Config:
    common = ["model.width=0.25", "model.dim=16", "train.seed=3", "train.steps=2"]
    return resolve_config("digits-siamese", [*common, *CASES[case]])


def _one_step(config: Config, run_dir: Path, world: World) -> dict[str, torch.Tensor]:
    """Loss and every parameter's gradient after one step's backward (no optimiser step)."""
    trainer = Trainer(config, run_dir, progress=False, world=world)
    trainer.model.eval()  # BatchNorm on running statistics on both sides
    loss, _ = trainer.step_loss(1)
    loss.backward()
    named = trainer.step_loss.named_parameters()
    grads = {
        name.removeprefix("module."): p.grad.clone() for name, p in named if p.grad is not None
    }
    return {"loss": loss.detach(), **{f"grad:{k}": v for k, v in grads.items()}}


def _rank(rank: int, port: int, folder: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        world = World(rank=rank, size=2)
        results = {case: _one_step(_config(case), Path(folder) / case, world) for case in CASES}
        torch.save(results, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, dict[str, torch.Tensor]]]:
    folder = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_rank, args=(_free_port(), str(folder)), nprocs=2, start_method="spawn")
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_match_one_process(
    case: str, two_ranks: list[dict[str, dict[str, torch.Tensor]]], tmp_path: Path
) -> None:
    single = _one_step(_config(case), tmp_path, World())
    outside = [k for k in single if k.startswith("grad:") and ".embedding_net." not in k]
    # The cases that exist for their parameters outside the embedding network do have some.
    assert outside or case in ("triplet", "episodic")
    for rank, results in enumerate(two_ranks):
        double = results[case]
        assert set(double) == set(single), f"rank {rank}"
        for key, expected in single.items():
            torch.testing.assert_close(
                double[key],
                expected,
                rtol=1e-4,
                atol=1e-6,
                msg=lambda m, rank=rank, key=key: f"{case} rank {rank} {key}: {m}",
            )
