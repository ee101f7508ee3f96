"""Omniglot minimal-background one-shot: train each shipped Omniglot config, score the held-out sets.

Trains on the six training alphabets of ``../shared/data/omniglot`` (small1 ∪ small2 minus Latin and
Korean) and scores the published within-alphabet episode sets
``episodes/omniglot-latin-korean-{20,5}way-1shot.jsonl``; prints a Markdown table with accuracy ±
95 % CI, the wall time of each run and the published anchors (Lake et al. 2015, Koch et al. 2015).

    python scripts/reproduce_omniglot.py                     # every config, as shipped
    python scripts/reproduce_omniglot.py --configs omniglot-protonet --quick

Settings live in the shipped configs (``metriclab configs``); nothing here tunes on the held-out
sets. ``--quick`` trains 30 steps per config, to check the pipeline, not the accuracy.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from metriclab.config import resolve_config
from metriclab.training import evaluate_run, train

CONFIGS = ("omniglot-protonet", "omniglot-triplet", "omniglot-koch")
SETS = ("omniglot-latin-korean-20way-1shot", "omniglot-latin-korean-5way-1shot")
ANCHORS = """\
Published anchors, 20-way within-alphabet one-shot (Lake et al. 2015, 5-alphabet background unless
noted): deep convnet 22–24 % error (76–78 % accuracy); Bayesian program learning 4.0–4.3 % error;
humans 4.5 % (full background); Koch et al. 2015 Siamese net 8.0 % error with the full 30-alphabet
background. A plain 100-line ProtoNet on this held-out set reaches about 89 % (the issue's floor);
the target is ≥ 95 % within 30 minutes on 2 CPU cores."""


def run_one(name: str, runs: Path, quick: bool) -> dict[str, object]:
    overrides = ["train.steps=30", "train.checkpoint_every=30"] if quick else []
    config = resolve_config(name, overrides)
    run_dir = runs / name
    start = time.perf_counter()
    train(config, run_dir, progress=False)
    minutes = (time.perf_counter() - start) / 60
    report = evaluate_run(run_dir, plots=not quick, progress=False)
    return {"config": name, "steps": config.train.steps, "minutes": minutes, "report": report}


def table(rows: list[dict[str, object]], command: str) -> str:
    lines = [
        "## Omniglot one-shot (held-out Latin + Korean, within alphabet)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}.",
        "",
        "| config | steps | train time | 20-way 1-shot | 5-way 1-shot | verification AUC |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        report = row["report"]
        cells = [str(report.episodes[s]) if s in report.episodes else "–" for s in SETS]
        lines.append(
            f"| `{row['config']}` | {row['steps']} | {row['minutes']:.1f} min | {cells[0]} | "
            f"{cells[1]} | {report.verification.auc:.4f} |"
        )
    return "\n".join([*lines, "", ANCHORS, ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--runs", type=Path, default=Path("runs/reproduce-omniglot"))
    parser.add_argument("--quick", action="store_true", help="30 steps per config")
    args = parser.parse_args()
    if not Path("../shared/data/omniglot").is_dir():
        print(
            "error: ../shared/data/omniglot is missing; run from the repository root",
            file=sys.stderr,
        )
        return 2
    rows = [run_one(name, args.runs, args.quick) for name in args.configs]
    print(table(rows, "python " + " ".join(sys.argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
