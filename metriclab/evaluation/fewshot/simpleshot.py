"""SimpleShot: centre on the training-class mean, L2-normalise, nearest centroid.

Wang, Chao, Weinberger & van der Maaten, "SimpleShot: Revisiting Nearest-Neighbor Classification
for Few-Shot Learning" (2019), https://arxiv.org/abs/1911.04623. The CL2N transform
``x ↦ (x − x̄) / ‖x − x̄‖₂`` uses ``x̄``, the mean embedding of the *training* classes, so the
method stays inductive; queries then go to the nearest support centroid under Euclidean distance.

easyfsl's ``SimpleShot`` scores the cosine to the centroid instead; the two agree whenever every
centroid has the same norm (always in 1-shot) and can differ in a few queries with K > 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from metriclab.atomic import atomic_write
from metriclab.evaluation.episodes import SCORERS, EpisodeScorer
from metriclab.evaluation.method import EpisodeMethod, ScorerContext

#: The run-folder file that stores the training-class mean SimpleShot centres on.
TRAIN_MEAN = "train_mean.pt"


def cl2n(vectors: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Centre ``(..., D)`` vectors on ``mean`` ``(D,)``, then scale each to unit L2 norm."""
    return F.normalize(vectors - mean, dim=-1)


@dataclass(frozen=True, eq=False)
class SimpleShot(EpisodeMethod):
    """Nearest CL2N centroid; scores are ``−‖q̃ − c̃_n‖²`` ``(E, Q, N)``.

    ``train_mean``: ``(D,)`` mean embedding of the training classes.
    """

    train_mean: torch.Tensor
    transductive: ClassVar[bool] = False
    label: ClassVar[str] = "simpleshot (CL2N, L2)"

    def __post_init__(self) -> None:
        if self.train_mean.ndim != 1 or not torch.isfinite(self.train_mean).all():
            raise ValueError(
                f"SimpleShot: train_mean must be a finite (D,) vector, got shape "
                f"{tuple(self.train_mean.shape)}"
            )

    def __call__(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        if support.shape[-1] != self.train_mean.shape[0]:
            raise ValueError(
                f"SimpleShot: train_mean has {self.train_mean.shape[0]} dimensions but the "
                f"embeddings have {support.shape[-1]}; it belongs to another model"
            )
        mean = self.train_mean.to(support)
        centroids = cl2n(support, mean).mean(dim=2)  # (E, N, D)
        # With ‖q̃‖ = 1, −‖q̃ − c̃‖² = 2 q̃·c̃ − ‖c̃‖² − 1, and q̃·c̃ = (q·c̃ − x̄·c̃) / ‖q − x̄‖ with
        # ‖q − x̄‖² = ‖q‖² − 2 q·x̄ + ‖x̄‖²: one GEMM of the raw queries against the centroids and
        # x̄ together, and no (E, Q, D) tensor is written (those passes, and the page faults of
        # their fresh memory, were most of the time). Class-major (E, N, Q) scores, so the
        # argmax over classes reduces a middle dimension.
        rows = torch.cat([centroids, mean.expand(len(support), 1, -1)], dim=1)  # (E, N + 1, D)
        dots = torch.bmm(rows, query.transpose(1, 2))  # (E, N + 1, Q)
        to_mean = dots[:, -1:]  # q·x̄ (E, 1, Q)
        squared_q = torch.linalg.vector_norm(query, dim=-1).square().unsqueeze(1)
        norms = (squared_q - 2 * to_mean + mean.dot(mean)).clamp_min(1e-24).sqrt()
        cos = (dots[:, :-1] - (centroids @ mean).unsqueeze(-1)) / norms  # (E, N, Q)
        squared_c = centroids.pow(2).sum(dim=-1, keepdim=True)
        return (2 * cos - squared_c - 1).transpose(1, 2)


def _build(context: ScorerContext) -> SimpleShot:
    if context.train_mean is None:
        raise ValueError(
            "scorer 'simpleshot' centres on the training-class mean and none was given; evaluate "
            "a run (metriclab eval stores it) or pass SimpleShot(train_mean) as the scorer"
        )
    return SimpleShot(context.train_mean)


SCORERS.register("simpleshot", EpisodeScorer(prototype=True, method=_build, train_mean=True))


def store_train_mean(run_dir: Path, training_vectors: torch.Tensor) -> torch.Tensor:
    """The mean ``(D,)`` of ``(N, D)`` training-class embeddings, saved atomically as
    ``run_dir/train_mean.pt`` so the run records what SimpleShot centred on."""
    if training_vectors.ndim != 2 or len(training_vectors) == 0:
        raise ValueError(
            f"training_vectors must be a non-empty (N, D) matrix, got shape "
            f"{tuple(training_vectors.shape)}"
        )
    mean = training_vectors.double().mean(dim=0).float()
    with atomic_write(run_dir / TRAIN_MEAN, binary=True) as handle:
        torch.save({"train_mean": mean, "items": len(training_vectors)}, handle)
    return mean


def load_train_mean(run_dir: Path) -> torch.Tensor | None:
    """The training-class mean stored in ``run_dir``, or None when the run has none yet."""
    path = run_dir / TRAIN_MEAN
    if not path.is_file():
        return None
    return torch.load(path, weights_only=True)["train_mean"]
