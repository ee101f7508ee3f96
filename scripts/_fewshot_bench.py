"""The few-shot methods against easyfsl on identical episodes and precomputed features.

Used by ``scripts/bench_eval.py`` (its "Few-shot methods" section; ``--fewshot`` runs it alone).
easyfsl is run the way its ``evaluate`` loop runs a task (a fresh classifier per episode,
``process_support_set`` then ``forward``) but called directly on feature tensors, without its
DataLoader, which only flatters easyfsl. metriclab scores the same episodes as an ``EpisodeSet``
through ``evaluate_episodes`` (id lookup, gather, 256 episodes per batch), all included.
Both sides use easyfsl's hyperparameters, so the labels should agree query for query.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from statistics import median

import numpy as np
import torch

from metriclab.data import EpisodeSet
from metriclab.evaluation import Embeddings, EpisodeResult, evaluate_episodes
from metriclab.evaluation.fewshot import BDCSPN, PTMAP, TIM, LaplacianShot, SimpleShot
from metriclab.evaluation.method import EpisodeMethod

DIM = 64
#: Seconds of easyfsl runs one row may take before its timing falls back to a single run.
BUDGET = 60.0


def features(classes: int, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative (post-ReLU, as PT-MAP expects) Gaussian clusters ``(C·P, 64)`` of unit mean
    norm (so that easyfsl's float32 Sinkhorn does not underflow), and labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    centres = torch.randn(classes, DIM, generator=generator)
    noisy = centres[labels] + 1.3 * torch.randn(len(labels), DIM, generator=generator)
    noisy = noisy.relu()
    return noisy / noisy.norm(dim=1).mean(), labels


def sample(labels: torch.Tensor, n: int, k: int, q: int, count: int, seed: int) -> np.ndarray:
    """``(count, n, k + q)`` item positions: seeded classes and items, class-major."""
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels.numpy() == c) for c in range(int(labels.max()) + 1)]
    episodes = np.empty((count, n, k + q), dtype=np.int64)
    for e in range(count):
        for i, c in enumerate(rng.choice(len(by_class), n, replace=False)):
            episodes[e, i] = rng.choice(by_class[c], k + q, replace=False)
    return episodes


def easyfsl_run(
    build: Callable[[], torch.nn.Module], vectors: torch.Tensor, items: np.ndarray, k: int
) -> np.ndarray:
    """easyfsl's labels ``(E, N·Q)`` for every episode, one task at a time."""
    n = items.shape[1]
    support_labels = torch.arange(n).repeat_interleave(k)
    predictions = []
    for episode in torch.from_numpy(items):
        model = build()
        model.process_support_set(vectors[episode[:, :k].flatten()], support_labels)
        with torch.no_grad():
            predictions.append(model(vectors[episode[:, k:].flatten()]).argmax(-1))
    return torch.stack(predictions).numpy()


def pairs(
    train_mean: torch.Tensor,
) -> list[tuple[str, EpisodeMethod, Callable[[], torch.nn.Module]]]:
    """(name, metriclab method, easyfsl classifier factory) with easyfsl's hyperparameters."""
    from easyfsl import methods

    return [
        ("SimpleShot", SimpleShot(train_mean),
         lambda: methods.SimpleShot(feature_centering=train_mean, feature_normalization=2)),
        ("BD-CSPN", BDCSPN(temperature=1.0), methods.BDCSPN),
        ("LaplacianShot", LaplacianShot(neighbours=2, rectify_temperature=1.0), methods.LaplacianShot),
        ("TIM", TIM(), methods.TIM),
        ("PT-MAP", PTMAP(normalize=False), methods.PTMAP),
    ]  # fmt: skip


