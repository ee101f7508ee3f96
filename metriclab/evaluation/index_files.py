"""Index files: a plain FAISS index file plus a JSON sidecar that makes it safe to reload.

The index file is exactly what ``faiss.write_index`` writes, so ``faiss.read_index`` still opens
it. The sidecar ``<index file>.json`` records the metriclab distance (with learned weights), the
index kind and parameters, optional labels and item ids, and the size and SHA-256 of the index
file, so that a truncated or swapped file is refused instead of silently giving wrong neighbours.
Both files are written atomically; the sidecar is written last and acts as the commit record.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from metriclab.atomic import atomic_write, write_text
from metriclab.distances import Distance, distance_from_dict

FORMAT = "metriclab.faiss_index"
VERSION = 1


def sidecar_path(path: str | Path) -> Path:
    """Where the sidecar of index file ``path`` lives: ``<path>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def distance_from_record(record: Any, source: Path) -> Distance:
    """The distance a sidecar describes, or one sentence naming the sidecar."""
    try:
        return distance_from_dict(record)
    except ValueError as failure:
        raise ValueError(f"sidecar {source} holds an unusable distance: {failure}") from None


def check_expected_distance(stored: Distance, expected: Distance, source: Path) -> None:
    """Refuse an index built with another distance (or other learned weights) than ``expected``."""
    if stored.name != expected.name:
        raise ValueError(
            f"index file {source} was built with distance {stored.name!r}, but {expected.name!r} "
            "was expected; rebuild the index with the model's distance"
        )
    if not stored.same_as(expected):
        raise ValueError(
            f"index file {source} was built with other learned {stored.name} parameters than the "
            "expected distance's; rebuild the index with the current model"
        )


def write_index_files(path: str | Path, index: faiss.Index, sidecar: dict[str, Any]) -> None:
    """Write ``index`` to ``path`` and ``sidecar`` (plus size and checksum) to ``<path>.json``."""
    path = Path(path)
    data = faiss.serialize_index(index).tobytes()
    with atomic_write(path, binary=True) as handle:
        handle.write(data)
    record = {
        "format": FORMAT,
        "version": VERSION,
        "index_file": path.name,
        "index_bytes": len(data),
        "index_sha256": hashlib.sha256(data).hexdigest(),
        **sidecar,
    }
    write_text(sidecar_path(path), json.dumps(record) + "\n")


def read_index_files(path: str | Path) -> tuple[faiss.Index, dict[str, Any]]:
    """Read and verify an index file and its sidecar; the FAISS index and the sidecar record."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"index file {path} does not exist; build one with FaissIndex.build(...).save({path})"
        )
    if not side.is_file():
        raise FileNotFoundError(
            f"index sidecar {side} is missing; an index needs the sidecar FaissIndex.save writes, "
            "so rebuild and save the index"
        )
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as failure:
        raise ValueError(
            f"index sidecar {side} is not valid JSON ({failure}); rebuild the index"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{side} is not a metriclab index sidecar; rebuild the index")
    if record.get("version") != VERSION:
        raise ValueError(
            f"index sidecar {side} has version {record.get('version')!r}; this metriclab reads "
            f"version {VERSION}, so rebuild the index"
        )
    data = path.read_bytes()
    if len(data) != record["index_bytes"]:
        raise ValueError(
            f"index file {path} has {len(data)} bytes but its sidecar records "
            f"{record['index_bytes']}: the file is truncated or was replaced; rebuild it"
        )
    if hashlib.sha256(data).hexdigest() != record["index_sha256"]:
        raise ValueError(
            f"index file {path} does not match the checksum in its sidecar: the file is corrupt "
            "or was replaced; rebuild it"
        )
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError:
        raise ValueError(f"FAISS cannot read index file {path}; rebuild it") from None
    if index.d != record["dim"] or index.ntotal != record["size"]:
        raise ValueError(
            f"index file {path} holds {index.ntotal} vectors of dimension {index.d}, but its "
            f"sidecar records {record['size']} of dimension {record['dim']}; rebuild it"
        )
    return index, record
