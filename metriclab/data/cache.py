"""A decoded-image cache file, so that the second load of a data set takes milliseconds.

Where it lives (``cache=True``, the default): in the user cache folder — ``$METRICLAB_CACHE_DIR``,
else ``$XDG_CACHE_HOME/metriclab``, else ``~/.cache/metriclab`` — never in the user's data folder.
``cache=<folder>`` puts it in that folder; ``cache=False`` turns it off. When the folder cannot be
written, loading still works (decoded every time) and a warning names the folder.

The file name depends on the request (the absolute sources, the loader and its selection, size,
channels, inversion); the file holds a content key over every image's id and stamp (size + mtime
for files, CRC + size for zip members), so touching, editing, adding or removing an image
re-decodes. The format is a plain ``.npz`` read with ``allow_pickle=False``, written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from metriclab.atomic import atomic_write
from metriclab.data.decode import ImageEntry, decode_entries

_FORMAT = 1
#: Resizing by more than this factor (either way) is said out loud: it is rarely what was meant.
FAR_RESIZE = 4.0


class ResizeWarning(UserWarning):
    """Images are decoded at a size far from their native size."""


def _digest(payload: object, length: int = 16) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def user_cache_dir() -> Path:
    """The cache folder of ``cache=True``: ``$METRICLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME``
    (the XDG base-directory rule) ``/metriclab``, else ``~/.cache/metriclab``."""
    if os.environ.get("METRICLAB_CACHE_DIR"):
        return Path(os.environ["METRICLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metriclab"


def content_key(entries: Sequence[ImageEntry], settings: dict[str, object]) -> str:
    """A digest of every image's id and stamp plus the decoding settings."""
    hasher = hashlib.sha256(json.dumps([_FORMAT, settings], sort_keys=True).encode("utf-8"))
    for entry in entries:
        hasher.update(f"{entry.item_id}\0{entry.stamp}\n".encode())
    return hasher.hexdigest()


def cache_files(
    sources: Sequence[Path], request: dict[str, object], cache: bool | str | Path
) -> list[tuple[Path, bool]]:
    """Candidate cache files in lookup order, each with whether it may be written.

    Never a file inside the data: a user's data folder is theirs (and may be shared or synced).
    """
    if cache is False:
        return []
    absolute = [str(Path(s).resolve()) for s in sources]
    name = f"{_digest([_FORMAT, absolute, request])}.npz"
    folder = user_cache_dir() if cache is True else Path(cache)
    return [(folder / name, True)]


def read_cache(path: Path, key: str, count: int) -> torch.Tensor | None:
    """The images stored at ``path`` if its key is ``key`` and it holds ``count`` images."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"][()]) != key:
                return None
            images = stored["images"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a damaged cache is only a cache: decode again and overwrite it
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != count:
        return None
    return torch.from_numpy(images)


def write_cache(path: Path, key: str, images: torch.Tensor) -> bool:
    """Store ``images`` under ``key`` atomically; False if the folder cannot be written."""
    try:
        with atomic_write(path, binary=True) as handle:
            np.savez(handle, images=images.numpy(), key=np.array(key))
    except OSError:
        return False
    return True


def native_size(entry: ImageEntry) -> tuple[int, int] | None:
    """``(width, height)`` of one image from its header (no decoding), or None if unreadable."""
    try:
        if entry.member is None:
            with Image.open(entry.file) as image:
                return image.size
        with (
            zipfile.ZipFile(entry.file) as archive,
            Image.open(io.BytesIO(archive.read(entry.member))) as image,
        ):
            return image.size
    except (OSError, KeyError, zipfile.BadZipFile):
        return None  # the decoder names unreadable files itself


def warn_far_resize(entries: Sequence[ImageEntry], size: int | None) -> None:
    """Warn (:class:`ResizeWarning`) when the first image is resized by more than
    :data:`FAR_RESIZE` times, e.g. 105 px photos shrunk to the digits default's 16 px."""
    if size is None or not entries:
        return
    native = native_size(entries[0])
    if native is None:
        return
    factor = max(native) / size
    if factor > FAR_RESIZE or factor < 1 / FAR_RESIZE:
        warnings.warn(
            f"images such as {entries[0].origin} are {native[0]}×{native[1]} px and are resized "
            f"to {size}×{size}; if that loses (or invents) detail, set the size (data.size in a "
            f"config) nearer {max(native)}",
            ResizeWarning,
            stacklevel=3,
        )


def cached_decode(
    entries: list[ImageEntry],
    sources: Sequence[Path],
    request: dict[str, object],
    size: int | None,
    channels: int,
    invert: bool,
    cache: bool | str | Path = True,
    progress: bool = True,
    workers: int | None = None,
) -> torch.Tensor:
    """:func:`decode_entries` behind the cache: uint8 ``(N, C, H, W)`` in the order of ``entries``."""
    settings = {"size": size, "channels": channels, "invert": invert}
    warn_far_resize(entries, size)
    key = content_key(entries, settings)
    candidates = cache_files(sources, {**request, **settings}, cache)
    for path, _ in candidates:
        images = read_cache(path, key, len(entries))
        if images is not None:
            return images
    images = decode_entries(entries, size, channels, invert, progress, workers)
    targets = [path for path, writable in candidates if writable]
    if targets and not any(write_cache(path, key, images) for path in targets):
        warnings.warn(
            f"could not write an image cache to {' or '.join(map(str, targets))}; the next "
            f"load decodes again (pass cache=<writable folder> or cache=False)",
            stacklevel=3,
        )
    return images
