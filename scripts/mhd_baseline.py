"""Lake's Modified Hausdorff Distance one-shot classifier on metriclab's held-out Omniglot episodes.

The sanity peer of issue 18. Lake et al.'s Omniglot repository ships a demo classifier that needs
no training: each 105×105 image becomes the set of its inked pixel coordinates, centred on their
mean, and a query takes the class of the support image at the smallest Modified Hausdorff
Distance (Dubuisson & Jain 1994, "A modified Hausdorff distance for object matching", ICPR):

    MHD(A, B) = max( mean_{a∈A} min_{b∈B} ‖a − b‖ , mean_{b∈B} min_{a∈A} ‖a − b‖ ).

Lake's demo states 38.8 % error on his own 20 within-alphabet 20-way runs. Here it scores the same
published episode files every metriclab recipe is scored on (by default the Latin + Korean 20-way
and 5-way 1-shot sets), from the original images at their native 105 px, so the figures sit in the
same table as the trained models. Nearest-neighbour queries use scipy's k-d tree (scipy comes with
scikit-learn); each distinct (query, support) pair is computed once.

    python scripts/mhd_baseline.py                       # from the repository root
    python scripts/mhd_baseline.py --episodes episodes/omniglot-latin-korean-5way-1shot.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from metriclab.data import EpisodeSet, omniglot
from metriclab.evaluation import confidence_interval

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "omniglot"
ZIPS = [DATA / "images_background_small1.zip", DATA / "images_background_small2.zip"]
EPISODES = [
    ROOT / "episodes" / "omniglot-latin-korean-20way-1shot.jsonl",
    ROOT / "episodes" / "omniglot-latin-korean-5way-1shot.jsonl",
]


def ink_points(image: np.ndarray) -> np.ndarray:
    """The ``(n, 2)`` float (row, column) coordinates of the inked pixels of a ``(H, W)`` image
    with bright ink on a dark background, centred on their mean (as Lake's demo does, so that
    the distance ignores where on the canvas a character was drawn)."""
    if image.ndim != 2:
        raise ValueError(f"image must be (H, W), got shape {image.shape}")
    points = np.argwhere(image > 127).astype(np.float64)
    if not len(points):
        raise ValueError("the image has no inked pixel (no value above 127); it is blank")
    return points - points.mean(axis=0)


def modified_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """Modified Hausdorff Distance of two ``(n, 2)`` and ``(m, 2)`` point sets (Dubuisson & Jain
    1994): the larger of the two mean nearest-neighbour distances."""
    return _mhd(a, b, cKDTree(a), cKDTree(b))


def _mhd(a: np.ndarray, b: np.ndarray, tree_a: cKDTree, tree_b: cKDTree) -> float:
    return max(float(tree_b.query(a)[0].mean()), float(tree_a.query(b)[0].mean()))


def episode_accuracies(episodes: EpisodeSet, points: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-episode accuracy ``(E,)`` of the 1-nearest-support rule under the MHD.

    ``points`` maps every item id of the episodes to its :func:`ink_points`. With K > 1 shots a
    query takes the class of its nearest support image, as Lake's rule does for one shot.
    """
    trees = {item: cKDTree(p) for item, p in points.items()}
    cache: dict[tuple[str, str], float] = {}

    def cost(query: str, support: str) -> float:
        key = (query, support) if query < support else (support, query)
        if key not in cache:
            cache[key] = _mhd(points[query], points[support], trees[query], trees[support])
        return cache[key]

    n_way = episodes.n_way
    accuracies = np.empty(episodes.n_episodes)
    for e in range(episodes.n_episodes):
        support = episodes.support[e].reshape(-1)  # (N·K,), class-major
        queries = episodes.query[e].reshape(-1)  # (N·Q,), class-major
        costs = np.array([[cost(q, s) for s in support] for q in queries])
        predicted = costs.argmin(axis=1) // episodes.k_shot
        truth = np.repeat(np.arange(n_way), episodes.n_query)
        accuracies[e] = float((predicted == truth).mean())
    return accuracies


def item_points(paths: Sequence[Path], item_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Ink points of the named items, read from the Omniglot zips at the native 105 px."""
    alphabets = sorted({item.split("/")[0] for item in item_ids})
    data = omniglot(list(paths), alphabets=alphabets, size=None, progress=False)
    position = {item: i for i, item in enumerate(data.item_ids)}
    missing = [item for item in item_ids if item not in position]
    if missing:
        raise ValueError(f"episode item {missing[0]!r} is not in {', '.join(map(str, paths))}")
    images = data.images.numpy()
    return {item: ink_points(images[position[item], 0]) for item in item_ids}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, nargs="+", default=ZIPS, help="the Omniglot image zips or folders"
    )
    parser.add_argument(
        "--episodes", type=Path, nargs="+", default=EPISODES, help="metriclab episode files"
    )
    args = parser.parse_args(argv)
    for path in args.data:
        if not path.exists():
            print(
                f"error: {path} does not exist; pass the Omniglot zips with --data", file=sys.stderr
            )
            return 2
    print("| episodes | MHD 1-NN accuracy | error | time |\n|---|---:|---:|---:|")
    for file in args.episodes:
        start = time.perf_counter()
        episodes = EpisodeSet.load(file)
        points = item_points(args.data, episodes.item_ids)
        accuracies = episode_accuracies(episodes, points)
        mean, half = 100 * accuracies.mean(), 100 * confidence_interval(accuracies)
        print(
            f"| {file.name} ({episodes.n_episodes} × {episodes.n_way}-way {episodes.k_shot}-shot) "
            f"| {mean:.2f} ± {half:.2f} % | {100 - mean:.2f} % "
            f"| {time.perf_counter() - start:.0f} s |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
