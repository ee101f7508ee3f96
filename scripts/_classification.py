"""Shared core of the reproduction scripts: data splits, one small training loop, the metrics.

Every script trains a small Conv-4 (``metriclab.models.backbone("conv4", width=...)`` +
``EmbeddingNet``) from scratch on scikit-learn's bundled digits, on one CPU thread, and scores a
held-out test set. Only the objective changes between methods (:data:`METHODS`).
"""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_metric_learning.losses import ArcFaceLoss
from sklearn.metrics import balanced_accuracy_score, recall_score
from torch import nn

import metriclab as ml
from metriclab.data.images import LabeledImages


@dataclass(frozen=True)
class Settings:
    """Training settings shared by every method (one CPU thread, Adam, fixed step budget)."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    width: float = 0.5
    embedding_dim: int = 64
    margin: float = math.pi / 8  # CAMRI / ArcFace angular margin (radians)
    scale: float = 16.0  # CAMRI / ArcFace logit scale (CAMRI paper: 16)


@dataclass(frozen=True)
class Result:
    """Test metrics of one training run; ``recall`` has one entry per class."""

    accuracy: float
    balanced_accuracy: float
    recall: tuple[float, ...]


@dataclass
class Objective:
    """What a method trains: ``loss(outputs, labels)`` and ``predict(outputs) -> (N, C) scores``."""

    out_dim: int
    loss: nn.Module
    predict: Callable[[torch.Tensor], torch.Tensor]


def _identity(outputs: torch.Tensor) -> torch.Tensor:
    return outputs


def _scores_head(loss: nn.Module, c: int) -> Objective:
    return Objective(out_dim=c, loss=loss, predict=_identity)


def _camri(c: int, seed: int, s: Settings, important: int) -> Objective:
    loss = ml.losses.CAMRILoss(
        s.embedding_dim, c, margins={important: s.margin}, scale=s.scale, seed=seed
    )
    return Objective(s.embedding_dim, loss, lambda z: loss.eval().logits(z))


def _arcface(c: int, seed: int, s: Settings) -> Objective:
    torch.manual_seed(seed)  # PML initialises its class weights from the global generator
    loss = ArcFaceLoss(c, s.embedding_dim, margin=math.degrees(s.margin), scale=s.scale)
    return Objective(s.embedding_dim, loss, loss.get_logits)


def _hm(delta: float, gamma: float) -> Callable[[int, int, Settings, int], Objective]:
    return lambda c, seed, s, imp: _scores_head(
        ml.losses.HardMiningLoss(alpha=0.75, delta=delta, gamma=gamma), c
    )


#: Method name → builder ``(num_classes, seed, settings, important_class) -> Objective``.
METHODS: dict[str, Callable[[int, int, Settings, int], Objective]] = {
    "ce": lambda c, seed, s, imp: _scores_head(nn.CrossEntropyLoss(), c),
    "arcface": lambda c, seed, s, imp: _arcface(c, seed, s),
    "camri": lambda c, seed, s, imp: _camri(c, seed, s, imp),
    "cosine": lambda c, seed, s, imp: _scores_head(ml.losses.CosineLoss(), c),
    "cosine+ce": lambda c, seed, s, imp: _scores_head(
        ml.losses.CosineLoss(ce_weight=0.1, num_classes=c, seed=seed), c
    ),
    "cce": lambda c, seed, s, imp: _scores_head(ml.losses.ComplementCrossEntropy(gamma=-1.0), c),
    "ohem-cosine+ce": lambda c, seed, s, imp: _scores_head(
        ml.losses.OHEM(
            ml.losses.CosineLoss(ce_weight=0.1, num_classes=c, reduction="none", seed=seed),
            keep=0.7,
        ),
        c,
    ),
    **{f"hm(d={d:.0e},g={g})": _hm(d, g) for d in (1e7, 1e9) for g in (0.5, 1.0)},
}
HM_GRID = tuple(name for name in METHODS if name.startswith("hm("))


def stratified_take(
    labels: np.ndarray, counts: np.ndarray, rng: np.random.Generator, pool: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``counts[c]`` random positions of class ``c`` from ``pool``; return (taken, rest)."""
    taken = []
    for c, n in enumerate(counts):
        members = pool[labels[pool] == c]
        if n > len(members):
            raise ValueError(f"class {c} has {len(members)} items in the pool, {n} requested")
        taken.append(rng.permutation(members)[: int(n)])
    chosen = np.sort(np.concatenate(taken))
    return chosen, np.setdiff1d(pool, chosen)


