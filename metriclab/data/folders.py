"""The user's own images: a folder of class folders, or a CSV list of ``path,label`` rows."""

from __future__ import annotations

import csv
import os
from pathlib import Path, PurePosixPath
from typing import Any

from metriclab.data.cache import cached_decode
from metriclab.data.decode import ImageEntry, labeled_images
from metriclab.data.images import LabeledImages
from metriclab.data.preprocess import Preprocess
from metriclab.data.registry import DATA_SETS, DataSetSpec, LoadRequest
from metriclab.data.streaming import DiskImages, choose_storage, readable

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)


def _file_entry(path: Path, item_id: str, class_name: str) -> ImageEntry:
    stat = path.stat()
    return ImageEntry(
        item_id=item_id,
        class_name=class_name,
        group=None,
        file=path,
        stamp=f"{stat.st_size}:{stat.st_mtime_ns}",
    )


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _class_images(root: Path, folder: Path) -> list[ImageEntry]:
    entries = []
    for parent, subfolders, files in os.walk(folder, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(filter(_is_image, files)):
            path = Path(parent) / name
            entries.append(_file_entry(path, path.relative_to(root).as_posix(), folder.name))
    if not entries:
        raise ValueError(
            f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add images "
            f"or remove the folder"
        )
    return entries


def _keep_readable(
    entries: list[ImageEntry],
    size: int | None,
    channels: int,
    invert: bool,
    skipped: list[str] | None,
) -> list[ImageEntry]:
    """The entries that decode; the origins of the others are appended to ``skipped``."""
    kept, bad = readable(entries, size, channels, invert)
    if not kept:
        raise ValueError(
            f"none of the {len(entries)} images can be decoded (e.g. {bad[0]}); check the files"
        )
    if skipped is not None:
        skipped.extend(bad)
    return kept


def _existing_folder(path: str | Path, what: str) -> Path:
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{what} {root} does not exist; check the path")
    if not root.is_dir():
        raise ValueError(f"{what} {root} is not a folder; pass the folder that holds the images")
    return root


def image_folder(
    path: str | Path,
    size: int | None = None,
    channels: int = 3,
    cache: bool | str | Path = True,
    progress: bool = True,
    workers: int | None = None,
    invert: bool = False,
    storage: str = "memory",
    memory_budget: float = 4.0,
    skip_bad: bool = False,
    skipped: list[str] | None = None,
) -> LabeledImages:
    """Images laid out as ``path/<class>/**/<image>``, as uint8 ``(N, channels, H, W)``.

    Each immediate subfolder is a class (hidden folders are skipped); images may sit at any depth
    below it. Item ids are the paths relative to ``path``. ``size`` resizes every image to
    ``size``×``size`` with antialiasing; ``None`` requires all images to share one size.
    ``invert`` maps v → 255 − v (dark ink on a light page becomes bright on zero).
    ``storage``: ``memory`` decodes every image now; ``disk`` keeps only the index and decodes
    on demand (:class:`~metriclab.data.streaming.DiskImages`, needs ``size``); ``auto`` picks by
    the decoded size against ``memory_budget`` GiB and says which. ``skip_bad`` decodes every
    file once first and leaves out those that cannot be decoded, appending their paths to
    ``skipped``; without it a bad file stops loading (or training, on disk) with its name.
    """
    root = _existing_folder(path, "image folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(
            f"image folder {root} has no class folders; put each class's images in its own "
            f"subfolder, {root}/<class>/<image>"
        )
    entries = [entry for name in classes for entry in _class_images(root, root / name)]
    if skip_bad:
        entries = _keep_readable(entries, size, channels, invert, skipped)
    description = f"image_folder({root.name}, size={size})"
    if choose_storage(storage, len(entries), channels, size, memory_budget, description) == "disk":
        images: object = DiskImages(entries, size, channels, invert)  # type: ignore[arg-type]
    else:
        request = {"loader": "image_folder"}
        images = cached_decode(
            entries, [root], request, size, channels, invert, cache, progress, workers
        )
    return labeled_images(
        entries,
        images,  # type: ignore[arg-type]
        description,
        Preprocess(size=size, channels=channels, invert=invert),
    )


def _relative_path(text: str, where: str) -> str:
    """``text`` as a normalised relative POSIX path that stays inside the root."""
    path = PurePosixPath(text.strip().replace("\\", "/"))
    normal = os.path.normpath(str(path))
    if path.is_absolute() or Path(text.strip()).is_absolute() or normal.split("/")[0] == "..":
        raise ValueError(
            f"{where}: path {text!r} leaves the image root; list paths relative to the root, "
            f"without leading '/' or '..'"
        )
    return PurePosixPath(normal).as_posix()


def _csv_rows(file: Path) -> list[tuple[int, str, str]]:
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            rows = [(n, row) for n, row in enumerate(csv.reader(handle), start=1) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as failure:
        raise ValueError(f"cannot read the CSV file {file} ({failure}); check the file") from None
    if rows and [cell.strip().lower() for cell in rows[0][1]] == ["path", "label"]:
        rows = rows[1:]
    parsed = []
    for line, row in rows:
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise ValueError(f"{file} line {line}: expected 'path,label', got {','.join(row)!r}")
        parsed.append((line, row[0], row[1].strip()))
    if not parsed:
        raise ValueError(f"{file} lists no images; add 'path,label' rows")
    return parsed


def from_csv(
    file: str | Path,
    root: str | Path | None = None,
    size: int | None = None,
    channels: int = 3,
    cache: bool | str | Path = True,
    progress: bool = True,
    workers: int | None = None,
    invert: bool = False,
    storage: str = "memory",
    memory_budget: float = 4.0,
    skip_bad: bool = False,
    skipped: list[str] | None = None,
) -> LabeledImages:
    """Images listed in a CSV of ``path,label`` rows (an optional ``path,label`` header).

    Paths are relative to ``root`` (default: the CSV's folder) and may not leave it; they become
    the item ids. Labels are class names. Returns uint8 ``(N, channels, H, W)``; ``invert``,
    ``storage``, ``memory_budget``, ``skip_bad`` and ``skipped`` as for :func:`image_folder`.
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"CSV file {file} does not exist; check the path")
    base = _existing_folder(file.parent if root is None else root, "image root")
    entries: dict[str, ImageEntry] = {}
    for line, text, label in _csv_rows(file):
        item_id = _relative_path(text, f"{file} line {line}")
        if item_id in entries:
            raise ValueError(f"{file} line {line}: {item_id} is listed twice; keep one row")
        if not (base / item_id).is_file():
            raise FileNotFoundError(
                f"{file} line {line}: {item_id} is not a file under {base}; fix the path or root"
            )
        entries[item_id] = _file_entry(base / item_id, item_id, label)
    ordered = list(entries.values())
    if skip_bad:
        ordered = _keep_readable(ordered, size, channels, invert, skipped)
    description = f"csv({file.name}, size={size})"
    if choose_storage(storage, len(ordered), channels, size, memory_budget, description) == "disk":
        images: object = DiskImages(ordered, size, channels, invert)  # type: ignore[arg-type]
    else:
        request = {"loader": "csv", "list": file.name}
        images = cached_decode(
            ordered, [base, file], request, size, channels, invert, cache, progress, workers
        )
    return labeled_images(
        ordered,
        images,  # type: ignore[arg-type]
        description,
        Preprocess(size=size, channels=channels, invert=invert),
    )


def _load_folder(request: LoadRequest) -> LabeledImages:
    return image_folder(request.paths[0], **_read_options(request))


def _load_csv(request: LoadRequest) -> LabeledImages:
    return from_csv(request.paths[0], **_read_options(request))


def _read_options(request: LoadRequest) -> dict[str, Any]:
    """The keyword arguments ``image_folder`` and ``from_csv`` share, from a checked request
    (the spec's ``paths="one"`` guarantees exactly one path)."""
    return {
        "size": request.size,
        "channels": request.channels,
        "cache": request.cache,
        "progress": request.progress,
        "invert": request.invert,
        "storage": request.storage,
        "memory_budget": request.memory_budget,
        "skip_bad": request.skip_bad,
        "skipped": request.skipped,
    }


DATA_SETS.register(
    "image_folder",
    DataSetSpec(
        loader=_load_folder,
        paths="one",
        path_help="the folder or file to read",
        channels=None,
        default_channels=3,
        help="your own images, one folder per class: path/<class>/<image>",
        streams=True,
        skips_bad=True,
    ),
)
DATA_SETS.register(
    "csv",
    DataSetSpec(
        loader=_load_csv,
        paths="one",
        path_help="the folder or file to read",
        channels=None,
        default_channels=3,
        help="your own images listed in a path,label CSV (paths relative to its folder)",
        streams=True,
        skips_bad=True,
    ),
)
