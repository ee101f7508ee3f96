"""Checkpoints: everything a run needs to continue bit-for-bit, written atomically.

A checkpoint holds the model, the objective's own parameters (heads, class weights), the
optimiser, the schedule, torch's RNG state, the step, the early-stopping state and the config.
Files are ``checkpoints/step-XXXXXXX.pt`` (the last ``keep_last`` are kept) and
``checkpoints/best.pt`` (the best validation accuracy, when validation is on).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from metriclab.atomic import atomic_write

FOLDER = "checkpoints"
BEST = "best.pt"
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


def step_path(run_dir: Path, step: int) -> Path:
    return run_dir / FOLDER / f"step-{step:07d}.pt"


def step_checkpoints(run_dir: Path) -> list[Path]:
    """The step checkpoints of a run, oldest first."""
    folder = run_dir / FOLDER
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    try:
        with atomic_write(path, binary=True) as handle:
            torch.save(state, handle)
    except OSError as failure:
        raise OSError(
            f"cannot write checkpoint {path}: {failure.strerror or failure}; "
            "free disk space or choose another --run-dir"
        ) from None


def prune(run_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints."""
    for old in step_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: tensors and plain values, never code."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train a run there first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as failure:  # torch raises several types for bad or unsafe files
        reason = (
            "holds pickled code" if "weights_only" in str(failure) else "is truncated or corrupt"
        )
        raise ValueError(
            f"cannot load checkpoint {path}: it {reason} ({type(failure).__name__}); "
            "use a checkpoint written by metriclab"
        ) from None


def latest(run_dir: Path) -> Path | None:
    """The newest step checkpoint of a run, or None."""
    found = step_checkpoints(run_dir)
    return found[-1] if found else None


def for_evaluation(run_dir: Path) -> Path:
    """The checkpoint to evaluate: the best one if validation kept one, else the newest."""
    best = run_dir / FOLDER / BEST
    if best.is_file():
        return best
    newest = latest(run_dir)
    if newest is None:
        raise FileNotFoundError(
            f"run folder {run_dir} holds no checkpoint; train it with 'metriclab train --run-dir {run_dir}'"
        )
    return newest
