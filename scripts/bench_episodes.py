"""Episode index generation: metriclab's EpisodeSampler against easyfsl's TaskSampler.

Both samplers get the same labels (1000 classes × 20 items) and yield one episode's flat index
list per iteration; we time iterating ``--episodes`` episodes (the samplers are built outside the
timing) and report the median episodes per second of ``--repeats`` runs and the ratio.

easyfsl's TaskSampler calls ``Sampler.__init__(data_source=None)``, which torch ≥ 2.2 rejects; the
benchmark wraps ``torch.utils.data.Sampler.__init__`` to accept and drop that argument while the
TaskSampler is built, and says so. easyfsl is a benchmark-only dependency.

    python scripts/bench_episodes.py            # full
    python scripts/bench_episodes.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import random
import statistics
import time
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from metriclab.data import EpisodeSampler
from metriclab.data.samplers import CHUNK

SETTINGS = ((5, 1, 15), (20, 1, 5))
CLASSES, PER_CLASS = 1000, 20
_SHIM_NOTED: list[bool] = []


class _LabelsOnly:
    """The one method easyfsl's TaskSampler asks of a data set."""

    def __init__(self, labels: list[int]) -> None:
        self.labels = labels

    def get_labels(self) -> list[int]:
        return self.labels


@contextlib.contextmanager
def _sampler_init_shim() -> Iterator[None]:
    """Let ``Sampler.__init__`` take (and ignore) ``data_source``, as torch < 2.2 did."""
    original = Sampler.__init__

    def accepting(self: Sampler, data_source: object = None) -> None:
        original(self)

    Sampler.__init__ = accepting
    try:
        yield
    finally:
        Sampler.__init__ = original


def _task_sampler(labels: list[int], n: int, k: int, q: int, episodes: int) -> Sampler:
    """easyfsl's TaskSampler, built through the shim only if the plain constructor fails."""
    from easyfsl.samplers import TaskSampler

    try:
        return TaskSampler(_LabelsOnly(labels), n, k, q, episodes)
    except TypeError:
        with _sampler_init_shim():
            sampler = TaskSampler(_LabelsOnly(labels), n, k, q, episodes)
        _SHIM_NOTED.append(True)
        return sampler


def _rate(sampler: Iterable[list[int]], episodes: int, repeats: int) -> float:
    """Median episodes per second of iterating ``sampler`` fully, ``repeats`` times."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = sum(1 for _ in sampler)
        rates.append(count / (time.perf_counter() - start))
        assert count == episodes
    return statistics.median(rates)


def _machine() -> str:
    import faiss  # after torch, as the project requires

    return (
        f"{os.cpu_count()} cores ({platform.machine()}), python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} thread), faiss {faiss.__version__}, "
        f"numpy {importlib.metadata.version('numpy')}"
    )


def _section(rows: list[str], ratios: list[float], episodes: int, repeats: int, quick: bool) -> str:
    """The whole ``## Episodes`` section of BENCHMARKS.md, every figure from this run."""
    easyfsl = importlib.metadata.version("easyfsl")
    shim = (
        f"easyfsl's constructor fails on torch {torch.__version__} (`Sampler.__init__` no longer "
        "takes `data_source`); the benchmark wrapped `Sampler.__init__` to drop that argument "
        "while building it. "
        if _SHIM_NOTED
        else ""
    )
    verdict = "met" if min(ratios) >= 10 else "**not met**"
    return f"""## Episodes

Command: `python scripts/bench_episodes.py{" --quick" if quick else ""}` ({
        "quick mode; the full run drops `--quick`: 5000 episodes, 7 runs"
        if quick
        else "full run; `--quick`: 1000 episodes, 3 runs, a few seconds"
    }).

Episode index generation: metriclab's `EpisodeSampler` against easyfsl {easyfsl}'s `TaskSampler`,
both yielding one episode's flat index list per iteration over the same labels ({CLASSES} classes ×
{PER_CLASS} items, shuffled), samplers built outside the timing; {episodes} episodes per run, median
of {repeats} runs, one thread. {shim}Machine: {_machine()}; it was shared with other jobs and
noisy: read the ratios, not the absolute rates.

| setting | easyfsl TaskSampler (episodes/s) | metriclab EpisodeSampler (episodes/s) | ratio |
| --- | ---: | ---: | ---: |
{chr(10).join(rows)}

The target was ≥ 10× ({verdict} here: {min(ratios):.1f}× at worst). metriclab draws {CHUNK}
episodes per step as whole-array operations (classes by rejection of colliding draws, items by a
vectorised partial Fisher–Yates shuffle) and then converts each episode to a Python list for the
`DataLoader`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer episodes and repeats")
    parser.add_argument("--episodes", type=int, help="episodes per timed run (default 5000)")
    parser.add_argument("--repeats", type=int, help="timed runs per sampler (default 7)")
    args = parser.parse_args()
    episodes = args.episodes or (1000 if args.quick else 5000)
    repeats = args.repeats or (3 if args.quick else 7)
    torch.set_num_threads(1)
    random.seed(0)  # easyfsl draws from the global `random`
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    np.random.default_rng(0).shuffle(labels)
    rows, ratios = [], []
    for n, k, q in SETTINGS:
        easyfsl = _rate(_task_sampler(labels.tolist(), n, k, q, episodes), episodes, repeats)
        ours = _rate(EpisodeSampler(labels, n, k, q, episodes, seed=0), episodes, repeats)
        ratios.append(ours / easyfsl)
        rows.append(
            f"| {n}-way {k}-shot {q}-query | {easyfsl:,.0f} | {ours:,.0f} | {ours / easyfsl:.1f}× |"
        )
    print(_section(rows, ratios, episodes, repeats, args.quick), end="")


if __name__ == "__main__":
    main()
