"""The data set registry: each data set declares how it is read and preprocessed, next to its loader.

A data set is one :class:`DataSetSpec` registered in :data:`DATA_SETS` beside its loader
(``digits.py``, ``omniglot.py``, ``folders.py``): what paths it reads, its default size, its
channels (fixed, or the user's choice with a default), its polarity (whether decoding inverts),
its normalisation and the options it takes under ``data.params``. :func:`load_dataset` reads only
the spec, so nothing here names a data set, and the images it returns carry the declared
:class:`~metriclab.data.preprocess.Preprocess` record that export and galleries read.

>>> from metriclab.data import DATA_SETS
>>> DATA_SETS.get("omniglot").invert
True
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

from metriclab.data.images import LabeledImages
from metriclab.data.preprocess import Preprocess
from metriclab.registry import Registry


@dataclass(frozen=True)
class LoadRequest:
    """What a loader is asked for, already checked against its :class:`DataSetSpec`.

    Attributes:
        paths: the files or folders to read (empty for bundled data).
        size: image side in pixels, or ``None`` for the native size.
        channels: 1 or 3.
        invert: decode with v → 255 − v (the spec's polarity; pass it to the decoder).
        params: the data set's own options (``data.params``), names checked against the spec.
        cache, progress: as for :func:`metriclab.data.cache.cached_decode`.
        storage: ``memory``, ``disk`` or ``auto`` (:func:`metriclab.data.streaming.choose_storage`);
            only a data set that declares ``streams`` is asked for anything but ``memory``.
        memory_budget: GiB of decoded images ``auto`` keeps in memory.
        skip_bad: leave out files that cannot be decoded (only asked of a data set that declares
            ``skips_bad``), appending each one's path to ``skipped``.
    """

    paths: tuple[Path, ...]
    size: int | None
    channels: int
    invert: bool
    params: Mapping[str, Any]
    cache: bool | str | Path = True
    progress: bool = True
    storage: str = "memory"
    memory_budget: float = 4.0
    skip_bad: bool = False
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DataParam:
    """One option a data set takes under ``data.params``.

    ``type`` is the annotation config values are checked and converted against (as for any
    config key, e.g. ``list[str] | None``); ``help`` says what it does, for messages and listings.
    """

    type: Any
    help: str


@dataclass(frozen=True)
class DataSetSpec:
    """How one registered data set is read and preprocessed.

    Attributes:
        loader: ``LoadRequest -> LabeledImages``; must decode as the request says.
        paths: ``"none"`` (bundled, ``data.path`` refused), ``"one"`` or ``"many"``.
        path_help: what ``data.path`` should name, for the message when it is missing.
        size: default side in pixels when none is asked for; ``None`` keeps the native size.
        channels: the fixed channel count (1 for grey data sets), or ``None`` when the user picks
            1 or 3 with ``data.channels``, ``default_channels`` if unset.
        invert: decoding maps v → 255 − v (black ink on white files become white on black).
        mean, std: per-channel normalisation after ``x / 255``; ``None`` is plain ``x / 255``.
        params: the options under ``data.params`` by name.
        help: one line for listings.
        streams: the loader honours ``LoadRequest.storage`` (it can keep images on disk).
        skips_bad: the loader honours ``LoadRequest.skip_bad`` (``data.skip_bad``).
    """

    loader: Callable[[LoadRequest], LabeledImages]
    paths: Literal["none", "one", "many"]
    path_help: str = ""
    size: int | None = None
    channels: int | None = 1
    default_channels: int = 3
    invert: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    params: Mapping[str, DataParam] = field(default_factory=dict)
    help: str = ""
    streams: bool = False
    skips_bad: bool = False

    def __post_init__(self) -> None:
        if self.paths not in ("none", "one", "many"):
            raise ValueError(f"paths must be 'none', 'one' or 'many', got {self.paths!r}")
        if self.channels not in (None, 1, 3) or self.default_channels not in (1, 3):
            raise ValueError(
                f"channels must be 1, 3 or None and default_channels 1 or 3, got "
                f"{self.channels} and {self.default_channels}"
            )

    def preprocess(self, size: int | None, channels: int) -> Preprocess:
        """The record of images loaded at ``size`` with ``channels``."""
        return Preprocess(size, channels, self.invert, self.mean, self.std)


#: Data set name → :class:`DataSetSpec`; each loader module registers its own.
DATA_SETS: Registry[DataSetSpec] = Registry("data set", key="data.name")


def _reject(name: str, key: str, value: object) -> NoReturn:
    raise ValueError(f"data.{key}={value!r} does not apply to data set {name!r}; remove it")


def _paths(
    name: str, spec: DataSetSpec, path: str | Path | Sequence[str | Path] | None
) -> tuple[Path, ...]:
    if spec.paths == "none":
        if path is not None:
            _reject(name, "path", path)
        return ()
    if path is None:
        raise ValueError(f"data set {name!r} needs data.path ({spec.path_help or 'what to read'})")
    paths = (path,) if isinstance(path, (str, Path)) else tuple(path)
    if spec.paths == "one" and len(paths) != 1:
        raise ValueError(f"data set {name!r} reads one data.path, got {len(paths)}")
    return tuple(Path(p) for p in paths)


def _channels(name: str, spec: DataSetSpec, channels: int | None) -> int:
    if spec.channels is None:
        return spec.default_channels if channels is None else channels
    if channels not in (None, spec.channels):
        kind = "grey (1 channel)" if spec.channels == 1 else f"{spec.channels}-channel"
        raise ValueError(
            f"data set {name!r} is {kind}, got data.channels={channels}; drop data.channels"
        )
    return spec.channels


def _say_skipped(skipped: Sequence[str], kept: int) -> None:
    """The one-line notice of ``data.skip_bad`` (training lists the files in ``skipped.txt``)."""
    more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
    print(
        f"data.skip_bad: skipped {len(skipped)} file(s) that cannot be decoded ({skipped[0]}"
        f"{more}); loaded {kept} images",
        file=sys.stderr,
    )


def check_params(name: str, params: Mapping[str, Any]) -> DataSetSpec:
    """The spec of ``name``, after checking that it takes every option in ``params``.

    Raises :class:`~metriclab.registry.UnknownName` for an unknown data set and ``ValueError``
    naming ``data.params.<key>``, a close match and the valid options for an unknown option.
    """
    spec = DATA_SETS.get(name)
    for key in params:
        if key not in spec.params:
            valid = ", ".join(spec.params)
            close = difflib.get_close_matches(str(key), list(spec.params), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            takes = f"its options are {valid}" if valid else "it takes none"
            raise ValueError(
                f"data.params.{key} is not an option of data set {name!r}{hint}; {takes}"
            )
    return spec


def load_dataset(
    name: str,
    path: str | Path | Sequence[str | Path] | None = None,
    size: int | None = None,
    channels: int | None = None,
    params: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    cache: bool | str | Path = True,
    progress: bool = True,
    storage: str = "memory",
    memory_budget: float = 4.0,
    skip_bad: bool = False,
    skipped: list[str] | None = None,
) -> LabeledImages:
    """Load the data set a config names, with its declared preprocessing recorded on the result.

    Args:
        name: a name in :data:`DATA_SETS`: ``digits`` (bundled, no path), ``omniglot`` (a folder,
            zip, or list of them), ``image_folder`` (``path/<class>/<image>``), ``csv`` (a
            ``path,label`` file whose paths are relative to its folder), or one registered later.
        size: image side in pixels; ``None`` gives the data set's default (16 for digits, 28 for
            omniglot, the native common size for image_folder and csv).
        channels: 1 or 3 where the data set lets the user choose (image_folder, csv: default 3).
        params: the data set's own options, e.g. ``{"alphabets": [...]}`` for omniglot. A list
            here is the old ``alphabets`` argument (deprecated).
        cache, progress: passed to the loaders that decode files (see :mod:`metriclab.data.cache`).
        storage, memory_budget: ``data.storage`` (``memory``, ``disk``, ``auto``) and
            ``data.memory_budget`` (GiB), for data sets that declare ``streams``
            (:mod:`metriclab.data.streaming`); the others are always held in memory.
        skip_bad, skipped: ``data.skip_bad``: leave out files that cannot be decoded, say so in
            one line on stderr and append their paths to ``skipped`` (for data sets that declare
            ``skips_bad``; the others refuse it).
    """
    if params is not None and not isinstance(params, Mapping):
        warnings.warn(
            "load_dataset's fifth argument is now params; pass {'alphabets': [...]} instead of "
            "a list of alphabets",
            DeprecationWarning,
            stacklevel=2,
        )
        params = {"alphabets": params}
    params = dict(params or {})
    spec = check_params(name, params)
    if storage == "disk" and not spec.streams:
        streaming = ", ".join(n for n, other in DATA_SETS.items() if other.streams)
        raise ValueError(
            f"data set {name!r} is always held in memory and cannot use data.storage=disk; "
            f"use data.storage=memory (data sets that stream from disk: {streaming})"
        )
    if skip_bad and not spec.skips_bad:
        able = ", ".join(n for n, other in DATA_SETS.items() if other.skips_bad)
        raise ValueError(
            f"data set {name!r} cannot skip undecodable files; drop data.skip_bad "
            f"(data sets that can: {able})"
        )
    request = LoadRequest(
        paths=_paths(name, spec, path),
        size=spec.size if size is None else size,
        channels=_channels(name, spec, channels),
        invert=spec.invert,
        params=params,
        cache=cache,
        progress=progress,
        storage=storage if spec.streams else "memory",
        memory_budget=memory_budget,
        skip_bad=skip_bad,
    )
    data = spec.loader(request)
    if request.skipped:
        _say_skipped(request.skipped, len(data))
        if skipped is not None:
            skipped.extend(request.skipped)
    declared = spec.preprocess(request.size, request.channels)
    if data.preprocess is not None and data.preprocess != declared:
        raise ValueError(
            f"the loader of data set {name!r} recorded {data.preprocess} but the data set declares "
            f"{declared}; make the loader decode as its LoadRequest says"
        )
    return dataclasses.replace(data, preprocess=declared)
