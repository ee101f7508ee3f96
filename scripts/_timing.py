"""Timing shared by the benchmark scripts: the median of repeated wall-clock runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(run: Callable[[], object], repeats: int, warmup: bool = False) -> float:
    """Median wall time of ``repeats`` calls of ``run`` (after one untimed call if ``warmup``)."""
    if warmup:
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
