"""Benchmark stroke-level augmentation against the image affine and a training step (issue 18).

On Omniglot small1 ∪ small2 at 28 px, batches of 128 items (32 classes × 4, with rotation and
mirror suffixes as the ``omniglot-strokes`` recipe draws them): the median time of

* Koch et al.'s affine on the batch (``data.augment: affine``, what ``omniglot-triplet`` does),
* ``data.augment: strokes`` at ``p`` = 0.25, 0.5 and 1 (share of items re-drawn from perturbed
  strokes: gather, perturb, render, rotate/mirror; the rest get the affine),
* the bare training step it feeds: ``conv4_nopool`` forward + backward + Adam on 128 images,
* the auxiliary target's stroke maps of the batch (``data.augment_params.auxiliary``),

and each augmentation's share of (augmentation + step). One torch thread unless ``--threads``.

    python scripts/bench_strokes.py [--repeats 15] [--threads 1] [--omniglot ../shared/data/omniglot]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from _timing import median_seconds

from metriclab.data import KochAffine, omniglot, to_float
from metriclab.data.stroke_augment import StrokeAugmentation
from metriclab.models import EmbeddingNet, backbone

SUFFIXES = ("", "@rot90", "@rot180", "@rot270", "@mirror", "@rot90@mirror")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--omniglot", type=Path, default=Path("../shared/data/omniglot"))
    args = parser.parse_args()
    if not args.omniglot.is_dir():
        print(f"error: {args.omniglot} is missing; run from the repository root", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    images = [args.omniglot / f"images_background_small{k}.zip" for k in (1, 2)]
    strokes = [args.omniglot / f"strokes_background_small{k}.zip" for k in (1, 2)]
    data = omniglot(images, size=28, progress=False)
    rng = np.random.default_rng(0)
    positions = rng.choice(len(data), 128, replace=False)
    batch = data.images[torch.from_numpy(positions)]
    ids = [data.item_ids[p] + SUFFIXES[i % len(SUFFIXES)] for i, p in enumerate(positions)]
    net = EmbeddingNet(backbone("conv4_nopool", 1), dim=64, in_channels=1, image_size=28)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        optimiser.zero_grad()
        net(to_float(batch)).square().mean().backward()
        optimiser.step()

    generator = torch.Generator().manual_seed(0)
    rows = [
        ("bare training step (conv4_nopool, 128 × 28 px)", median_seconds(step, args.repeats, True))
    ]
    affine = KochAffine()
    rows.append(("affine", median_seconds(lambda: affine(batch, generator), args.repeats, True)))
    augment = StrokeAugmentation([str(s) for s in strokes])
    for p in (0.25, 0.5, 1.0):
        augment.p = p
        seconds = median_seconds(lambda: augment(batch, generator, ids), args.repeats, True)
        rows.append((f"strokes, p = {p}", seconds))
    # The auxiliary target's maps (data.augment_params.auxiliary) on conv4_nopool's 3 × 3 map.
    maps = median_seconds(lambda: augment.auxiliary_targets(ids, 3), args.repeats, True)
    rows.append(("auxiliary stroke maps, 3 × 3 (targets only)", maps))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}, "
        f"load average {load:.2f}, median of {args.repeats}"
    )
    print("| what | median ms | share of augmentation + step |")
    print("|---|---:|---:|")
    step_seconds = rows[0][1]
    for name, seconds in rows:
        share = (
            "–" if name.startswith("bare") else f"{100 * seconds / (seconds + step_seconds):.0f} %"
        )
        print(f"| {name} | {1000 * seconds:.1f} | {share} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
