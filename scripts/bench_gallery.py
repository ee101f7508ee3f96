"""Serving benchmarks: identify throughput against a large gallery, ONNX Runtime against TorchScript
embedding, and the cost of ``gallery add`` as the gallery grows. Prints the ``## Gallery`` section
of BENCHMARKS.md.

    OMP_NUM_THREADS=1 python scripts/bench_gallery.py [--quick]

A tiny digits run (20 steps) is trained and exported first, so the bundle is real (Conv-4,
D = 64, learned weighted L1, TorchScript + ONNX); gallery vectors are seeded random 64-d vectors
(their values do not change the cost of exact search).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import torch  # noqa: E402  (before faiss)
from _timing import median_seconds  # noqa: E402

from metriclab.bundle import Bundle, Gallery  # noqa: E402
from metriclab.bundle.embedders import OnnxEmbedder  # noqa: E402
from metriclab.cli import main  # noqa: E402


def _status(field: str) -> float:
    """A /proc/self/status memory field in MB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0), so the next peak is this phase's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def make_bundle(folder: Path) -> Bundle:
    with redirect_stdout(io.StringIO()):
        run = folder / "run"
        assert main(["train", "--no-progress", "--run-dir", str(run), "train.steps=20"]) == 0
        assert main(["export", str(run), "-o", str(folder / "bundle")]) == 0
    return Bundle.load(folder / "bundle", "torchscript")


def bench_embedding(bundle: Bundle, count: int, repeats: int) -> list[str]:
    images = np.random.default_rng(0).integers(0, 256, (count, 1, 16, 16), dtype=np.uint8)
    onnx = OnnxEmbedder(bundle.folder / "embedder.onnx", threads=1)
    scripted = bundle.engine
    gap = float(np.abs(onnx(images[:256]) - scripted(images[:256])).max())

    def run(engine: object) -> float:
        return median_seconds(
            lambda: [engine(images[i : i + 256]) for i in range(0, count, 256)],
            repeats,
            warmup=True,
        )

    t_ts, t_onnx = run(scripted), run(onnx)
    return [
        f"| TorchScript (torch, 1 thread) | {count / t_ts:,.0f} | 1.00 |",
        f"| ONNX Runtime (CPU provider, 1 thread) | {count / t_onnx:,.0f} | {t_ts / t_onnx:.2f} |",
        f"\nMax |ONNX − TorchScript| over 256 embeddings: {gap:.1e}.",
    ]


def _gallery(bundle: Bundle, size: int, seed: int = 0) -> Gallery:
    rng = np.random.default_rng(seed)
    gallery = Gallery(bundle)
    step = 100_000
    for start in range(0, size, step):
        n = min(step, size - start)
        gallery.enrol(
            rng.normal(size=(n, 64)).astype(np.float32),
            [f"c{i % 1000}" for i in range(start, start + n)],
            [f"i{i}" for i in range(start, start + n)],
        )
    return gallery


def bench_identify(bundle: Bundle, sizes: list[int], queries: int, repeats: int) -> list[str]:
    rows = []
    probe = np.random.default_rng(1).normal(size=(queries, 64)).astype(np.float32)
    for size in sizes:
        gallery = _gallery(bundle, size)
        held = gallery.vectors.nbytes / 2**20
        reset = _reset_peak()
        before = _status("VmRSS")
        t = median_seconds(lambda g=gallery: g.identify(probe, "nearest", threshold=1.0), repeats)
        extra = _status("VmHWM") - before if reset else float("nan")
        # The peer: numpy brute force (the bundle's own distance, 64 queries at a time).
        few = probe[:64]
        t_brute = median_seconds(
            lambda g=gallery, q=few: g.bundle.scorer.matrix(q, g.vectors).argmin(1), 1
        )
        brute_rate = len(few) / t_brute
        rows.append(
            f"| {size:,} | {queries / t:,.0f} | {brute_rate:,.1f} | {queries / t / brute_rate:.0f} | "
            f"{2 * held:,.0f} | {extra:,.0f} |"
        )
        del gallery
    return rows


