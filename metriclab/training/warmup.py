"""Linear learning-rate warm-up on top of any schedule (``train.warmup``).

Goyal et al. 2017 ("Accurate, Large Minibatch SGD") ramp the learning rate linearly over the
first steps so that large batches do not diverge early. Here step ``t`` (1-based) of
``warmup`` uses ``lr · t / warmup`` where ``lr`` is what the schedule says. The factor is applied
around the optimiser step alone and the scheduler is left untouched, so its state (and every
checkpoint) is the same with or without warm-up, and a resumed run warms up exactly as an
uninterrupted one: the factor depends on the step alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch.optim import Optimizer


def warmup_factor(step: int, warmup: int) -> float:
    """``min(1, step / warmup)`` for the 1-based ``step``; 1 when ``warmup`` is 0."""
    if warmup <= 0 or step >= warmup:
        return 1.0
    return step / warmup


@contextlib.contextmanager
def warmed_up(optimizer: Optimizer, step: int, warmup: int) -> Iterator[None]:
    """Every parameter group's learning rate times :func:`warmup_factor` inside the block."""
    factor = warmup_factor(step, warmup)
    if factor == 1.0:
        yield
        return
    saved = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, saved, strict=True):
            group["lr"] = lr
