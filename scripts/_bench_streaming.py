"""Streaming from disk against torchvision's ImageFolder + DataLoader, resident memory over many
files, and the toolkit's training step against a bare PyTorch loop (issue 14). Used by
``scripts/bench_data.py --part streaming``; prints Markdown tables."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms.v2 as v2
from PIL import Image

from metriclab.config import resolve_config
from metriclab.data import PhotoAugment, image_folder, stream, to_float
from metriclab.training import Trainer


def write_photos(root: Path, count: int, classes: int, low: int, high: int, seed: int = 0) -> None:
    """``count`` synthetic photos (smooth colour fields plus noise), half JPEG, half PNG."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        height, width = (int(v) for v in rng.integers(low, high + 1, size=2))
        y, x = np.mgrid[0:height, 0:width]
        base = rng.integers(0, 256, size=3)
        field = (base + 60 * np.sin(x / rng.uniform(8, 40))[..., None]
                 + 60 * np.cos(y / rng.uniform(8, 40))[..., None])  # fmt: skip
        noise = rng.normal(0, 12, size=(height, width, 3))
        pixels = np.clip(field + noise, 0, 255).astype(np.uint8)
        folder = root / f"class{i % classes:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = "jpg" if i % 2 else "png"
        Image.fromarray(pixels).save(folder / f"{i:06d}.{suffix}", quality=90)


def _rate(run: callable, images: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return images / statistics.median(times)


def bench_throughput(root: Path, size: int, workers: int, repeats: int, batch: int = 64) -> None:
    """images/s of one pass over the folder: decode, RGB, antialiased resize to ``size``."""
    resize = v2.Compose([v2.PILToTensor(), v2.Resize((size, size), antialias=True)])
    train = v2.Compose([v2.PILToTensor(), v2.Resize((size, size), antialias=True),
                        v2.RandomResizedCrop((size, size), scale=(0.35, 1.0), antialias=True),
                        v2.RandomHorizontalFlip(), v2.ColorJitter(0.4, 0.4, 0.4)])  # fmt: skip
    ours = image_folder(root, size=size, progress=False, storage="disk")
    augment = PhotoAugment()
    generator = torch.Generator().manual_seed(0)
    count = len(ours)

    def peer(transform: v2.Compose) -> callable:
        dataset = torchvision.datasets.ImageFolder(str(root), transform=transform)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers)
        return lambda: [b for b in loader]

    def ours_eval() -> None:
        for _ in stream(ours.images, batch, workers):
            pass

    def ours_train() -> None:
        # The training path: each drawn batch decoded by the thread pool, then augmented.
        for start in range(0, count, batch):
            augment(
                ours.images[np.arange(start, min(start + batch, count))].load(workers), generator
            )

    rows = [
        ("decode + resize, torchvision ImageFolder + DataLoader (peer)", peer(resize)),
        ("decode + resize, metriclab `stream` (DataLoader workers)", ours_eval),
        ("+ crop/flip/jitter in workers, torchvision ImageFolder + DataLoader (peer)", peer(train)),
        ("+ crop/flip/jitter, metriclab training path (decode threads, then `photo`)", ours_train),
    ]
    rates = [(name, _rate(run, count, repeats)) for name, run in rows]
    print(f"\n| {count} photos → {size}×{size}, {workers} workers/threads, batch {batch} "
          "| images/s (median) | per worker | vs peer |")  # fmt: skip
    print("|---|---|---|---|")
    for index, (name, rate) in enumerate(rates):
        peer_rate = rates[0 if index < 2 else 2][1]
        print(f"| {name} | {rate:,.0f} | {rate / workers:,.0f} | {rate / peer_rate:.2f}× |")


def _rss_mib() -> float:
    """This process's resident set size now (Linux ``/proc/self/status``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def rss_child(count: int) -> None:
    """(In a fresh process) list ``count`` files on disk and iterate them all; print the RSS
    before listing and the largest RSS seen after each batch."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        rng = np.random.default_rng(0)
        for i in range(count):
            folder = root / f"c{i % 100:03d}"
            folder.mkdir(exist_ok=True)
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
        before = _rss_mib()
        data = image_folder(root, size=32, progress=False, storage="disk")
        listed, seen, peak = _rss_mib(), 0, 0.0
        for images in stream(data.images, 256, workers=0):
            seen += len(images)
            peak = max(peak, _rss_mib())
        print(f"{count} {seen} {before:.1f} {listed:.1f} {peak:.1f}")


def bench_rss(counts: tuple[int, ...]) -> None:
    print("\n| files on disk (32×32 PNG) | RSS before listing, MiB | after listing | largest while "
          "iterating all (batches of 256) | growth, MiB |")  # fmt: skip
    print("|---|---|---|---|---|")
    for count in counts:
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(count)],
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        _, seen, before, listed, peak = (float(v) for v in out)
        print(f"| {int(seen):,} | {before:.1f} | {listed:.1f} | {peak:.1f} | {peak - before:.1f} |")


def bench_step(steps: int, repeats: int) -> None:
    """The toolkit's siamese step against the same work written as a bare loop."""
    config = resolve_config("digits-siamese", ["train.steps=100000"])
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, Path(scratch) / "run", progress=False)
    bare_model = Trainer(config, Path(scratch) / "run2", progress=False).model
    images = trainer.train_data.images
    optimiser = torch.optim.AdamW(bare_model.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    pairs = trainer.objective.pairs

    def bare() -> None:
        first, second, same = pairs.draw(rng, 128)
        batch = to_float(images[torch.from_numpy(np.concatenate([first, second]))])
        e1, e2 = bare_model.embedding_net(batch).split(len(first))
        loss = F.binary_cross_entropy_with_logits(
            bare_model.logits(e1, e2), torch.from_numpy(same).float()
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def ours() -> None:
        trainer.step += 1
        trainer._one_step()

    ratios, ours_t, bare_t = [], [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        a = time.perf_counter()
        [ours() for _ in range(steps)]
        b = time.perf_counter()
        [bare() for _ in range(steps)]
        c = time.perf_counter()
        ours_t.append((b - a) / steps)
        bare_t.append((c - b) / steps)
        ratios.append((b - a) / (c - b))
    print("\n| digits-siamese step (conv4, 128 pairs) | median ms/step |")
    print("|---|---|")
    print(
        f"| bare PyTorch loop (same model, batch, loss, AdamW) | {1000 * statistics.median(bare_t):.1f} |"
    )
    print(f"| metriclab `Trainer` step | {1000 * statistics.median(ours_t):.1f} |")
    print(f"| median ratio metriclab / bare over {repeats} interleaved runs of {steps} steps | "
          f"**{statistics.median(ratios):.3f}×** |")  # fmt: skip


if __name__ == "__main__" and sys.argv[1:2] == ["--rss-child"]:
    rss_child(int(sys.argv[2]))