def bench_add(bundle: Bundle, total: int, batch: int, folder: Path) -> list[str]:
    """µs per added item: in a live gallery (enrol + save) and as the CLI does it (load first)."""
    rng = np.random.default_rng(2)
    live = Gallery(bundle)
    live.save(folder / "g")
    rows, live_cost = [], []
    checkpoints = {0, (total // 2) // batch * batch, total - batch}
    for start in range(0, total, batch):
        vectors = rng.normal(size=(batch, 64)).astype(np.float32)
        classes = [f"c{i % 1000}" for i in range(start, start + batch)]
        ids = [f"i{i}" for i in range(start, start + batch)]
        began = time.perf_counter()
        live.enrol(vectors, classes, ids)
        live.save()
        live_cost.append((time.perf_counter() - began) / batch)
        if start in checkpoints:
            began = time.perf_counter()
            Gallery.load(folder / "g", bundle)  # what 'gallery add' reads before it adds
            load = (time.perf_counter() - began) / batch
            rows.append(
                f"| {start:,} → {start + batch:,} | {live_cost[-1] * 1e6:.1f} | "
                f"{(live_cost[-1] + load) * 1e6:.1f} |"
            )
    rebuilt = Gallery(bundle)
    began = time.perf_counter()
    rebuilt.enrol(live.vectors, live.classes.tolist(), live.item_ids.tolist())
    rebuilt.save(folder / "rebuilt")
    rebuild = time.perf_counter() - began
    rows.append(
        f"\nRebuilding all {total:,} items from their vectors instead: {rebuild:.2f} s, "
        f"{rebuild / (live_cost[-1] * batch):.0f}× the last incremental add of {batch:,}."
    )
    return rows


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller gallery, fewer queries")
    parser.add_argument("--only-add", action="store_true", help="print only the add table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [100_000] if args.quick else [200_000, 1_000_000]
    queries, repeats = (1_000, 3) if args.quick else (2_000, 3)
    add_total = 50_000 if args.quick else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp))
        if args.only_add:
            print("\n".join(bench_add(bundle, add_total, 10_000, Path(tmp))))
            return
        embedding = bench_embedding(bundle, 2_048, 5)
        identify = bench_identify(bundle, sizes, queries, repeats)
        adding = bench_add(bundle, add_total, 10_000, Path(tmp))
    command = f"OMP_NUM_THREADS=1 python scripts/bench_gallery.py{' --quick' if args.quick else ''}"
    print("## Gallery\n")
    print(
        f"Command: `{command}`. Machine: 2 cores shared with other jobs (three other helpers "
        "training and testing): medians of few runs, read the ratios. One thread everywhere.\n"
    )
    print(
        "**Embedding** 2,048 digit images (uint8 16×16, Conv-4, D = 64), batches of 256, images/s:\n"
    )
    print("| engine | images/s | speed vs TorchScript |\n| --- | ---: | ---: |")
    print("\n".join(embedding))
    print(
        f"\n**Identify** {queries:,} query embeddings (nearest neighbour, exact FAISS flat search "
        "under the learned weighted L1, chunks of 4,096 queries, open-set threshold applied) "
        "against a gallery of random 64-d vectors of 1,000 classes. The peer is numpy brute force "
        "with the same distance. Memory: the gallery holds its raw vectors and the FAISS index "
        "(two float32 copies); 'search peak' is the growth of peak RSS during the timed searches.\n"
    )
    print(
        "| gallery items | identify queries/s | numpy brute force queries/s | ratio | gallery MB | search peak MB |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(identify))
    print(
        f"\n**Add** 10,000 new vectors at a time (`enrol` + `save`: FAISS add, one new segment "
        f"file, atomic commit) as the gallery grows to {add_total:,}; embedding excluded. "
        "'with load' adds the `Gallery.load` that the `gallery add` command does first (reads "
        "every segment: O(gallery)). µs per added item:\n"
    )
    print("| gallery before → after | live gallery | with load (CLI) |\n| --- | ---: | ---: |")
    print("\n".join(adding))


if __name__ == "__main__":
    main_bench()
