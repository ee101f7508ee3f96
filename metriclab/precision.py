"""Numeric precision of a training step (``train.precision``), and what it means per device.

- ``fp32``: no autocast; every op in float32 (the default, and what the shipped configs train in).
- ``bf16``: :func:`torch.autocast` to bfloat16 on CPU or CUDA. bfloat16 keeps float32's exponent
  range, so no loss scaling is needed (Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep
  Learning Training").
- ``fp16``: autocast to float16 with a dynamic gradient scaler, CUDA only (Micikevicius et al.
  2018, "Mixed Precision Training"); float16 on CPU is refused in config validation.

Weights, optimiser state and checkpoints stay float32 in every mode (autocast casts op inputs,
not parameters), so a run resumes in any precision from any checkpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

#: The values ``train.precision`` accepts.
PRECISIONS = ("fp32", "bf16", "fp16")

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: str) -> str | None:
    """``None`` if ``precision`` can run on ``device``, else the one-sentence reason and fix."""
    if precision not in PRECISIONS:
        return f"unknown train.precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
    if precision == "fp16" and torch.device(device).type != "cuda":
        return (
            f"train.precision=fp16 needs a CUDA device (train.device={device}); use "
            "train.precision=bf16 for mixed precision on the CPU, or fp32"
        )
    return None


@contextlib.contextmanager
def autocast(precision: str, device: str) -> Iterator[None]:
    """The forward pass's autocast region for ``precision`` (a no-op for ``fp32``)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=_DTYPES[precision]):
        yield


def grad_scaler(precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for ``fp16`` only (a disabled one passes steps through)."""
    return torch.amp.GradScaler("cuda", enabled=precision == "fp16")
