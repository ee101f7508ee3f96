"""Benchmark the data pipeline: loading Omniglot small1 ∪ small2, and augmentation vs a training step.

Loading (4,840 images → uint8 28×28): the peer is the per-item work of torchvision's
``datasets.Omniglot`` (PIL decode, ``convert("L")``, ``v2.Resize(antialias=True)``) in a plain loop
over an unpacked copy of both zips in a temporary folder, as a user without DataLoader workers
gets it. metriclab loads the same
unpacked folder and the zips themselves, cold (fresh cache folder; the time includes writing the
cache) and warm (from the cache).

Training: one real loop of steps, each timed in two parts: the data side (gather a random batch
from the in-memory uint8 tensor, Koch et al. 2015 random affine per sample, uint8 → float) and the
bare Conv-4 forward + backward + SGD step on that batch, at 28 and 105 px. The augmentation peer is the same
per-sample affine done with ``torchvision.transforms.v2.functional.affine`` in a loop (v2's
``RandomAffine`` on a batch would draw one transform for the whole batch).

Streaming (issue 14, ``scripts/_bench_streaming.py``): a folder of synthetic 256–500 px JPEG and
PNG photos made in a temporary folder, read by metriclab's ``stream`` / training path and by
torchvision's ``ImageFolder`` + ``DataLoader`` with the same transforms and worker count; peak RSS
while listing and iterating 20k vs 2k small files on disk; the toolkit's training step against a
bare PyTorch loop.

    python scripts/bench_data.py [--quick] [--threads 1] [--omniglot ../shared/data/omniglot]
                                 [--part all|omniglot|streaming]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as TF
from _timing import median_seconds
from PIL import Image
from torchvision.transforms import InterpolationMode

from metriclab.data import KochAffine, omniglot, to_float
from metriclab.models import backbone

SETS = ("images_background_small1.zip", "images_background_small2.zip")


def unpack_for_torchvision(zips: list[Path], root: Path) -> None:
    """Both small sets merged into ``root/omniglot-py/images_background`` (Greek, Latin once)."""
    target = root / "omniglot-py" / "images_background"
    for archive in zips:
        with zipfile.ZipFile(archive) as opened:
            for info in opened.infolist():
                parts = info.filename.split("/")[1:]
                if info.is_dir() or len(parts) != 3:
                    continue
                path = target.joinpath(*parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(opened.read(info))


def pil_loop_load(root: Path, size: int) -> torch.Tensor:
    """The peer: what ``torchvision.datasets.Omniglot.__getitem__`` does, file by file in order.

    (The dataset class itself refuses a folder without the original ``images_background.zip``,
    whose MD5 it checks, so the loop is written out.)
    """
    transform = v2.Compose([v2.Resize((size, size), antialias=True), v2.PILToTensor()])
    paths = sorted(root.glob("*/*/*.png"))
    return torch.stack([255 - transform(Image.open(path).convert("L")) for path in paths])


def bench_loading(shared: Path, repeats: int) -> list[tuple[str, float]]:
    zips = [shared / name for name in SETS]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        unpack_for_torchvision(zips, scratch)
        folder = scratch / "omniglot-py" / "images_background"
        peer = pil_loop_load(folder, 28)
        ours = omniglot(folder, size=28, cache=False, progress=False)  # also sorted by path
        agree = (peer.float() - ours.images.float()).abs().max()
        print(f"largest pixel difference PIL loop vs metriclab: {float(agree):.0f} / 255")
        loop = median_seconds(lambda: pil_loop_load(folder, 28), repeats)
        rows.append(("PIL + v2.Resize loop, unpacked folder (peer)", loop))

        def cold(source: object, workers: int | None = None) -> Callable[[], object]:
            def run() -> object:
                with tempfile.TemporaryDirectory() as cache:
                    return omniglot(source, size=28, cache=cache, progress=False, workers=workers)

            return run

        rows.append(
            ("metriclab, unpacked folder, 1 thread, cold", median_seconds(cold(folder, 1), repeats))
        )
        rows.append(("metriclab, unpacked folder, cold", median_seconds(cold(folder), repeats)))
        rows.append(("metriclab, both zips, cold", median_seconds(cold(zips), repeats)))
        cache = scratch / "cache"
        omniglot(zips, size=28, cache=cache, progress=False)
        warm = median_seconds(lambda: omniglot(zips, size=28, cache=cache, progress=False), repeats)
        rows.append(("metriclab, both zips, warm (cache)", warm))
    return rows


def per_sample_torchvision(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The peer: one ``v2.functional.affine`` call per image (isotropic scale, shear in degrees)."""
    out = torch.empty_like(images)
    for i, (angle, rx, ry, sx, sy, tx, ty) in enumerate(params.tolist()):
        out[i] = TF.affine(
            images[i],
            angle=-angle,
            translate=[tx, ty],
            scale=math.sqrt(sx * sy),
            shear=[math.degrees(math.atan(rx)), math.degrees(math.atan(ry))],
            interpolation=InterpolationMode.BILINEAR,
        )
    return out


