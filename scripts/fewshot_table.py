"""Every episode scorer on published episode sets, from one trained run's embedding.

Opens a run folder, embeds its unseen test classes once (as ``metriclab eval`` does: the run's
recorded split, its test-time views), embeds its training classes for SimpleShot's centring, and
scores each episode file with every registered scorer that fits the run: the distance scorers
(``prototype``, ``nearest``) under the run's distance, the few-shot methods with their defaults
(the papers' settings; see :mod:`metriclab.evaluation.fewshot`), and the learned comparators
(``matching``, ``relation``) only when the run was trained with one. ``siamese`` (the Siamese
pair head) is left out: it scores with ``bias − distance``, which ranks as ``nearest`` does.
Prints a Markdown table, mean accuracy ± 95 % CI, inductive and transductive scores in separate
columns (never compared with each other).

    python scripts/fewshot_table.py RUN_DIR                      # the run's eval.episode_files
    python scripts/fewshot_table.py RUN_DIR --episodes episodes/digits-5way-1shot.jsonl \\
        episodes/digits-5way-5shot.jsonl

Run from the repository root with ``PYTHONPATH=.`` and ``OMP_NUM_THREADS=1``; episode paths in
the run's config are relative to the folder it was trained from.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from metriclab.checkpoints import for_evaluation
from metriclab.config import apply_threads
from metriclab.data import EpisodeSet
from metriclab.evaluation import embed, evaluate_episodes
from metriclab.evaluation.episodes import SCORERS, EpisodeResult, scorer_for
from metriclab.evaluation.method import ScorerContext
from metriclab.evaluation.run import run_views
from metriclab.runs import Run, open_run

#: Scorers that need the Siamese pair head: not a method of their own here (see the docstring).
SKIPPED = ("siamese",)


def scorers_for(run: Run, train_mean: torch.Tensor) -> dict[str, object]:
    """Registered scorer name → the scorer ``evaluate_episodes`` takes, for this run."""
    comparator = getattr(run.model, "comparator", None)
    context = ScorerContext(train_mean=train_mean, comparator=comparator)
    chosen: dict[str, object] = {}
    for name, spec in SCORERS.items():
        if name in SKIPPED:
            continue
        if spec.method is None:
            chosen[name] = name
            continue
        try:
            chosen[name] = scorer_for(name, context=context)
        except ValueError:  # a comparator scorer on a run trained without that comparator
            continue
    return chosen


def score_table(
    run: Run, episode_files: list[Path]
) -> tuple[list[str], dict[str, dict[str, EpisodeResult]], dict[str, float]]:
    """(set names, scorer → set → result, scorer → seconds over all sets)."""
    apply_threads(run.config)
    views = run_views(run.config)
    model = run.model
    test = embed(model.embedding_net, run.data.test, progress=False, views=views)
    fit = embed(model.embedding_net, run.data.fit, progress=False, views=views)
    train_mean = fit.vectors.double().mean(dim=0).float()
    sets = {path.stem: EpisodeSet.load(path, data=run.data.test) for path in episode_files}
    results: dict[str, dict[str, EpisodeResult]] = {}
    seconds: dict[str, float] = {}
    for name, scorer in scorers_for(run, train_mean).items():
        start = time.perf_counter()
        distance = model.distance if isinstance(scorer, str) else None
        results[name] = {
            set_name: evaluate_episodes(test, episodes, scorer, distance=distance)
            for set_name, episodes in sets.items()
        }
        seconds[name] = time.perf_counter() - start
    return list(sets), results, seconds


def markdown(
    run: Run,
    set_names: list[str],
    results: dict[str, dict[str, EpisodeResult]],
    seconds: dict[str, float],
) -> str:
    run_dir = run.folder
    checkpoint = for_evaluation(run_dir)
    header = ["scorer", "method"]
    for set_name in set_names:
        header += [f"{set_name} inductive", f"{set_name} transductive"]
    header.append("time (s)")
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |"]  # fmt: skip
    for name, per_set in results.items():
        first = next(iter(per_set.values()))
        row = [f"`{name}`", first.scorer]
        for set_name in set_names:
            result = per_set[set_name]
            cell = f"{100 * result.mean:.2f} ± {100 * result.ci95:.2f} %"
            row += ["", cell] if result.transductive else [cell, ""]
        row.append(f"{seconds[name]:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    config = run.config
    return (
        f"Run `{run_dir}` (config `{config.name}`, objective `{config.train.objective}`, "
        f"distance `{config.model.distance}`, checkpoint `{checkpoint.name}`, test-time views: "
        f"{'yes' if config.eval.tta else 'no'}); one embedding of the unseen classes for every "
        "scorer; mean accuracy ± 95 % CI over each set's episodes.\n\n" + "\n".join(lines) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder made by 'metriclab train'")
    parser.add_argument(
        "--episodes", type=Path, nargs="+", help="episode files (default: the run's eval.episode_files)"
    )  # fmt: skip
    args = parser.parse_args(argv)
    run = open_run(args.run_dir)
    files = args.episodes or [Path(f) for f in run.config.eval.episode_files or []]
    if not files:
        print(f"error: run {args.run_dir} names no eval.episode_files; pass --episodes FILE ...")
        return 2
    set_names, results, seconds = score_table(run, files)
    print(markdown(run, set_names, results, seconds), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
