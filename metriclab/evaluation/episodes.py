"""Episodic accuracy over a fixed episode set, vectorised over episodes, with a 95 % CI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from metriclab.data import EpisodeSet
from metriclab.distances import L2, Distance
from metriclab.evaluation.embed import Embeddings
from metriclab.evaluation.knn import majority_vote

#: A learned pair head: ``(E, Nq, D)`` queries × ``(E, Ns, D)`` support → ``(E, Nq, Ns)`` scores,
#: higher = more alike; e.g. ``SiameseNet.logit_matrix`` (Koch et al. 2015).
PairScorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``"prototype"``, ``"nearest"``, a metriclab distance or a :data:`PairScorer`.
Scorer = str | Distance | PairScorer
SCORERS = ("prototype", "nearest")


@dataclass(frozen=True)
class EpisodeResult:
    """Accuracy over E episodes: ``mean``, ``ci95 = 1.96 · s / √E`` and ``per_episode`` ``(E,)``.

    ``scorer`` names how queries were labelled, e.g. ``"prototype (l2)"`` or ``"3-NN (pair head)"``.
    """

    mean: float
    ci95: float
    per_episode: np.ndarray
    scorer: str = ""

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.ci95:.2f} %"


def confidence_interval(accuracies: np.ndarray) -> float:
    """Half-width of the normal-approximation 95 % CI of the mean accuracy over E episodes.

    ``1.96 · s / √E`` with the sample standard deviation ``s`` (``ddof = 1``, the unbiased
    variance, as ``torch.std`` gives in the ProtoNet code); ``nan`` for fewer than two episodes.
    """
    accuracies = np.asarray(accuracies, dtype=np.float64)
    if accuracies.ndim != 1:
        raise ValueError(f"accuracies must be a 1-D array, got shape {accuracies.shape}")
    if len(accuracies) < 2:
        return float("nan")
    return float(1.96 * np.std(accuracies, ddof=1) / np.sqrt(len(accuracies)))


def _ranking(distance: Distance) -> PairScorer:
    """Scores that rank like ``−distance``, through the distance's cheapest equal ranking (plain
    L2 ranks by squared L2: one batched GEMM instead of ``torch.cdist``)."""
    metric = distance.ranking()
    return lambda queries, support: -metric.matrix(queries, support)


def _resolve(scorer: Scorer, distance: Distance | None) -> tuple[bool, PairScorer, str]:
    """Whether to score prototypes, the pair-scoring function, and its name."""
    if isinstance(scorer, str):
        if scorer not in SCORERS:
            raise ValueError(
                f"scorer must be 'prototype', 'nearest', a metriclab distance or a pair-scoring "
                f"callable, got {scorer!r}"
            )
        metric = L2() if distance is None else distance
        return scorer == "prototype", _ranking(metric), f"{scorer} ({metric.name})"
    if distance is not None:
        raise ValueError(
            "distance applies to scorer='prototype' or 'nearest' only; a distance or pair head "
            "passed as scorer already scores the pairs, so drop distance="
        )
    if isinstance(scorer, Distance):
        return False, _ranking(scorer), f"nearest ({scorer.name})"
    if callable(scorer):
        return False, scorer, "pair head"
    raise ValueError(
        f"scorer must be a string, a distance or a callable, got {type(scorer).__name__}"
    )


def _check_labels(
    episodes: EpisodeSet, labels: np.ndarray, support: np.ndarray, query: np.ndarray
) -> None:
    """Every item of one episode class must carry one label, or the episodes belong to other data."""
    first = labels[support[..., :1]]
    mixed = (labels[support] != first).any(-1) | (labels[query] != first).any(-1)
    if mixed.any():
        e, n = np.argwhere(mixed)[0]
        raise ValueError(
            f"episode {e}, class {str(episodes.classes[e, n])!r}: its items carry different labels in "
            "these embeddings; the episode set was made from other data"
        )


def _predict(
    pair: PairScorer, prototype: bool, k: int, query: torch.Tensor, support: torch.Tensor
) -> torch.Tensor:
    """Class positions predicted for ``(e, NQ, D)`` queries given ``(e, N, K, D)`` support."""
    e, _, k_shot, _ = support.shape
    candidates = support.mean(dim=2) if prototype else support.flatten(1, 2)
    scores = pair(query, candidates)
    expected = (e, query.shape[1], candidates.shape[1])
    if tuple(scores.shape) != expected:
        raise ValueError(
            f"the pair scorer returned shape {tuple(scores.shape)}, expected {expected}: it must map "
            "(E, Nq, D) queries × (E, Ns, D) support to (E, Nq, Ns) scores"
        )
    if not torch.isfinite(scores).all():
        raise ValueError(
            "the pair scorer returned NaN or infinite scores; check the model's weights"
        )
    if prototype:
        return scores.argmax(dim=-1)
    if k == 1:
        return scores.argmax(dim=-1) // k_shot  # support is class-major: position // K = class
    return majority_vote(scores.topk(k, dim=-1).indices // k_shot)


@torch.no_grad()
def evaluate_episodes(
    embeddings: Embeddings,
    episodes: EpisodeSet,
    scorer: Scorer = "prototype",
    *,
    distance: Distance | None = None,
    k: int = 1,
    chunk: int = 256,
) -> EpisodeResult:
    """Accuracy on every episode of ``episodes``, from precomputed ``embeddings``.

    Scorers:

    * ``"prototype"``: each query goes to the class whose support mean is nearest under
      ``distance`` (default ``L2()``; Snell et al. 2017 use squared L2, which ranks the same).
    * ``"nearest"``: k-NN over the episode's N·K support items under ``distance``: the k most
      similar support items vote, the class with most votes wins, and ties go to the tied class
      whose best item ranks first. ``k = 1`` is 1-NN (with K shots: the class of the single
      nearest of all N·K support items); ``k ≥ K + 1`` lets several shots of one class outvote.
    * a metriclab :class:`Distance` instance: ``"nearest"`` under that distance.
    * a callable :data:`PairScorer` (e.g. ``siamese.logit_matrix``): scores every query × support
      pair; then k-NN as for ``"nearest"``, with higher scores nearer.

    Equal best scores go to the lowest class (prototype) or support position (nearest). Episodes
    are scored ``chunk`` at a time as one batched tensor computation.

    Raises ``ValueError`` when an episode item is not in ``embeddings`` or its labels disagree.
    """
    prototype, pair, name = _resolve(scorer, distance)
    n_way, k_shot, n_query = episodes.n_way, episodes.k_shot, episodes.n_query
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_way * k_shot:
        raise ValueError(f"k must be an integer in [1, N·K = {n_way * k_shot}], got {k}")
    if prototype and k != 1:
        raise ValueError("k applies to nearest-neighbour scorers; scorer='prototype' needs k=1")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    support_pos, query_pos = episodes.resolve(embeddings.item_ids)
    _check_labels(episodes, embeddings.labels.numpy(), support_pos, query_pos)
    truth = torch.arange(n_way).repeat_interleave(n_query)
    correct = []
    for start in range(0, episodes.n_episodes, chunk):
        support = embeddings.vectors[torch.from_numpy(support_pos[start : start + chunk])]
        query = embeddings.vectors[torch.from_numpy(query_pos[start : start + chunk])]
        predicted = _predict(pair, prototype, k, query.flatten(1, 2), support)
        correct.append((predicted.cpu() == truth).sum(dim=1))
    per_episode = torch.cat(correct).numpy().astype(np.float64) / (n_way * n_query)
    label = name if prototype or k == 1 else f"{k}-NN {name.removeprefix('nearest ')}"
    return EpisodeResult(
        float(per_episode.mean()), confidence_interval(per_episode), per_episode, label
    )
