"""Deprecated home of run folders and run evaluation, kept so that older imports work.

Run folders open with :func:`metriclab.runs.open_run` and runs are evaluated by
:func:`metriclab.evaluation.run.evaluate_run`; the two functions below keep their old return
shapes and warn with a :class:`DeprecationWarning` that names the replacement, so that one name
(``open_run``) does not mean two things for long.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from metriclab.config import Config
from metriclab.data import LabeledImages
from metriclab.evaluation.run import RESULTS, evaluate_run
from metriclab.models import SiameseNet
from metriclab.runs import Run
from metriclab.runs import open_run as _open


def open_run(
    run_dir: Path, overrides: list[str] | None = None
) -> tuple[Config, SiameseNet, tuple[LabeledImages, LabeledImages]]:
    """``(config, model, (train, test))`` of a run; see :func:`metriclab.runs.open_run`."""
    _deprecated("metriclab.training.open_run", "run.config, run.model, run.data.train/.test")
    run: Run = _open(run_dir, overrides)
    return run.config, run.model, (run.data.train, run.data.test)


def load_run(run_dir: Path, overrides: list[str] | None = None) -> tuple[Config, SiameseNet]:
    """``(config, model)`` of a run; see :func:`metriclab.runs.open_run`."""
    _deprecated("metriclab.training.load_run", "run.config, run.model")
    run = _open(run_dir, overrides)
    return run.config, run.model


def _deprecated(old: str, fields: str) -> None:
    # stacklevel 3: the warning points at the caller of the deprecated function.
    warnings.warn(
        f"{old} is deprecated; use run = metriclab.runs.open_run(run_dir), which returns a Run "
        f"({fields})",
        DeprecationWarning,
        stacklevel=3,
    )


__all__ = ["RESULTS", "evaluate_run", "load_run", "open_run"]
