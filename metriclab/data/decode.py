"""Decode image files (on disk or inside zip archives) once, in parallel, into one uint8 tensor.

Every loader lists its files as :class:`ImageEntry` values and hands them to
:func:`decode_entries`; nothing else in metriclab opens an image. PIL errors never escape: a file
that cannot be read or decoded raises one ``ValueError`` that names it.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from metriclab.data.images import LabeledImages
from metriclab.data.preprocess import Preprocess

# Image.DecompressionBombError is not an OSError; SyntaxError is what PIL raises for some bad PNGs.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_CHUNK = 64


@dataclass(frozen=True)
class ImageEntry:
    """One image to decode.

    Attributes:
        item_id: stable relative id, e.g. ``"Latin/character03/0123_05.png"``.
        class_name: the class the image belongs to.
        group: the group of its class (e.g. the alphabet), or ``None``.
        file: the image file, or the zip archive that holds it.
        member: the member name inside ``file`` when ``file`` is a zip archive, else ``None``.
        stamp: what changes when the content changes (size and mtime, or the member's CRC); the
            cache key is built from it.
    """

    item_id: str
    class_name: str
    group: str | None
    file: Path
    member: str | None = None
    stamp: str = ""

    @property
    def origin(self) -> str:
        """Where the image lives, for messages: a path, or ``archive.zip:member``."""
        return str(self.file) if self.member is None else f"{self.file}:{self.member}"


class _Reader:
    """Reads entry bytes; each zip archive is opened once and read under its own lock.

    Opening an archive parses its whole central directory, so one handle per thread would
    repeat that work; a member read is ~20 µs, so serialising reads costs nothing measurable.
    """

    def __init__(self) -> None:
        self._archives: dict[Path, tuple[zipfile.ZipFile, threading.Lock]] = {}
        self._lock = threading.Lock()

    def read(self, entry: ImageEntry) -> bytes:
        if entry.member is None:
            return entry.file.read_bytes()
        with self._lock:
            if entry.file not in self._archives:
                self._archives[entry.file] = (zipfile.ZipFile(entry.file), threading.Lock())
            archive, lock = self._archives[entry.file]
        with lock:
            return archive.read(entry.member)

    def close(self) -> None:
        for archive, _ in self._archives.values():
            archive.close()


def decode_one(
    data: bytes, origin: str, size: int | None, channels: int, invert: bool
) -> np.ndarray:
    """Decode encoded image bytes → uint8 ``(C, H, W)``.

    Converts to grey (``channels=1``) or RGB (``channels=3``) before resizing, because PIL resizes
    1-bit and palette images with nearest neighbour; the resize to ``size``×``size`` is PIL's
    antialiased bilinear filter (the same as torchvision's ``Resize(antialias=True)``).
    ``invert`` maps v → 255 − v (Omniglot: black strokes on white become white on black).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except _DECODE_ERRORS as failure:
        raise ValueError(
            f"cannot decode image {origin} ({failure}); replace or remove the file"
        ) from None
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return 255 - array if invert else array


@dataclass(frozen=True)
class _Decoding:
    """How every image of one load is decoded (see :func:`decode_one`)."""

    size: int | None
    channels: int
    invert: bool

    def __call__(self, reader: _Reader, entry: ImageEntry) -> np.ndarray:
        try:
            data = reader.read(entry)
        except (OSError, zipfile.BadZipFile, zlib.error, KeyError, NotImplementedError) as failure:
            reason = getattr(failure, "strerror", None) or failure
            raise ValueError(
                f"cannot read image {entry.origin} ({reason}); check the file"
            ) from None
        return decode_one(data, entry.origin, self.size, self.channels, self.invert)


def _decode_chunk(
    decoding: _Decoding,
    reader: _Reader,
    entries: list[ImageEntry],
    start: int,
    out: np.ndarray,
    first: str,
) -> int:
    """Decode ``entries`` into ``out[start:]``; each must have the shape of ``out[0]`` (``first``)."""
    for offset, entry in enumerate(entries):
        array = decoding(reader, entry)
        if array.shape != out.shape[1:]:
            raise ValueError(
                f"images differ in size: {entry.origin} is {array.shape[2]}×{array.shape[1]} "
                f"but {first} is {out.shape[3]}×{out.shape[2]}; pass a size to resize them all"
            )
        out[start + offset] = array
    return len(entries)


def decode_entries(
    entries: list[ImageEntry],
    size: int | None,
    channels: int,
    invert: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> torch.Tensor:
    """Decode ``entries`` in order into a uint8 ``(N, C, H, W)`` tensor with a thread pool.

    PIL releases the GIL while it inflates and resamples, which lets threads overlap on large
    images; on tiny files such as Omniglot's 105×105 1-bit PNGs its Python-level parsing
    dominates and threads gain little (BENCHMARKS.md). With ``size=None`` every image must have
    the size of the first one. ``workers`` defaults to the number of CPU cores.
    """
    if not entries:
        raise ValueError("there are no images to decode")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if size is not None and size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    decoding = _Decoding(size, channels, invert)
    reader = _Reader()
    try:
        first = decoding(reader, entries[0])
        out = np.empty((len(entries), *first.shape), dtype=np.uint8)
        out[0] = first
        with (
            ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool,
            tqdm(total=len(entries), disable=not progress, desc="decoding", unit="img") as bar,
        ):
            bar.update(1)
            futures: list[Future[int]] = [
                pool.submit(
                    _decode_chunk,
                    decoding,
                    reader,
                    entries[s : s + _CHUNK],
                    s,
                    out,
                    entries[0].origin,
                )
                for s in range(1, len(entries), _CHUNK)
            ]
            try:
                for future in as_completed(futures):
                    bar.update(future.result())
            finally:
                for future in futures:
                    future.cancel()
    finally:
        reader.close()
    return torch.from_numpy(out)


def labeled_images(
    entries: list[ImageEntry],
    images: torch.Tensor,
    description: str,
    preprocess: Preprocess | None = None,
) -> LabeledImages:
    """Wrap decoded ``images`` (in the order of ``entries``) with labels, class names and groups.

    Classes and groups are numbered in sorted name order, so labels do not depend on the order
    in which files were listed.
    """
    class_names = sorted({entry.class_name for entry in entries})
    class_index = {name: index for index, name in enumerate(class_names)}
    labels = torch.tensor([class_index[entry.class_name] for entry in entries], dtype=torch.int64)
    groups = None
    group_names: tuple[str, ...] = ()
    if all(entry.group is not None for entry in entries):
        group_of = {entry.class_name: entry.group for entry in entries}
        group_names = tuple(sorted(set(group_of.values())))
        groups = torch.tensor(
            [group_names.index(group_of[name]) for name in class_names], dtype=torch.int64
        )
    return LabeledImages(
        images=images,
        labels=labels,
        class_names=tuple(class_names),
        item_ids=tuple(entry.item_id for entry in entries),
        groups=groups,
        group_names=group_names,
        description=description,
        preprocess=preprocess,
    )