def long_tail_counts(n_max: int, num_classes: int, ratio: float) -> np.ndarray:
    """Exponential profile of Cui et al. (CVPR 2019): ``n_c = n_max · ratio^(−c/(C−1))``, ≥ 1."""
    c = np.arange(num_classes)
    return np.maximum(1, np.floor(np.round(n_max * ratio ** (-c / (num_classes - 1)), 9))).astype(
        np.int64
    )


def _batches(data: LabeledImages, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.as_tensor(positions, dtype=torch.int64)
    return data.images[idx].float() / 255.0, data.labels[idx]


def train(
    data: LabeledImages,
    train_idx: np.ndarray,
    method: str,
    seed: int,
    settings: Settings,
    important: int = 0,
) -> tuple[nn.Module, Objective]:
    """Train a fresh Conv-4 with ``method`` on ``data[train_idx]`` (uniform minibatches)."""
    torch.manual_seed(seed)  # seeds the backbone's default nn initialisation
    c = data.num_classes
    objective = METHODS[method](c, seed, settings, important)
    net = ml.models.EmbeddingNet(
        ml.models.backbone("conv4", data.channels, width=settings.width),
        dim=objective.out_dim,
        in_channels=data.channels,
        image_size=data.images.shape[-1],
    )
    params = list(net.parameters()) + list(objective.loss.parameters())
    optimiser = torch.optim.Adam(params, lr=settings.lr)
    images, labels = _batches(data, train_idx)
    generator = torch.Generator().manual_seed(seed)
    objective.loss.train()
    net.train()
    for _ in range(settings.steps):
        batch = torch.randint(len(labels), (settings.batch_size,), generator=generator)
        loss = objective.loss(net(images[batch]), labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net, objective


@torch.no_grad()
def evaluate(
    net: nn.Module, objective: Objective, data: LabeledImages, test_idx: np.ndarray
) -> Result:
    """Accuracy, balanced accuracy and per-class recall (scikit-learn) on ``data[test_idx]``."""
    net.eval()
    images, labels = _batches(data, test_idx)
    predicted = objective.predict(net(images)).argmax(dim=1).numpy()
    truth = labels.numpy()
    recall = recall_score(
        truth, predicted, labels=np.arange(data.num_classes), average=None, zero_division=0.0
    )
    return Result(
        accuracy=float((predicted == truth).mean()),
        balanced_accuracy=float(balanced_accuracy_score(truth, predicted)),
        recall=tuple(float(r) for r in recall),
    )


def run(
    data: LabeledImages,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    method: str,
    seed: int,
    settings: Settings,
    important: int = 0,
) -> Result:
    """Train ``method`` on ``train_idx`` and score it on ``test_idx``."""
    net, objective = train(data, train_idx, method, seed, settings, important)
    return evaluate(net, objective, data, test_idx)


def mean_std(values: list[float]) -> str:
    """``mean ± std`` (sample std, ddof=1) with three decimals."""
    a = np.asarray(values, dtype=np.float64)
    std = a.std(ddof=1) if len(a) > 1 else 0.0
    return f"{a.mean():.3f} ± {std:.3f}"


def machine() -> str:
    """One line describing the machine and versions."""
    import os

    return (
        f"{platform.machine()}, {os.cpu_count()} cores (shared, noisy; 1 thread used), "
        f"python {sys.version.split()[0]}, torch {torch.__version__}"
    )


def setup_threads() -> None:
    """One thread: the cores are shared with other jobs, and one thread keeps runs comparable."""
    torch.set_num_threads(1)
