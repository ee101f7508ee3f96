"""Identification with a comparator bundle: ranked by its learned pair score (FAISS shortlist,
then the comparator) against ranked by the embedding's distance alone, on the same galleries and
queries of a run's unseen classes, in one process. Prints a Markdown table.

    OMP_NUM_THREADS=1 python scripts/comparator_gallery.py RUN_DIR BUNDLE [RUN_DIR BUNDLE ...]

For each of ``--trials`` seeds, ``--shots`` items of every unseen class are enrolled and every
other item is a query (closed set: ``threshold=None``, rule ``nearest``). Accuracy is the mean
over trials ± 1.96 · s / √trials; time is the median of the trials' ``identify`` calls.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402, F401  (before faiss)

from metriclab.bundle import Bundle, Gallery  # noqa: E402
from metriclab.runs import open_run  # noqa: E402


def _trial(
    bundle: Bundle, rank_by: str, vectors: np.ndarray, names: np.ndarray, shots: int, seed: int
) -> tuple[float, float]:
    """Accuracy and seconds of one seeded gallery's identification."""
    rng = np.random.default_rng(seed)
    enrolled = np.concatenate(
        [rng.permutation(np.flatnonzero(names == c))[:shots] for c in np.unique(names)]
    )
    queries = np.setdiff1d(np.arange(len(names)), enrolled)
    gallery = Gallery(bundle, rank_by=rank_by)
    gallery.enrol(vectors[enrolled], names[enrolled].tolist(), [str(i) for i in enrolled])
    start = time.perf_counter()
    answers = gallery.identify(vectors[queries], threshold=None)
    seconds = time.perf_counter() - start
    return float(
        np.mean([a.label == n for a, n in zip(answers, names[queries], strict=True)])
    ), seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", type=Path, metavar="RUN_DIR BUNDLE")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give RUN_DIR BUNDLE pairs")
    print(
        "| run | shots | ranked by the distance | ranked by the comparator | time: distance / comparator |"
    )
    print("|---|---:|---:|---:|---:|")
    for run_dir, folder in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        test = open_run(run_dir).data.test
        names = np.asarray(test.class_names)[test.labels.numpy()]
        bundle = Bundle.load(folder, "onnx")
        vectors = bundle.embed(test.images.numpy())
        for shots in args.shots:
            rows = {}
            for name in ("distance", "comparator"):
                trials = [
                    _trial(bundle, name, vectors, names, shots, seed) for seed in range(args.trials)
                ]
                accuracy = [a for a, _ in trials]
                ci = 1.96 * statistics.stdev(accuracy) / len(accuracy) ** 0.5
                rows[name] = (
                    100 * statistics.mean(accuracy),
                    100 * ci,
                    statistics.median(t for _, t in trials),
                )
            (da, dc, dt), (ca, cc, ct) = rows["distance"], rows["comparator"]
            print(
                f"| {run_dir.name} | {shots} | {da:.2f} ± {dc:.2f} % | {ca:.2f} ± {cc:.2f} % | "
                f"{dt * 1e3:.1f} / {ct * 1e3:.1f} ms ({ct / dt:.1f}×) |"
            )


if __name__ == "__main__":
    main()
