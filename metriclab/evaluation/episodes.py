"""Episodic accuracy over a fixed episode set, vectorised over episodes, with a 95 % CI."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from metriclab.data import EpisodeSet
from metriclab.distances import L2, Distance
from metriclab.evaluation.embed import Embeddings
from metriclab.evaluation.knn import majority_vote
from metriclab.evaluation.method import EpisodeMethod, ScorerContext
from metriclab.registry import Registry

#: A learned pair head: ``(E, Nq, D)`` queries × ``(E, Ns, D)`` support → ``(E, Nq, Ns)`` scores,
#: higher = more alike; e.g. ``SiameseNet.logit_matrix`` (Koch et al. 2015).
PairScorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: A name in :data:`SCORERS`, a metriclab distance, a :data:`PairScorer` or an
#: :class:`~metriclab.evaluation.method.EpisodeMethod` (SimpleShot, TIM, …).
Scorer = str | Distance | PairScorer | EpisodeMethod
#: Builds a registered method from what the evaluated run offers (e.g. its training mean).
MethodFactory = Callable[[ScorerContext], EpisodeMethod]


@dataclass(frozen=True)
class EpisodeScorer:
    """What a scorer name means.

    Attributes:
        prototype: score each class's support mean (Snell et al. 2017) instead of every support
            item (k-NN over the support).
        pair_head: score query × support pairs with the model's learned pair head (e.g.
            ``SiameseNet.logit_matrix``, Koch et al. 2015) instead of ``−distance``; the caller
            supplies the head through :func:`scorer_for`.
        transductive: a query's label depends on the other queries of its episode; reports say
            so, and such figures are never compared with inductive ones.
        method: builds the batched :class:`EpisodeMethod` this name stands for (few-shot methods
            under :mod:`metriclab.evaluation.fewshot`); None for the distance scorers.
        train_mean: the method centres on the run's training-class mean, so evaluating a run
            embeds its training classes and stores their mean (SimpleShot).
    """

    prototype: bool
    pair_head: bool = False
    transductive: bool = False
    method: MethodFactory | None = None
    train_mean: bool = False


#: ``eval.scorer`` names → what they mean; config validation and error messages read it.
SCORERS: Registry[EpisodeScorer] = Registry("episode scorer", key="eval.scorer")
SCORERS.register("prototype", EpisodeScorer(prototype=True))
SCORERS.register("nearest", EpisodeScorer(prototype=False))
SCORERS.register("siamese", EpisodeScorer(prototype=False, pair_head=True))


def scorer_for(
    name: str, pair_head: PairScorer | None = None, *, context: ScorerContext | None = None
) -> Scorer:
    """The :func:`evaluate_episodes` scorer a scorer name stands for: the name itself,
    ``pair_head`` for names that score with the model's learned head (``siamese``), or the
    method built from ``context`` (e.g. SimpleShot centred on ``context.train_mean``)."""
    spec = SCORERS.get(name)
    if spec.method is not None:
        return spec.method(context or ScorerContext())
    if not spec.pair_head:
        return name
    if pair_head is None:
        raise ValueError(
            f"scorer {name!r} scores with a learned pair head and none was given; pass the "
            "model's head (e.g. siamese.logit_matrix)"
        )
    return pair_head


@dataclass(frozen=True)
class EpisodeResult:
    """Accuracy over E episodes: ``mean``, ``ci95 = 1.96 · s / √E`` and ``per_episode`` ``(E,)``.

    ``scorer`` names how queries were labelled, e.g. ``"prototype (l2)"`` or ``"3-NN (pair head)"``.
    """

    mean: float
    ci95: float
    per_episode: np.ndarray
    scorer: str = ""
    transductive: bool = False

    @property
    def inference(self) -> str:
        """``"transductive"`` (queries of an episode informed each other) or ``"inductive"``."""
        return "transductive" if self.transductive else "inductive"

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


@dataclass(frozen=True)
class _Resolved:
    """How to label queries: prototypes or support items scored by ``pair``, or a ``method``."""

    prototype: bool
    pair: PairScorer | None
    name: str
    method: EpisodeMethod | None = None


def _resolve(scorer: Scorer, distance: Distance | None) -> _Resolved:
    """What a :data:`Scorer` means, with the name reports give it."""
    if isinstance(scorer, str) and scorer in SCORERS and SCORERS.get(scorer).method is not None:
        if distance is not None:
            raise ValueError(
                f"scorer {scorer!r} scores with its paper's own metric; drop distance="
            )
        scorer = scorer_for(scorer)
    if isinstance(scorer, EpisodeMethod):
        if distance is not None:
            raise ValueError(f"{scorer.label} scores with its paper's own metric; drop distance=")
        return _Resolved(False, None, scorer.label, scorer)
    if isinstance(scorer, str):
        if scorer not in SCORERS:
            named = ", ".join(repr(n) for n, spec in SCORERS.items() if not spec.pair_head)
            close = difflib.get_close_matches(scorer, SCORERS.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"scorer must be {named}, a metriclab distance or a pair-scoring callable, "
                f"got {scorer!r}{hint}"
            )
        spec = SCORERS.get(scorer)
        if spec.pair_head:
            raise ValueError(
                f"scorer {scorer!r} scores with a learned pair head; pass the head itself as "
                f"scorer (e.g. siamese.logit_matrix), as scorer_for({scorer!r}, head) does"
            )
        metric = L2() if distance is None else distance
        return _Resolved(spec.prototype, _ranking(metric), f"{scorer} ({metric.name})")
    if distance is not None:
        raise ValueError(
            "distance applies to scorer='prototype' or 'nearest' only; a distance or pair head "
            "passed as scorer already scores the pairs, so drop distance="
        )
    if isinstance(scorer, Distance):
        return _Resolved(False, _ranking(scorer), f"nearest ({scorer.name})")
    if callable(scorer):
        return _Resolved(False, scorer, "pair head")
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


def _checked(scores: torch.Tensor, expected: tuple[int, ...], what: str) -> torch.Tensor:
    if tuple(scores.shape) != expected:
        raise ValueError(
            f"the {what} returned shape {tuple(scores.shape)}, expected {expected}: it must map "
            "(E, Nq, D) queries to (E, Nq, candidates) scores"
        )
    if not torch.isfinite(scores).all():
        raise ValueError(f"the {what} returned NaN or infinite scores; check the model's weights")
    return scores


def _gather(
    vectors: torch.Tensor, positions: np.ndarray, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Rows of ``(M, D)`` vectors at ``positions`` of any shape → ``positions.shape + (D,)``;
    ``index_select`` on the flat positions, several times faster on CPU than advanced indexing.
    ``out``, a buffer reused across batches, spares the page faults of fresh memory."""
    flat = torch.from_numpy(np.ascontiguousarray(positions).reshape(-1))
    if out is None:
        rows = vectors.index_select(0, flat)
    else:
        rows = torch.index_select(vectors, 0, flat, out=out[: len(flat)])
    return rows.view(*positions.shape, vectors.shape[-1])


