"""How a gallery lies on disk: a manifest that commits a list of checksummed segment files.

    GALLERY/gallery.json      the commit record: bundle identity, distance, segments, threshold
    GALLERY/seg-000001.npz    raw embeddings (N, D) float32, class names (N,), item ids (N,)

A change writes its new segment files first and then replaces ``gallery.json`` atomically (write
a temporary file, rename): a process killed at any point leaves either the old manifest (and the
old segments it names, untouched) or the new one. Segments the manifest no longer names are
deleted after the commit. ``add`` writes one segment of the new items only, so its cost does not
grow with the gallery. Every segment's size and SHA-256 are in the manifest: a truncated or
swapped file is refused with "rebuild".
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metriclab.atomic import atomic_write, write_text

MANIFEST = "gallery.json"
FORMAT = "metriclab.gallery"
VERSION = 1


@dataclass(frozen=True)
class Segment:
    """Enrolled items: raw embeddings ``(n, D)`` float32, class names ``(n,)``, item ids ``(n,)``."""

    vectors: np.ndarray
    classes: np.ndarray
    item_ids: np.ndarray


def write_segment(folder: Path, number: int, segment: Segment) -> dict[str, Any]:
    """Write ``seg-<number>.npz`` atomically; its manifest record (file, items, bytes, sha256)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        vectors=np.ascontiguousarray(segment.vectors, dtype=np.float32),
        classes=np.asarray(segment.classes, dtype=str),
        item_ids=np.asarray(segment.item_ids, dtype=str),
    )
    data = buffer.getvalue()
    name = f"seg-{number:06d}.npz"
    with atomic_write(folder / name, binary=True) as handle:
        handle.write(data)
    return {
        "file": name,
        "items": len(segment.vectors),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def read_segment(folder: Path, record: dict[str, Any]) -> Segment:
    """Read and verify one segment the manifest names."""
    path = folder / record["file"]
    rebuild = "rebuild it with 'metriclab gallery create'"
    if not path.is_file():
        raise ValueError(f"gallery {folder} is missing its segment {record['file']}; {rebuild}")
    data = path.read_bytes()
    if len(data) != record["bytes"] or hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise ValueError(
            f"gallery {folder}: segment {record['file']} is truncated or damaged "
            f"({len(data)} bytes, manifest records {record['bytes']}); {rebuild}"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return Segment(arrays["vectors"], arrays["classes"], arrays["item_ids"])


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Commit ``manifest`` (atomic rename), then delete segment files it does not name."""
    write_text(folder / MANIFEST, json.dumps({"format": FORMAT, "version": VERSION, **manifest}))
    named = {segment["file"] for segment in manifest["segments"]}
    for path in folder.glob("seg-*.npz"):
        if path.name not in named:
            path.unlink(missing_ok=True)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of gallery ``folder``, checked for format and version."""
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} is not a metriclab gallery (no {MANIFEST}); make one with "
            "'metriclab gallery create BUNDLE FOLDER -o GALLERY'"
        )
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as failure:
        raise ValueError(
            f"gallery manifest {path} is damaged ({failure}); rebuild the gallery"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a metriclab gallery manifest; rebuild the gallery")
    if manifest.get("version") != VERSION:
        raise ValueError(
            f"gallery {folder} has version {manifest.get('version')!r}; this metriclab reads "
            f"version {VERSION}, so rebuild the gallery"
        )
    return manifest
