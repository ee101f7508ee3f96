"""The ORL (AT&T) face database: ``sNN/MM.pgm`` grey photographs, one class per subject.

Samaria & Harter 1994 ("Parameterisation of a stochastic model for human face identification"):
10 grey 92×112 photos per subject. Read from the distributed zip (``orl_faces/sNN/MM.pgm``) or
from a folder holding the ``sNN`` folders (at any depth below it). Registered as ``faces-orl``.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath

from metriclab.data.cache import cached_decode
from metriclab.data.decode import ImageEntry, labeled_images
from metriclab.data.images import LabeledImages
from metriclab.data.preprocess import Preprocess
from metriclab.data.registry import DATA_SETS, DataSetSpec, LoadRequest

#: ``…/s07/03.pgm``: the subject folder and the photo.
_MEMBER = re.compile(r"(?:.*/)?(s\d+)/(\d+)\.pgm$", re.IGNORECASE)


def _zip_entries(archive: Path) -> list[ImageEntry]:
    try:
        with zipfile.ZipFile(archive) as opened:
            members = opened.infolist()
    except (zipfile.BadZipFile, OSError) as failure:
        raise ValueError(
            f"cannot read the zip archive {archive} ({failure}); check the file"
        ) from None
    entries = []
    for info in members:
        match = _MEMBER.fullmatch(info.filename)
        if match:
            subject = match.group(1)
            item_id = f"{subject}/{PurePosixPath(info.filename).name}"
            stamp = f"{info.CRC}:{info.file_size}"
            entries.append(ImageEntry(item_id, subject, None, archive, info.filename, stamp))
    return entries


def _folder_entries(root: Path) -> list[ImageEntry]:
    entries = []
    for file in sorted(root.rglob("*.pgm")):
        match = _MEMBER.fullmatch(file.relative_to(root).as_posix())
        if match:
            stat = file.stat()
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
            item_id = f"{match.group(1)}/{file.name}"
            entries.append(ImageEntry(item_id, match.group(1), None, file, stamp=stamp))
    return entries


def faces_orl(request: LoadRequest) -> LabeledImages:
    """ORL faces from the one ``data.path`` (zip or folder), grey uint8 ``(N, 1, size, size)``."""
    (path,) = request.paths
    if not path.exists():
        raise FileNotFoundError(
            f"data.path {path} does not exist; point it at orl_faces_s01-s30.zip or its folder"
        )
    entries = _zip_entries(path) if path.is_file() else _folder_entries(path)
    if not entries:
        raise ValueError(
            f"{path} holds no sNN/MM.pgm face photos; point data.path at the ORL faces"
        )
    entries.sort(key=lambda entry: entry.item_id)
    images = cached_decode(
        entries,
        [path],
        {"loader": "faces-orl"},
        request.size,
        request.channels,
        request.invert,
        request.cache,
        request.progress,
    )
    preprocess = Preprocess(request.size, request.channels, request.invert)
    return labeled_images(
        entries, images, f"faces-orl({path.name}, size={request.size})", preprocess
    )


DATA_SETS.register(
    "faces-orl",
    DataSetSpec(
        loader=faces_orl,
        paths="one",
        path_help="orl_faces_s01-s30.zip or the folder of its sNN folders",
        size=48,
        channels=1,
        help="ORL (AT&T) faces: one class per subject, 10 grey photos each",
    ),
)