def _predict(how: _Resolved, k: int, query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Class positions predicted for ``(e, NQ, D)`` queries given ``(e, N, K, D)`` support."""
    e, n_way, k_shot, _ = support.shape
    if how.method is not None:
        scores = _checked(how.method(support, query), (e, query.shape[1], n_way), how.name)
        # max(...).indices, not argmax: same first-best index, but torch's CPU argmax over a short
        # class dimension (strided, as class-major methods return it) is ~10x slower.
        return scores.max(dim=-1).indices
    prototype, pair = how.prototype, how.pair
    assert pair is not None  # _resolve gives a pair scorer whenever there is no method
    candidates = support.mean(dim=2) if prototype else support.flatten(1, 2)
    scores = _checked(
        pair(query, candidates), (e, query.shape[1], candidates.shape[1]), "pair scorer"
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
    * a few-shot method, by name (``"bd_cspn"``, ``"tim"``, …; see :data:`SCORERS` and
      :mod:`metriclab.evaluation.fewshot`) or as an :class:`EpisodeMethod` instance (e.g.
      ``SimpleShot(train_mean)``): each query goes to its best-scoring class. The result says
      whether the method was transductive.

    Equal best scores go to the lowest class (prototype) or support position (nearest). Episodes
    are scored ``chunk`` at a time as one batched tensor computation.

    Raises ``ValueError`` when an episode item is not in ``embeddings`` or its labels disagree.
    """
    how = _resolve(scorer, distance)
    prototype, name = how.prototype, how.name
    n_way, k_shot, n_query = episodes.n_way, episodes.k_shot, episodes.n_query
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_way * k_shot:
        raise ValueError(f"k must be an integer in [1, N·K = {n_way * k_shot}], got {k}")
    if (prototype or how.method is not None) and k != 1:
        which = "'prototype'" if prototype else name
        raise ValueError(f"k applies to nearest-neighbour scorers; scorer={which} needs k=1")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    support_pos, query_pos = episodes.resolve(embeddings.item_ids)
    _check_labels(episodes, embeddings.labels.numpy(), support_pos, query_pos)
    truth = torch.arange(n_way).repeat_interleave(n_query)
    correct = []
    vectors = embeddings.vectors
    step = max(1, min(chunk, episodes.n_episodes))
    dim = vectors.shape[-1]
    buffers = [vectors.new_empty(step * n_way * count, dim) for count in (k_shot, n_query)]
    for start in range(0, episodes.n_episodes, step):
        support = _gather(vectors, support_pos[start : start + step], buffers[0])
        query = _gather(vectors, query_pos[start : start + step], buffers[1])
        predicted = _predict(how, k, query.flatten(1, 2), support)
        correct.append((predicted.cpu() == truth).sum(dim=1))
    per_episode = torch.cat(correct).numpy().astype(np.float64) / (n_way * n_query)
    label = name if prototype or k == 1 else f"{k}-NN {name.removeprefix('nearest ')}"
    transductive = how.method is not None and how.method.transductive
    return EpisodeResult(
        float(per_episode.mean()),
        confidence_interval(per_episode),
        per_episode,
        label,
        transductive,
    )
