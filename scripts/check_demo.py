"""Does a fresh ``make demo`` print the figures the README publishes?

Trains and evaluates the digits default in a temporary folder, exactly as ``make demo`` does
(``metriclab train`` then ``metriclab eval``), and compares every value of the README's demo table
with the new ``results.json``. Exit status 0 when all agree, 1 (listing each difference) when not.

    python scripts/check_demo.py                     # a fresh run, several minutes on a busy CPU
    python scripts/check_demo.py --results FILE      # compare an existing results.json instead

The digits default fixes ``train.threads=1``: float sums depend on how they are split between
threads, so a fixed count is what makes the figures the same on any machine of this kind.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _percent(value: float) -> str:
    return f"{100 * value:.2f} %"


#: README row label (its start) → the cell a results.json gives for it.
ROWS: dict[str, Callable[[dict[str, Any]], str]] = {
    "5-way 1-shot accuracy": lambda r: (
        f"{100 * r['episodes']['5-way 1-shot (seeded)']['accuracy']:.2f} ± "
        f"{100 * r['episodes']['5-way 1-shot (seeded)']['ci95']:.2f} %"
    ),
    "kNN accuracy": lambda r: _percent(r["knn"]["accuracy"]),
    "retrieval precision@1": lambda r: " / ".join(
        _percent(r["knn"][key]) for key in ("precision_at_1", "r_precision", "map_at_r")
    ),
    "verification ROC AUC": lambda r: (
        f"{r['verification']['auc']:.4f} / {_percent(r['verification']['eer'])}"
    ),
}


def published(readme: str) -> dict[str, str]:
    """The value cell of each demo-table row of the README, by row label."""
    found = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for label in ROWS:
            if len(cells) == 2 and cells[0].startswith(label):
                found[label] = cells[1]
    missing = [label for label in ROWS if label not in found]
    if missing:
        raise SystemExit(f"error: README.md has no demo-table row for {', '.join(missing)}")
    return found


def fresh_results(folder: Path) -> dict[str, Any]:
    """Train and evaluate the digits default in ``folder``, as ``make demo`` does."""
    run = folder / "runs" / "demo"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    for argv in (
        ["train", "--run-dir", str(run), "--no-progress"],
        ["eval", str(run), "--no-progress", "--no-plots"],
    ):
        subprocess.run([sys.executable, "-m", "metriclab", *argv], cwd=folder, env=env, check=True)
    return json.loads((run / "results.json").read_text("utf-8"))


def compare(results: dict[str, Any], readme: str) -> list[str]:
    """One line per README value that the results do not reproduce."""
    return [
        f"{label}: README says {value!r}, the demo gives {ROWS[label](results)!r}"
        for label, value in published(readme).items()
        if ROWS[label](results) != value
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=Path, help="compare this results.json instead of a fresh run"
    )
    args = parser.parse_args()
    if args.results is not None:
        results = json.loads(args.results.read_text("utf-8"))
    else:
        with tempfile.TemporaryDirectory(prefix="metriclab-demo-") as folder:
            results = fresh_results(Path(folder))
    differences = compare(results, README.read_text("utf-8"))
    for line in differences:
        print(f"differs: {line}")
    if not differences:
        print(f"the demo reproduces all {len(ROWS)} rows of the README's table")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
