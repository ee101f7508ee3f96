"""The Siamese face tutorial many users start from, re-implemented as a baseline, and the shared scoring.

Harshvardhan Gupta, "Facial Similarity with Siamese Networks in PyTorch" (2017), re-implemented
from its published description (no code copied): three 3×3 convolutions of 4, 8 and 8 channels
(reflection padding, ReLU, BatchNorm, dropout 0.2), two 500-unit layers and a 5-d output;
contrastive loss with margin 2 (Hadsell, Chopra & LeCun 2006) on the Euclidean distance; grey
100×100 inputs scaled to [0, 1]; Adam at 5e-4; batches of 64 random pairs, half of them the same
subject. One epoch is as many pairs as there are training photos (the tutorial's data set length).

This module also owns the protocol that ``scripts/reproduce_faces.py`` shares, so the baseline and
metriclab's recipes are scored on exactly the same unseen subjects, episodes and pairs: the
subject folds (:func:`subject_folds`), the seeded episode sets (:func:`episode_sets`, drawn by item
id so any input size resolves them) and the scoring (:func:`score`: nearest neighbour under L2,
verification pairs from :class:`metriclab.data.PairSampler` with one seed).

    python scripts/faces_baseline.py                       # 3 folds x 1 seed, 100 epochs
    python scripts/faces_baseline.py --epochs 30 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metriclab.data import LabeledImages, PairSampler
from metriclab.data.episodes import EpisodeSet
from metriclab.data.registry import load_dataset
from metriclab.distances import L2, Distance
from metriclab.evaluation import Embeddings, Report, Scorer, evaluate_embeddings

DATA = Path("../shared/data/faces-orl/orl_faces_s01-s30.zip")
#: Episodes and verification pairs per fold; their seed is the fold's, never the training seed.
EPISODES, N_QUERY, PAIRS, EVAL_SEED = 1000, 5, 2000, 0
WAYS = (10, 5)


def subject_folds(class_names: tuple[str, ...], folds: int, seed: int) -> list[list[str]]:
    """``folds`` disjoint sets of test subjects covering every subject once (seeded permutation)."""
    if not 2 <= folds <= len(class_names) // 2:
        raise ValueError(
            f"folds={folds} must be between 2 and {len(class_names) // 2} for "
            f"{len(class_names)} subjects"
        )
    order = np.random.default_rng(seed).permutation(len(class_names))
    return [sorted(class_names[i] for i in part) for part in np.array_split(order, folds)]


def test_part(data: LabeledImages, subjects: list[str]) -> LabeledImages:
    """The photos of ``subjects`` only (ordered by item id, as the loader sorts them)."""
    return data.select_classes([data.class_names.index(name) for name in subjects])


def episode_sets(test: LabeledImages) -> dict[str, EpisodeSet]:
    """The seeded 10-way and 5-way 1-shot episode sets of one fold's unseen subjects."""
    ways = [n for n in WAYS if n <= test.num_classes]
    queries = min(N_QUERY, int(torch.bincount(test.labels).min()) - 1)
    return {
        f"{n}-way 1-shot": EpisodeSet.sample(test, n, 1, queries, EPISODES, seed=EVAL_SEED)
        for n in ways
    }


def score(
    embeddings: Embeddings,
    sets: dict[str, EpisodeSet],
    distance: Distance | None = None,
    scorer: Scorer = "nearest",
) -> Report:
    """Episodes (``scorer``, default nearest neighbour) and verification (−distance, default L2)
    on one fold.

    The pairs depend only on the labels and :data:`EVAL_SEED`, so every method scored on the
    same subjects meets the same pairs; the episodes are the same item ids.
    """
    distance = L2() if distance is None else distance
    return evaluate_embeddings(embeddings, distance, sets, PAIRS, EVAL_SEED, scorer=scorer)


class TutorialNet(nn.Module):
    """The tutorial's embedding net: ``(B, 1, S, S)`` in [0, 1] → ``(B, 5)``."""

    def __init__(self, size: int = 100, dim: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout in ((1, 4), (4, 8), (8, 8)):
            layers += [
                nn.ReflectionPad2d(1),
                nn.Conv2d(cin, cout, kernel_size=3),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(cout),
                nn.Dropout2d(p=0.2),
            ]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(8 * size * size, 500),
            nn.ReLU(inplace=True),
            nn.Linear(500, 500),
            nn.ReLU(inplace=True),
            nn.Linear(500, dim),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))


