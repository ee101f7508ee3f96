"""Episodic accuracy over a fixed episode set, vectorised over episodes, with a 95 % CI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from metriclab.data import EpisodeSet
from metriclab.distances import Distance
from metriclab.evaluation.embed import Embeddings

Scorer = Literal["prototype", "nearest"]
#: Optional learned pair head: ``(E, Nq, D)`` queries × ``(E, Ns, D)`` support → ``(E, Nq, Ns)`` scores
#: (higher = more alike), e.g. ``SiameseNet.logit_matrix``.
PairHead = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EpisodeResult:
    """Accuracy over E episodes: ``mean``, ``ci95 = 1.96 · std / √E`` and ``per_episode`` ``(E,)``."""

    mean: float
    ci95: float
    per_episode: np.ndarray

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.ci95:.2f} %"


def confidence_interval(accuracies: np.ndarray) -> float:
    """Half-width of the normal 95 % CI of the mean: ``1.96 · s / √E`` with the sample std ``s``."""
    if len(accuracies) < 2:
        return float("nan")
    return float(1.96 * np.std(accuracies, ddof=1) / np.sqrt(len(accuracies)))


@torch.no_grad()
def evaluate_episodes(
    embeddings: Embeddings,
    episodes: EpisodeSet,
    distance: Distance,
    scorer: Scorer = "prototype",
    head: PairHead | None = None,
    chunk: int = 256,
) -> EpisodeResult:
    """Score every episode of ``episodes`` on precomputed ``embeddings``.

    Scorers: ``prototype`` assigns each query to the class whose support mean is nearest
    (Snell et al. 2017); ``nearest`` to the class of its nearest support item (1-NN). ``head``, if
    given, replaces ``−distance`` as the query × support score (``nearest`` only). Episodes are
    scored ``chunk`` at a time as one batched tensor computation; ties go to the lower class index.
    """
    if scorer not in ("prototype", "nearest"):
        raise ValueError(f"scorer must be 'prototype' or 'nearest', got {scorer!r}")
    if head is not None and scorer != "nearest":
        raise ValueError("a learned pair head scores support items, so it needs scorer='nearest'")
    support_pos, query_pos = episodes.resolve(embeddings.item_ids)
    n_way, k_shot, n_query = episodes.n_way, episodes.k_shot, episodes.n_query
    vectors = embeddings.vectors
    correct = []
    for start in range(0, episodes.n_episodes, chunk):
        support = vectors[torch.from_numpy(support_pos[start : start + chunk])]  # (e, N, K, D)
        query = vectors[torch.from_numpy(query_pos[start : start + chunk])].flatten(
            1, 2
        )  # (e, NQ, D)
        if scorer == "prototype":
            scores = -distance.matrix(query, support.mean(dim=2))  # (e, NQ, N)
        else:
            flat = support.flatten(1, 2)  # (e, N·K, D), class-major
            pair_scores = head(query, flat) if head is not None else -distance.matrix(query, flat)
            scores = pair_scores.unflatten(-1, (n_way, k_shot)).amax(dim=-1)
        truth = torch.arange(n_way).repeat_interleave(n_query)
        correct.append((scores.argmax(dim=-1) == truth).float().mean(dim=1))
    per_episode = torch.cat(correct).numpy().astype(np.float64)
    return EpisodeResult(float(per_episode.mean()), confidence_interval(per_episode), per_episode)
