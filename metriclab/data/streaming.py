"""Images that stay on disk: a per-item index (paths, labels) whose pixels are decoded on demand.

A :class:`DiskImages` stands where a uint8 ``(N, C, H, W)`` tensor stands in
:class:`~metriclab.data.LabeledImages`: it has that ``shape`` and ``dtype``, and indexing it
(by position, slice, mask-free index array) gives another :class:`DiskImages` over those items,
so every split, subset and sampler works unchanged and holds only the index. Pixels appear when
asked for: :func:`pixels` decodes a batch (training: a thread pool, since PIL releases the GIL
while it inflates and resamples), :func:`stream` yields consecutive batches decoded in
``DataLoader`` worker processes (evaluation). Memory grows with the index, not with the pixels.

Decoding is :func:`~metriclab.data.decode.decode_one`, the very function the in-memory loaders
use, so an item decodes to the same uint8 array on disk as in memory, and a seed gives the same
batches either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from metriclab.data.decode import ImageEntry, _Decoding, _Reader

#: Threads that decode a training batch (the machine's cores; at most 8).
DECODE_THREADS = min(8, os.cpu_count() or 1)


class DiskImages:
    """``N`` images on disk, decoded to uint8 ``(C, size, size)`` when read.

    Args:
        entries: where each image lives (:class:`~metriclab.data.decode.ImageEntry`).
        size: every image is resized to ``size``×``size`` (needed: a batch must stack).
        channels: 1 (grey) or 3 (RGB); files of either kind are converted.
        invert: map v → 255 − v after decoding.
    """

    dtype = torch.uint8
    ndim = 4

    def __init__(
        self, entries: Sequence[ImageEntry], size: int, channels: int, invert: bool = False
    ) -> None:
        if size is None or size < 1:
            raise ValueError(
                f"images streamed from disk need a positive data.size to stack a batch, got {size}"
            )
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        self.entries = tuple(entries)
        self.decoding = _Decoding(size, channels, invert)

    @property
    def shape(self) -> torch.Size:
        size = self.decoding.size
        return torch.Size((len(self.entries), self.decoding.channels, size, size))

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int | slice | np.ndarray | torch.Tensor) -> DiskImages:
        """The items at ``index`` (a position, slice or integer array), still on disk."""
        if isinstance(index, slice):
            chosen: Sequence[ImageEntry] = self.entries[index]
        elif isinstance(index, int):
            chosen = [self.entries[index]]
        else:
            chosen = [self.entries[p] for p in np.asarray(index, dtype=np.int64).ravel().tolist()]
        decoding = self.decoding
        return DiskImages(chosen, decoding.size, decoding.channels, decoding.invert)  # type: ignore[arg-type]

    def decode(self, position: int, reader: _Reader | None = None) -> np.ndarray:
        """Item ``position`` as uint8 ``(C, size, size)``; a bad file raises ``ValueError`` naming it."""
        own = reader is None
        reader = reader or _Reader()
        try:
            return self.decoding(reader, self.entries[position])
        finally:
            if own:
                reader.close()

    def load(self, threads: int = DECODE_THREADS) -> torch.Tensor:
        """Every item decoded, uint8 ``(N, C, size, size)``, in order."""
        out = np.empty(tuple(self.shape), dtype=np.uint8)
        reader = _Reader()
        try:
            if threads <= 1 or len(self) <= 1:
                for p in range(len(self)):
                    out[p] = self.decode(p, reader)
            else:
                with ThreadPoolExecutor(max_workers=threads) as pool:
                    for p, array in enumerate(
                        pool.map(lambda q: self.decode(q, reader), range(len(self)))
                    ):
                        out[p] = array
        finally:
            reader.close()
        return torch.from_numpy(out)


def pixels(images: torch.Tensor | DiskImages) -> torch.Tensor:
    """The uint8 ``(N, C, H, W)`` pixels of an image store: a tensor as it is, disk images decoded."""
    return images.load() if isinstance(images, DiskImages) else images


class _Items(Dataset[torch.Tensor]):
    """Map-style data set over a :class:`DiskImages` for ``DataLoader`` workers."""

    def __init__(self, images: DiskImages) -> None:
        self.images = images
        self.reader: _Reader | None = None  # one per worker process, opened lazily

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, position: int) -> torch.Tensor:
        if self.reader is None:
            self.reader = _Reader()
        return torch.tensor(self.images.decode(position, self.reader))  # a writable copy


def stream(
    images: torch.Tensor | DiskImages, batch_size: int, workers: int = 2
) -> Iterator[torch.Tensor]:
    """Consecutive uint8 batches ``(≤ batch_size, C, H, W)`` of ``images``, in order.

    Disk images are decoded in ``workers`` ``DataLoader`` worker processes (0: in this process);
    a file that cannot be decoded stops the stream with the error naming it.
    """
    if not isinstance(images, DiskImages):
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
        return
    loader = DataLoader(_Items(images), batch_size=batch_size, shuffle=False, num_workers=workers)
    try:
        yield from loader
    except ValueError as failure:
        # A worker's error arrives wrapped in its traceback text; keep the sentence naming the file.
        last = str(failure).strip().splitlines()[-1]
        raise ValueError(last.removeprefix("ValueError: ")) from None


def readable(
    entries: Sequence[ImageEntry],
    size: int | None,
    channels: int,
    invert: bool = False,
    threads: int = DECODE_THREADS,
) -> tuple[list[ImageEntry], list[str]]:
    """``entries`` split into those that decode and the origins of those that do not.

    Every entry is decoded once, exactly as training will decode it (``data.skip_bad``): a file
    is only known to be good once PIL has inflated it, and finding the bad ones before training
    keeps the item list, hence every seeded batch, the same in memory and on disk.
    """
    decoding = _Decoding(size, channels, invert)
    reader = _Reader()

    def decodes(entry: ImageEntry) -> bool:
        try:
            decoding(reader, entry)
        except ValueError:  # _Decoding turns every read or decode failure into one
            return False
        return True

    try:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            good = list(pool.map(decodes, entries))
    finally:
        reader.close()
    kept = [entry for entry, ok in zip(entries, good, strict=True) if ok]
    return kept, [entry.origin for entry, ok in zip(entries, good, strict=True) if not ok]


#: The values ``data.storage`` accepts.
STORAGES = ("memory", "disk", "auto")


def choose_storage(
    storage: str, count: int, channels: int, size: int | None, budget_gib: float, where: str
) -> str:
    """``memory`` or ``disk`` for ``count`` images decoded to ``channels × size × size`` bytes.

    ``auto`` keeps them in memory when their decoded size fits ``budget_gib`` GiB and streams
    them from disk otherwise, and prints which it chose and why (on stderr).
    """
    if storage not in STORAGES:
        raise ValueError(f"unknown data.storage {storage!r}; choose one of {', '.join(STORAGES)}")
    if storage != "auto":
        return storage
    if size is None:
        return "memory"  # native sizes are unknown until decoded; only a set size can stream
    needed = count * channels * size * size / 2**30
    chosen = "memory" if needed <= budget_gib else "disk"
    print(
        f"data.storage=auto: {count} images of {channels}×{size}×{size} need {needed:.2f} GiB "
        f"decoded, {'within' if chosen == 'memory' else 'over'} data.memory_budget="
        f"{budget_gib:g} GiB; {where} is {'held in memory' if chosen == 'memory' else 'streamed from disk'}",
        file=sys.stderr,
    )
    return chosen
