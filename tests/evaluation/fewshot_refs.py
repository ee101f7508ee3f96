"""Naive per-episode references for the few-shot methods, written from the papers' formulas with
explicit loops over queries and classes (independent of metriclab's batched code)."""

from __future__ import annotations

import math

import torch


def clustered_episodes(
    episodes: int, n_way: int, k_shot: int, n_query: int, dim: int, seed: int, noise: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Support ``(E, N, K, D)`` and class-major queries ``(E, N·Q, D)`` of Gaussian clusters."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(episodes, n_way, 1, dim, generator=g) * 1.5
    support = centres + noise * torch.randn(episodes, n_way, k_shot, dim, generator=g)
    query = centres + noise * torch.randn(episodes, n_way, n_query, dim, generator=g)
    return support, query.flatten(1, 2)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def simpleshot(support: torch.Tensor, query: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Wang et al. 2019: CL2N, then −‖x̃ − c̃‖² to each class centroid."""
    out = torch.empty(len(query), query.shape[1], support.shape[1])
    for e in range(len(query)):
        centroids = []
        for n in range(support.shape[1]):
            shots = [(s - mean) / (s - mean).norm() for s in support[e, n]]
            centroids.append(sum(shots) / len(shots))
        for q in range(query.shape[1]):
            x = (query[e, q] - mean) / (query[e, q] - mean).norm()
            for n, c in enumerate(centroids):
                out[e, q, n] = -float(((x - c) ** 2).sum())
    return out


def bd_cspn_prototypes(support: torch.Tensor, query: torch.Tensor, eps: float) -> torch.Tensor:
    """Liu et al. 2020, Eqs. 4-5 for one episode: support ``(N, K, D)``, query ``(Q, D)``."""
    n_way = support.shape[0]
    shift = support.reshape(-1, support.shape[-1]).mean(0) - query.mean(0)
    shifted = query + shift
    protos = support.mean(1)
    labels = [max(range(n_way), key=lambda n: _cos(x, protos[n])) for x in shifted]
    rectified = []
    for n in range(n_way):
        members = list(support[n]) + [
            x for x, label in zip(shifted, labels, strict=True) if label == n
        ]
        weights = [math.exp(eps * _cos(x, protos[n])) for x in members]
        rectified.append(sum(w * x for w, x in zip(weights, members, strict=True)) / sum(weights))
    return torch.stack(rectified)


def bd_cspn(support: torch.Tensor, query: torch.Tensor, eps: float) -> torch.Tensor:
    out = torch.empty(len(query), query.shape[1], support.shape[1])
    for e in range(len(query)):
        protos = bd_cspn_prototypes(support[e], query[e], eps)
        for q, x in enumerate(query[e]):
            for n, p in enumerate(protos):
                out[e, q, n] = _cos(x, p)
    return out


def laplacianshot_episode(
    support: torch.Tensor, query: torch.Tensor, lam: float, knn: int, steps: int, eps: float
) -> torch.Tensor:
    """Ziko et al. 2020, Algorithm 1 for one episode, one query at a time."""
    protos = bd_cspn_prototypes(support, query, eps)
    nq, n_way = len(query), len(protos)
    a = [[float(((x - p) ** 2).sum()) for p in protos] for x in query]
    w = [[0.0] * nq for _ in range(nq)]
    for i in range(nq):
        others = sorted(
            (j for j in range(nq) if j != i),
            key=lambda j: float(((query[i] - query[j]) ** 2).sum()),
        )
        for j in others[:knn]:
            w[i][j] = 1.0

    def softmax(v: list[float]) -> list[float]:
        top = max(v)
        exps = [math.exp(x - top) for x in v]
        return [x / sum(exps) for x in exps]

    y = [softmax([-x for x in row]) for row in a]
    old = math.inf
    for step in range(steps):
        y = [
            softmax(
                [-a[i][n] + lam * sum(w[i][j] * y[j][n] for j in range(nq)) for n in range(n_way)]
            )
            for i in range(nq)
        ]
        bound = sum(
            y[i][n] * math.log(y[i][n] + 1e-12) + a[i][n] * y[i][n]
            - lam * sum(w[i][j] * y[j][n] for j in range(nq)) * y[i][n]
            for i in range(nq) for n in range(n_way)
        )  # fmt: skip
        if step > 1 and abs(bound - old) <= 1e-6 * abs(old):
            break
        old = bound
    return torch.tensor(y)


def sinkhorn_episode(cost: torch.Tensor, lam: float) -> torch.Tensor:
    """Sinkhorn-Knopp for one episode: rows to 1, columns to Q / N, until rows settle."""
    plan = torch.exp(-lam * cost.double())
    plan /= plan.sum()
    per_class = cost.shape[0] // cost.shape[1]
    for _ in range(1000):
        rows = plan.sum(1)
        plan = plan / (rows + 1e-10)[:, None]
        plan = plan * (per_class / (plan.sum(0) + 1e-10))[None, :]
        if (rows - plan.sum(1)).abs().max() < 1e-6:
            break
    return plan.float()


def pt_map_episode(
    support: torch.Tensor, query: torch.Tensor, steps: int, lr: float, lam: float
) -> torch.Tensor:
    """Hu et al. 2020, Algorithm 1 for one episode (power 0.5, unit norm)."""

    def transform(x: torch.Tensor) -> torch.Tensor:
        t = (x.clamp_min(0) + 1e-6) ** 0.5
        return t / t.norm(dim=-1, keepdim=True)

    s, q = transform(support), transform(query)
    n_way, k_shot, _ = s.shape
    centres = s.mean(1)
    for _ in range(steps):
        soft = sinkhorn_episode(torch.cdist(q, centres) ** 2, lam)
        new = []
        for n in range(n_way):
            weights = [1.0] * k_shot + soft[:, n].tolist()
            points = list(s[n]) + list(q)
            new.append(sum(w * x for w, x in zip(weights, points, strict=True)) / sum(weights))
        centres = centres + lr * (torch.stack(new) - centres)
    return sinkhorn_episode(torch.cdist(q, centres) ** 2, lam)
