"""Training metrics: ``metrics.csv`` in the run folder, and TensorBoard when it is installed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from metriclab.atomic import write_text

#: ``loss`` is the step's total; ``extra_loss`` the weighted ``train.extra_loss`` term within it
#: (empty without one).
COLUMNS = ("step", "loss", "lr", "images_per_s", "val_accuracy", "extra_loss")


class MetricsLog:
    """Appends one row per logged step; on resume, rows past the resumed step are dropped."""

    def __init__(self, run_dir: Path, resume_step: int, enabled: bool = True) -> None:
        self.path = run_dir / "metrics.csv"
        self.enabled = enabled
        self.tensorboard = None
        if not enabled:
            return
        kept = [row for row in read_metrics(self.path) if int(row["step"]) <= resume_step]
        # .get: a run logged before a column existed resumes with that column empty.
        lines = [",".join(COLUMNS)] + [",".join(row.get(c) or "" for c in COLUMNS) for row in kept]
        write_text(self.path, "\n".join(lines) + "\n")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.tensorboard = SummaryWriter(
            log_dir=str(run_dir / "tensorboard"), purge_step=resume_step + 1
        )

    def write(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = [str(step)] + [_format(values.get(c)) for c in COLUMNS[1:]]
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(",".join(row) + "\n")
        if self.tensorboard is not None:
            for name, value in values.items():
                if value is not None:
                    self.tensorboard.add_scalar(name, value, step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _format(value: Any) -> str:
    return "" if value is None else f"{value:.6g}"


def read_metrics(path: Path) -> list[dict[str, str]]:
    """The rows of a ``metrics.csv`` (empty when the file does not exist)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