def contrastive_loss(distance: torch.Tensor, same: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of ``d²`` over same pairs and ``max(0, margin − d)²`` over different ones, ``(P,)`` in."""
    same = same.to(distance.dtype)
    hinge = torch.clamp(margin - distance, min=0.0)
    return torch.mean(same * distance.pow(2) + (1.0 - same) * hinge.pow(2))


@dataclass(frozen=True)
class BaselineSettings:
    """The tutorial's settings; ``epochs`` may be lowered on a loaded machine (say so)."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 5e-4
    margin: float = 2.0
    dim: int = 5


def _pixels(data: LabeledImages, positions: np.ndarray) -> torch.Tensor:
    return data.images[torch.as_tensor(positions)].float() / 255.0


def train_baseline(train: LabeledImages, settings: BaselineSettings, seed: int) -> TutorialNet:
    """Train the tutorial net on ``train`` (grey ``(N, 1, S, S)`` uint8) with random 50 % pairs."""
    torch.manual_seed(seed)
    net = TutorialNet(train.images.shape[-1], settings.dim)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr)
    steps = max(1, settings.epochs * len(train) // settings.batch_size)
    pairs = PairSampler(train.labels, settings.batch_size, batches=steps, seed=seed)
    net.train()
    for first, second, same in pairs:
        distance = torch.nn.functional.pairwise_distance(
            net(_pixels(train, first)), net(_pixels(train, second))
        )
        loss = contrastive_loss(distance, torch.as_tensor(same), settings.margin)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net


@torch.no_grad()
def embed_baseline(net: TutorialNet, data: LabeledImages, batch_size: int = 100) -> Embeddings:
    """``(N, 5)`` embeddings of ``data`` in eval mode (no dropout, running BatchNorm statistics)."""
    net.eval()
    parts = [
        net(_pixels(data, np.arange(start, min(start + batch_size, len(data)))))
        for start in range(0, len(data), batch_size)
    ]
    return Embeddings(torch.cat(parts), data.labels.clone(), tuple(data.item_ids))


def pixel_embeddings(data: LabeledImages) -> Embeddings:
    """Nothing learned: each photo's pixels ``(N, S·S)``, minus their mean, scaled to unit length.

    The reference a learned face metric must beat (nearest neighbour on centred, normalised
    pixels is the correlation matcher of Brunelli & Poggio 1993).
    """
    pixels = data.images.flatten(1).double() / 255.0
    centred = pixels - pixels.mean(dim=1, keepdim=True)
    unit = centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return Embeddings(unit.float(), data.labels.clone(), tuple(data.item_ids))


def load_faces(path: Path, size: int) -> LabeledImages:
    """The ORL photos at ``size`` × ``size``, grey, in memory."""
    return load_dataset("faces-orl", path, size, 1, progress=False)


def run_fold(
    data: LabeledImages, subjects: list[str], settings: BaselineSettings, seed: int
) -> tuple[Report, float]:
    """Train on every subject not in ``subjects``, score on ``subjects``: (report, minutes)."""
    held = [data.class_names.index(name) for name in subjects]
    rest = [c for c in range(data.num_classes) if c not in held]
    start = time.perf_counter()
    net = train_baseline(data.select_classes(rest), settings, seed)
    minutes = (time.perf_counter() - start) / 60
    test = test_part(data, subjects)
    return score(embed_baseline(net, test), episode_sets(test)), minutes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DATA, help="the ORL zip (default: %(default)s)"
    )
    parser.add_argument("--folds", type=int, default=3, help="subject folds (default: 3)")
    parser.add_argument("--fold-seed", type=int, default=0, help="seed of the subject folds")
    parser.add_argument("--epochs", type=int, default=100, help="epochs (tutorial: 100)")
    parser.add_argument("--only", type=int, nargs="+", help="run these fold indices only")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"error: {args.data} does not exist; pass --data or run from the repository root",
              file=sys.stderr)  # fmt: skip
        return 2
    torch.set_num_threads(args.threads)
    data = load_faces(args.data, 100)
    settings = BaselineSettings(epochs=args.epochs)
    for k, subjects in enumerate(subject_folds(data.class_names, args.folds, args.fold_seed)):
        for seed in args.seeds if args.only is None or k in args.only else []:
            report, minutes = run_fold(data, subjects, settings, seed)
            cells = " | ".join(str(r) for r in report.episodes.values())
            v = report.verification
            print(f"fold {k} seed {seed}: {cells} | AUC {v.auc:.4f} | EER {100 * v.eer:.2f} % | "
                  f"{minutes:.1f} min", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
