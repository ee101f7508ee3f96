"""Checkpoints: everything a run needs to continue bit-for-bit, written atomically.

A checkpoint holds the model, the objective's own parameters (heads, class weights), the
optimiser, the schedule, torch's RNG state, the step, the early-stopping state and the config.
Files are ``checkpoints/step-XXXXXXX.pt`` (the last ``keep_last`` are kept) and
``checkpoints/best.pt`` (the best validation accuracy, when validation is on).
"""

from __future__ import annotations

import errno
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from metriclab.atomic import atomic_write

FOLDER = "checkpoints"
BEST = "best.pt"
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")
#: How a file written by ``torch.save`` begins: a zip archive (today) or a pickle (before 1.6).
_TORCH_HEADERS = (b"PK\x03\x04", b"\x80")
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


class DamagedCheckpointWarning(UserWarning):
    """The newest checkpoint of a run cannot be read, so an older kept one is used."""


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
        # atomic_write re-raises with the path in the message; the errno is on its context.
        context = failure.__context__
        cause = context if isinstance(context, OSError) and context.errno else failure
        if cause.errno in _NO_PERMISSION:
            fix = "make the run folder writable or choose another --run-dir"
        elif cause.errno == errno.ENOSPC:
            fix = "free disk space or choose another --run-dir"
        else:
            fix = "check the run folder or choose another --run-dir"
        raise OSError(f"cannot write checkpoint {path}: {cause.strerror or cause}; {fix}") from None


def prune(run_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints."""
    for old in step_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: tensors and plain values, never code."""
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a folder; give a .pt file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train a run there first")
    with path.open("rb") as handle:
        header = handle.read(4)
    if not header.startswith(_TORCH_HEADERS):
        raise ValueError(
            f"cannot load checkpoint {path}: it is not a file written by torch.save (it starts "
            f"with {header!r}); use a checkpoint written by metriclab"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as failure:  # torch raises several types for bad or unsafe files
        # The header check above set text and other files aside: a torch file that the
        # weights_only unpickler refuses holds objects other than tensors (pickled code).
        unsafe = "weights_only" in str(failure)
        reason = "holds pickled code" if unsafe else "is truncated or corrupt"
        raise ValueError(
            f"cannot load checkpoint {path}: it {reason} ({type(failure).__name__}); "
            "use a checkpoint written by metriclab"
        ) from None


def latest(run_dir: Path) -> Path | None:
    """The newest step checkpoint of a run, or None."""
    found = step_checkpoints(run_dir)
    return found[-1] if found else None


def newest_readable(run_dir: Path) -> Path | None:
    """The newest step checkpoint that loads, or None when there is none.

    A damaged newest file (a disk error; writes themselves are atomic) falls back to the older
    kept one, with a :class:`DamagedCheckpointWarning` naming both. When every kept file is
    damaged the newest one's error is raised.
    """
    found = step_checkpoints(run_dir)
    for older, path in enumerate(reversed(found)):
        try:
            load(path)
        except ValueError as failure:
            if older == len(found) - 1:
                raise ValueError(
                    f"{failure}; no older checkpoint of {run_dir} loads either"
                ) from None
            warnings.warn(
                f"{failure}; using the older checkpoint instead",
                DamagedCheckpointWarning,
                stacklevel=2,
            )
            continue
        return path
    return None


def for_evaluation(run_dir: Path) -> Path:
    """The checkpoint to evaluate: the best one if validation kept one, else the newest that
    loads (:func:`newest_readable`)."""
    best = run_dir / FOLDER / BEST
    if best.is_file():
        return best
    newest = newest_readable(run_dir)
    if newest is None:
        raise FileNotFoundError(
            f"run folder {run_dir} holds no checkpoint; train it with 'metriclab train --run-dir {run_dir}'"
        )
    return newest