def _timed(run: Callable[[], object]) -> tuple[object, float, float]:
    """``run()``'s result, wall seconds and this process's CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def alternated(
    theirs: Callable[[], object], ours: Callable[[], object], repeats: int, budget: float
) -> tuple[list[object], list[tuple[float, float]], int]:
    """Both sides' first results, their median (wall, CPU) seconds, and the runs per side, under
    one rule: runs alternate (easyfsl, metriclab, easyfsl, …) so that load on the machine falls
    on both alike, and each side's times are the medians of its ``repeats`` runs, or its first
    run alone when ``repeats`` easyfsl runs would take longer than ``budget`` seconds (TIM,
    PT-MAP). CPU time (one thread) is what the load on a shared machine disturbs least."""
    results: list[object] = []
    times: list[list[tuple[float, float]]] = [[], []]
    for side, run in enumerate((theirs, ours)):
        result, wall, cpu = _timed(run)
        results.append(result)
        times[side].append((wall, cpu))
    runs = repeats if times[0][0][0] * repeats <= budget else 1
    for _ in range(runs - 1):
        for side, run in enumerate((theirs, ours)):
            times[side].append(_timed(run)[1:])
    medians = [(median(t[0] for t in side), median(t[1] for t in side)) for side in times]
    return results, medians, runs


def bench_fewshot(
    episodes: int, repeats: int, settings: tuple[tuple[int, int, int], ...]
) -> tuple[list[str], list[float], list[float]]:
    """Markdown rows and the wall-time and CPU-time speed-ups, one per (setting, method)."""
    vectors, labels = features(100, 40, seed=0)
    train_mean = features(64, 20, seed=1)[0].mean(0)  # other (training) classes
    embeddings = Embeddings(vectors, labels, tuple(str(i) for i in range(len(labels))))
    rows: list[str] = []
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    for n, k, q in settings:
        items = sample(labels, n, k, q, episodes, seed=n * 100 + k)
        ids = items.astype(str)
        classes = labels.numpy()[items[:, :, 0]].astype(str)
        episode_set = EpisodeSet(classes, ids[:, :, :k], ids[:, :, k:], {"source": "bench"})
        truth = np.arange(n).repeat(q)
        for name, method, build in pairs(train_mean):
            (theirs, ours), times, runs = alternated(
                partial(easyfsl_run, build, vectors, items, k),
                partial(evaluate_episodes, embeddings, episode_set, method),
                repeats,
                budget=BUDGET,
            )
            assert isinstance(theirs, np.ndarray) and isinstance(ours, EpisodeResult)
            (theirs_wall, theirs_cpu), (ours_wall, ours_cpu) = times
            theirs_acc = float((theirs == truth).mean())
            ratios.append(theirs_wall / ours_wall)
            cpu_ratios.append(theirs_cpu / ours_cpu)
            rows.append(
                f"| {n}-way {k}-shot {q}-query | {name} | {method.label} "
                f"| {'transductive' if method.transductive else 'inductive'} | {runs} "
                f"| {episodes / theirs_wall:,.0f} | {episodes / ours_wall:,.0f} "
                f"| {theirs_wall / ours_wall:,.1f}× | {theirs_cpu / ours_cpu:,.1f}× "
                f"| {100 * theirs_acc:.2f} % "
                f"| {100 * ours.mean:.2f} % | {100 * abs(ours.mean - theirs_acc):.2f} pt |"
            )
    return rows, ratios, cpu_ratios


def fewshot_text(episodes: int, repeats: int, settings: tuple[tuple[int, int, int], ...]) -> str:
    rows, ratios, cpu_ratios = bench_fewshot(episodes, repeats, settings)
    verdict = "met" if min(ratios) >= 10 else "**not met** for some rows"
    cpu_verdict = "met" if min(cpu_ratios) >= 10 else "**not met** for some rows"
    return f"""**Few-shot methods against easyfsl** ({episodes} seeded episodes per setting, identical
for both; 100 classes × 40 precomputed non-negative 64-d vectors of unit mean norm; SimpleShot centres on the mean of
64 other classes). easyfsl runs each task as its `evaluate` loop does (fresh classifier,
`process_support_set`, `forward`) but directly on feature tensors, without its DataLoader;
metriclab runs `evaluate_episodes(embeddings, episode_set, method)` (id lookup and gathers
included). Both sides use easyfsl's hyperparameters (BD-CSPN ε = 1, LaplacianShot λ = 0.7 with 2
neighbours, TIM 50 Adam steps, PT-MAP without the unit-norm step), so labels should match query
for query; SimpleShot differs on purpose with K > 1 (the paper's Euclidean nearest centroid, not
easyfsl's cosine). Timing, the same rule for both sides: runs alternate (easyfsl, metriclab, …) so
that load falls on both alike, and each side's time is the median of its {repeats} runs, or of
its first run alone where {repeats} easyfsl runs would exceed {BUDGET:.0f} s (column "runs"); each
side's wall time and, with one thread, its process CPU time (which the other jobs on a shared
machine disturb least) give the two speed-ups.

| setting | method | metriclab scorer | inference | runs | easyfsl (episodes/s) | metriclab (episodes/s) | speed-up (wall) | speed-up (CPU) | easyfsl accuracy | metriclab accuracy | gap |
| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

The target of ≥ 10× is {verdict} in wall time (smallest speed-up {min(ratios):.1f}×) and
{cpu_verdict} in CPU time (smallest {min(cpu_ratios):.1f}×).
"""
