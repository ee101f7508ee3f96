"""Omniglot (Lake et al. 2015) from whatever layout the user has: folders, zips, or several at once.

Every image is found by its last three path components, ``<Alphabet>/characterNN/<file>.png``,
which is also its item id. The id is therefore identical whether the image came from
torchvision's ``omniglot-py/images_background`` folder, the original ``images_background.zip``,
or a "minimal" set such as ``images_background_small1.zip``, and episode sets made on one layout
resolve on any other.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from metriclab.data.cache import cached_decode
from metriclab.data.decode import ImageEntry, labeled_images
from metriclab.data.images import LabeledImages
from metriclab.data.preprocess import Preprocess
from metriclab.data.registry import DATA_SETS, DataParam, DataSetSpec, LoadRequest

_CHARACTER = re.compile(r"character\d+")
_SOURCE_URL = "https://github.com/brendenlake/omniglot/tree/master/python"


def _is_junk(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _entry(parts: Sequence[str], file: Path, member: str | None, stamp: str) -> ImageEntry | None:
    """The entry for a path ending in ``Alphabet/characterNN/name.png``, or None for other files."""
    if len(parts) < 3 or not parts[-1].lower().endswith(".png"):
        return None
    alphabet, character, name = parts[-3:]
    if not _CHARACTER.fullmatch(character) or any(_is_junk(p) for p in parts):
        return None
    return ImageEntry(
        item_id=f"{alphabet}/{character}/{name}",
        class_name=f"{alphabet}/{character}",
        group=alphabet,
        file=file,
        member=member,
        stamp=stamp,
    )


def zip_entries(archive: Path, strict: bool = True) -> list[ImageEntry]:
    """The Omniglot images inside a zip archive, read from its directory without unpacking.

    With ``strict`` an archive without ``<Alphabet>/characterNN/*.png`` members is an error;
    otherwise it yields no entries (an unrelated zip found while scanning a folder).
    """
    try:
        with zipfile.ZipFile(archive) as opened:
            members = opened.infolist()
    except (zipfile.BadZipFile, OSError) as failure:
        raise ValueError(
            f"{archive} is not a readable zip archive ({failure}); download it again"
        ) from None
    entries = []
    for info in members:
        if not info.is_dir():
            stamp = f"crc{info.CRC}:{info.file_size}"
            entry = _entry(info.filename.split("/"), archive, info.filename, stamp)
            if entry is not None:
                entries.append(entry)
    if strict and not entries:
        raise ValueError(
            f"{archive} is not an Omniglot archive: it holds no <Alphabet>/characterNN/*.png "
            f"images; pass images_background.zip, images_evaluation.zip or a small set"
        )
    return entries


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not _is_junk(d))
        yield Path(folder), subfolders, sorted(files)


def folder_entries(root: Path) -> list[ImageEntry]:
    """The Omniglot images below ``root``: unpacked trees, and zips that were not unpacked."""
    entries: list[ImageEntry] = []
    for folder, subfolders, files in _walk(Path(os.path.abspath(root))):
        for name in files:
            path = folder / name
            if name.lower().endswith(".zip") and Path(name).stem not in subfolders:
                # torchvision keeps images_background.zip beside its unpacked folder: read once.
                entries.extend(zip_entries(path, strict=False))
                continue
            if _CHARACTER.fullmatch(folder.name) and name.lower().endswith(".png"):
                stat = path.stat()
                # Only the last three parts: the data may live below a hidden folder (~/.cache).
                entry = _entry(path.parts[-3:], path, None, f"{stat.st_size}:{stat.st_mtime_ns}")
                if entry is not None:
                    entries.append(entry)
    if not entries:
        raise ValueError(
            f"no Omniglot images in {root}: expected <Alphabet>/characterNN/*.png folders "
            f"(e.g. torchvision's omniglot-py/images_background) or the Omniglot zip archives"
        )
    return entries


def _source_entries(path: Path) -> list[ImageEntry]:
    if path.is_dir():
        return folder_entries(path)
    if path.is_file():
        if path.suffix.lower() != ".zip" and not zipfile.is_zipfile(path):
            raise ValueError(
                f"{path} is neither a folder nor a zip archive; pass an Omniglot folder or zip"
            )
        return zip_entries(path, strict=True)
    raise FileNotFoundError(
        f"Omniglot path {path} does not exist; put images_background.zip and "
        f"images_evaluation.zip (or their unpacked folders) there, or pass download=True"
    )


def _merge(sources: Sequence[Path]) -> list[ImageEntry]:
    """All entries of all sources, one per item id (the first source wins), sorted by id."""
    merged: dict[str, ImageEntry] = {}
    for source in sources:
        for entry in _source_entries(source):
            merged.setdefault(entry.item_id, entry)
    return [merged[item] for item in sorted(merged)]


def _select(entries: list[ImageEntry], alphabets: Sequence[str] | None) -> list[ImageEntry]:
    if alphabets is None:
        return entries
    if isinstance(alphabets, str) or not alphabets:
        raise ValueError(f"alphabets must be a non-empty list of names, got {alphabets!r}")
    found = sorted({entry.group for entry in entries if entry.group is not None})
    unknown = [name for name in alphabets if name not in found]
    if unknown:
        raise ValueError(
            f"alphabet {unknown[0]!r} is not in the data; alphabets found: {', '.join(found)}"
        )
    wanted = set(alphabets)
    return [entry for entry in entries if entry.group in wanted]


def download_omniglot(root: Path) -> None:
    """Fetch both Omniglot sets into ``root/omniglot-py`` with torchvision (needs network)."""
    # Imported here: torchvision.datasets is slow to import and only downloads need it.
    from torchvision.datasets import Omniglot

    try:
        for background in (True, False):
            Omniglot(root=str(root), background=background, download=True)
    except (OSError, RuntimeError, ValueError) as failure:
        raise FileNotFoundError(
            f"cannot download Omniglot into {root} ({failure}); without network, put "
            f"images_background.zip and images_evaluation.zip from {_SOURCE_URL} in {root} "
            f"and load it again with download=False"
        ) from None


def _has_omniglot(path: Path) -> bool:
    try:
        return bool(_source_entries(path))
    except (OSError, ValueError):
        return False


def omniglot(
    path: str | Path | Sequence[str | Path],
    alphabets: Sequence[str] | None = None,
    size: int | None = 28,
    download: bool = False,
    cache: bool | str | Path = True,
    progress: bool = True,
    workers: int | None = None,
    invert: bool = True,
) -> LabeledImages:
    """Omniglot characters as grey ``(N, 1, size, size)`` uint8, white strokes on black.

    Args:
        path: a folder (torchvision's download root, ``omniglot-py``, ``images_background``, an
            alphabet tree, or a folder of the zips), a zip archive, or a list of these, merged by
            item id with duplicates removed (Greek and Latin are in both small sets).
        alphabets: keep only these alphabets (folder names such as ``"Japanese_(katakana)"``).
        size: side in pixels after an antialiased resize (Vinyals et al. 2016 use 28); ``None``
            keeps the native 105.
        download: fetch both sets into ``path`` with torchvision when ``path`` holds no Omniglot.
        cache: see :mod:`metriclab.data.cache`.
        invert: map v → 255 − v: the files have black ink on white, and metriclab keeps ink
            bright on a zero background so that zero padding and pooling see empty space.

    Each class is one character (``"Latin/character03"``), its group is the alphabet, and its
    item ids are ``"Latin/character03/0123_05.png"``.
    """
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    if not paths:
        raise ValueError("path must name at least one Omniglot folder or zip archive")
    if download:
        for root in paths:
            if not _has_omniglot(root):
                download_omniglot(root)
    entries = _select(_merge(paths), alphabets)
    request = {"loader": "omniglot", "alphabets": None if alphabets is None else list(alphabets)}
    images = cached_decode(entries, paths, request, size, 1, invert, cache, progress, workers)
    chosen = "" if alphabets is None else f", alphabets={','.join(alphabets)}"
    names = "+".join(p.name for p in paths)
    return labeled_images(
        entries,
        images,
        f"omniglot({names}, size={size}{chosen})",
        Preprocess(size=size, channels=1, invert=invert),
    )


def _load(request: LoadRequest) -> LabeledImages:
    return omniglot(
        request.paths,
        alphabets=request.params.get("alphabets"),
        size=request.size,
        cache=request.cache,
        progress=request.progress,
        invert=request.invert,
    )


DATA_SETS.register(
    "omniglot",
    DataSetSpec(
        loader=_load,
        paths="many",
        path_help="a folder, zip or list of them",
        size=28,
        channels=1,
        invert=True,
        params={
            "alphabets": DataParam(
                list[str] | None, "keep only these alphabets (folder names, e.g. Latin)"
            )
        },
        help="Omniglot characters (Lake et al. 2015) from folders or the original zips",
    ),
)
