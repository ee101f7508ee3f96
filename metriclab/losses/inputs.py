"""Input checks shared by the embedding losses: one clear ``ValueError`` naming the argument."""

from __future__ import annotations

import math

import torch

from metriclab.distances import L2, Distance
from metriclab.losses.base import check_finite


def check_margin(name: str, value: float, allow_zero: bool) -> float:
    """``value`` as a float if finite and positive (or zero when ``allow_zero``)."""
    bound = "≥ 0" if allow_zero else "> 0"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def resolve_distance(distance: Distance | None) -> Distance:
    """``distance``, or ``L2()`` when it is ``None``."""
    if distance is None:
        return L2()
    if not isinstance(distance, Distance):
        raise ValueError(
            f"distance must be a metriclab Distance such as L2(), got {type(distance).__name__}; "
            "convert a pytorch-metric-learning distance with metriclab.distances.from_pml"
        )
    return distance


def check_aligned(names: tuple[str, ...], *tensors: torch.Tensor) -> None:
    """Row-aligned embeddings: all ``(N, D)`` with equal shapes and finite values."""
    shapes = [tuple(t.shape) for t in tensors]
    if any(t.ndim != 2 for t in tensors) or len(set(shapes)) != 1:
        listed = ", ".join(f"{n} {s}" for n, s in zip(names, shapes, strict=True))
        raise ValueError(f"{', '.join(names)} must all have the same shape (N, D), got {listed}")
    for name, tensor in zip(names, tensors, strict=True):
        check_finite(name, tensor)


def check_same(same: torch.Tensor, rows: int) -> torch.Tensor:
    """``same`` as a bool ``(N,)`` tensor; it must hold only True/False or 0/1."""
    if same.shape != (rows,):
        raise ValueError(
            f"same must have shape ({rows},), one flag per pair, got {tuple(same.shape)}"
        )
    if same.dtype != torch.bool and not ((same == 0) | (same == 1)).all():
        raise ValueError("same must hold only True/False or 0/1 (1 = same class)")
    return same.bool()


def check_batch(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    """A labelled batch: ``embeddings (B, D)`` finite, ``labels (B,)`` integer class ids."""
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (B, D), got {tuple(embeddings.shape)}")
    if labels.shape != (embeddings.shape[0],):
        raise ValueError(
            f"labels must have shape ({embeddings.shape[0]},), one per embedding, got "
            f"{tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    check_finite("embeddings", embeddings)


def is_labeled_batch(inputs: tuple[object, ...]) -> bool:
    """Whether ``inputs`` is pytorch-metric-learning's ``(embeddings, labels)`` call: two tensors,
    the second 1-D with an integer dtype (aligned pairs' ``same`` flags are never on their own)."""
    if len(inputs) != 2 or not all_tensors(inputs):
        return False
    labels = inputs[1]
    return (
        isinstance(labels, torch.Tensor)
        and labels.ndim == 1
        and not (labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool)
    )


def all_tensors(inputs: tuple[object, ...]) -> bool:
    """Whether every input is a tensor (a PML miner's ``indices_tuple`` is not)."""
    return all(isinstance(t, torch.Tensor) for t in inputs)


def form_error(loss: str, explicit: str, inputs: tuple[object, ...]) -> str:
    """The one sentence for a call that matches neither of a pair or triplet loss's forms."""
    got = ", ".join(
        f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
        for t in inputs
    )
    return (
        f"{loss} takes ({explicit}) or a labelled batch (embeddings (B, D), integer labels (B,)), "
        f"got {len(inputs)} argument(s): {got or 'none'}; it mines its own tuples, so pass no "
        "miner's indices_tuple"
    )