def bench_training(data: torch.Tensor, batch: int, steps: int, repeats: int) -> dict[str, float]:
    """Seconds per step of the data side and of Conv-4 forward + backward + SGD, timed apart
    inside one real training loop (medians over ``repeats`` runs of ``steps`` steps)."""
    model = backbone("conv4", in_channels=1)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    augment = KochAffine()
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)

    def gather() -> torch.Tensor:
        return data[torch.from_numpy(rng.integers(0, len(data), batch))]

    def ours() -> torch.Tensor:
        return to_float(augment(gather(), generator))

    def peer() -> torch.Tensor:
        return to_float(per_sample_torchvision(gather(), augment.sample(batch, generator)))

    def loop(make_batch: Callable[[], torch.Tensor]) -> tuple[float, float]:
        data_seconds = model_seconds = 0.0
        for _ in range(steps):
            start = time.perf_counter()
            images = make_batch()
            middle = time.perf_counter()
            optimiser.zero_grad(set_to_none=True)
            model(images).sum().backward()
            optimiser.step()
            data_seconds += middle - start
            model_seconds += time.perf_counter() - middle
        return data_seconds / steps, model_seconds / steps

    loop(ours)  # warm-up: allocator, kernels
    times: dict[str, list[float]] = {"ours": [], "model": [], "peer": [], "peer model": []}
    for _ in range(repeats):
        for name, make_batch in (("ours", ours), ("peer", peer)):
            data_seconds, model_seconds = loop(make_batch)
            times[name].append(data_seconds)
            times["model" if name == "ours" else "peer model"].append(model_seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps (~1 minute)")
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "omniglot"
    parser.add_argument("--omniglot", type=Path, default=default, help="folder with the small sets")
    # One thread by default: on a shared 2-core machine, a second OpenMP thread that is not
    # scheduled makes every small tensor op wait for it (augmentation measured 1.7 ms → 55 ms).
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--part", choices=("all", "omniglot", "streaming"), default="all")
    parser.add_argument("--photos", type=int, default=1000, help="synthetic photos to stream")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("all", "streaming"):
        streaming(args)
    if args.part == "streaming":
        return
    if not all((args.omniglot / name).is_file() for name in SETS):
        # Exit status 77 tells scripts/bench.py "skipped": the suite keeps the old Data section.
        print(
            f"bench_data: skipped: {args.omniglot} lacks {' and '.join(SETS)}; pass --omniglot "
            "with the folder of the Omniglot small background sets",
            file=sys.stderr,
        )
        raise SystemExit(77)
    torch.set_num_threads(args.threads)
    import faiss  # after torch, as everywhere in metriclab; only for the version line

    print(
        f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__} ({args.threads} threads), torchvision {torchvision.__version__}, "
        f"Pillow {Image.__version__}, faiss {faiss.__version__}, shared with other jobs (noisy)"
    )
    repeats = 3 if args.quick else 7
    rows = bench_loading(args.omniglot, repeats)
    peer = rows[0][1]
    print("\n| load small1 ∪ small2 (4,840 images → 28×28) | median s | speed-up vs PIL loop |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {peer / seconds:.1f}× |")

    print(
        "\n| size | batch | Conv-4 fwd+bwd img/s | data + Koch affine img/s (metriclab, batched) "
        "| share of step | same with torchvision v2 per-sample loop | share of step |"
    )
    print("|---|---|---|---|---|---|---|")
    for size, batch, steps in (
        (28, 128, 10 if args.quick else 30),
        (105, 32, 2 if args.quick else 6),
    ):
        data = omniglot(
            [args.omniglot / name for name in SETS], size=size, cache=False, progress=False
        ).images
        t = bench_training(data, batch, steps, repeats)
        ours_share = t["ours"] / (t["ours"] + t["model"])
        peer_share = t["peer"] / (t["peer"] + t["peer model"])
        print(
            f"| {size} | {batch} | {batch / t['model']:,.0f} | {batch / t['ours']:,.0f} | "
            f"{100 * ours_share:.1f} % | {batch / t['peer']:,.0f} | {100 * peer_share:.1f} % |"
        )


def streaming(args: argparse.Namespace) -> None:
    """The issue 14 rows: streaming throughput, RSS over many files, step overhead."""
    import _bench_streaming as bench

    repeats = 3
    print(f"streaming: torch {torch.__version__} ({args.threads} threads), torchvision "
          f"{torchvision.__version__}, {os.cpu_count()} cores shared with other jobs (noisy)")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "photos"
        count = 400 if args.quick else args.photos
        bench.write_photos(root, count, classes=20, low=256, high=500)
        bench.bench_throughput(root, size=96, workers=2, repeats=repeats)
    bench.bench_rss((2_000, 20_000) if not args.quick else (500, 5_000))
    bench.bench_step(steps=5 if args.quick else 10, repeats=5)


if __name__ == "__main__":
    main()
