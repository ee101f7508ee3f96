"""The one place where a data set name from a config becomes a loader call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from metriclab.data.digits import digits
from metriclab.data.folders import from_csv, image_folder
from metriclab.data.images import LabeledImages
from metriclab.data.omniglot import omniglot

DATA_SETS = ("digits", "omniglot", "image_folder", "csv")
_DEFAULT_SIZE = {"digits": 16, "omniglot": 28}
_GREY_ONLY = ("digits", "omniglot")


def _reject(name: str, key: str, value: object) -> NoReturn:
    raise ValueError(f"data.{key}={value!r} does not apply to data set {name!r}; remove it")


def _single_path(name: str, path: str | Path | Sequence[str | Path] | None) -> Path:
    if path is None:
        raise ValueError(f"data set {name!r} needs data.path (the folder or file to read)")
    if not isinstance(path, (str, Path)):
        if len(path) != 1:
            raise ValueError(f"data set {name!r} reads one data.path, got {len(path)}")
        path = path[0]
    return Path(path)


def load_dataset(
    name: str,
    path: str | Path | Sequence[str | Path] | None = None,
    size: int | None = None,
    channels: int | None = None,
    alphabets: Sequence[str] | None = None,
    *,
    cache: bool | str | Path = True,
    progress: bool = True,
) -> LabeledImages:
    """Load the data set a config names.

    Args:
        name: one of ``digits`` (bundled, no path), ``omniglot`` (a folder, zip, or list of them),
            ``image_folder`` (``path/<class>/<image>``) or ``csv`` (a ``path,label`` file whose
            paths are relative to its folder).
        size: image side in pixels; ``None`` gives 16 for digits, 28 for omniglot, and the native
            (common) size for image_folder and csv.
        channels: 1 or 3 for image_folder and csv (``None`` → 3); digits and omniglot are grey.
        alphabets: omniglot only, the alphabets to keep.
        cache, progress: passed to the loaders that decode files (see :mod:`metriclab.data.cache`).
    """
    if name not in DATA_SETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATA_SETS)}")
    if alphabets is not None and name != "omniglot":
        _reject(name, "alphabets", alphabets)
    if name in _GREY_ONLY and channels not in (None, 1):
        raise ValueError(f"data set {name!r} is grey (1 channel), got data.channels={channels}")
    size = _DEFAULT_SIZE.get(name) if size is None else size
    if name == "digits":
        if path is not None:
            _reject(name, "path", path)
        return digits(size=size)
    if name == "omniglot":
        if path is None:
            raise ValueError("data set 'omniglot' needs data.path (a folder, zip or list of them)")
        return omniglot(path, alphabets=alphabets, size=size, cache=cache, progress=progress)
    loader = image_folder if name == "image_folder" else from_csv
    return loader(
        _single_path(name, path),
        size=size,
        channels=3 if channels is None else channels,
        cache=cache,
        progress=progress,
    )
