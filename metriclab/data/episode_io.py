"""The episode-set file: one JSON-lines file, a header line, then one line per episode.

Line 1, the header, is a JSON object: ``format`` (``"metriclab.episodes"``), ``version``, the
shape (``episodes``, ``n_way``, ``k_shot``, ``n_query``), ``meta`` (data description, generator
parameters and seed), ``classes`` and ``items`` (the sorted class names and item ids the set uses,
its vocabularies), ``fingerprint`` (``sha256:`` of the compact JSON of ``items``) and
``episodes_sha256`` (of the episode lines). Each following line is one episode,
``[classes (N), support (N·K), query (N·Q)]``, as indices into the vocabularies, class-major.
Item ids may be relative paths; ids that leave their root (``..``, absolute paths) are refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metriclab.atomic import atomic_write

FORMAT = "metriclab.episodes"
VERSION = 1
_DRIVE = re.compile(r"^[A-Za-z]:")
_HEADER_KEYS = (
    "format", "version", "episodes", "n_way", "k_shot", "n_query", "meta", "classes", "items",
    "fingerprint", "episodes_sha256",
)  # fmt: skip


def fingerprint(item_ids: Sequence[str]) -> str:
    """``sha256:<hex>`` of the compact UTF-8 JSON list of ``item_ids``, in the given order."""
    text = json.dumps(list(item_ids), separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_item_id(item_id: str, source: str = "episode set") -> None:
    """Refuse an id that would leave its root as a path: absolute, a drive, or a ``..`` part."""
    parts = re.split(r"[\\/]", item_id)
    if item_id.startswith(("/", "\\")) or _DRIVE.match(item_id) or ".." in parts or not item_id:
        raise ValueError(
            f"{source}: item id {item_id!r} escapes its root (empty, absolute or containing "
            "'..'); item ids must be relative paths inside the data root or '<name>:<index>'"
        )


def safe_join(root: Path, item_id: str) -> Path:
    """``root / item_id``, refusing ids (or symlinks) that lead outside ``root``."""
    check_item_id(item_id, str(root))
    path = root / item_id
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{path} leads outside {root} (a symlink?); keep the data inside it")
    return path


def encode_episodes(
    classes: np.ndarray, support: np.ndarray, query: np.ndarray
) -> tuple[list[str], list[str], list[str]]:
    """The class vocabulary, item vocabulary (both sorted) and episode lines of a set."""
    n_episodes, n_way, k_shot = support.shape
    class_vocab, class_index = np.unique(classes, return_inverse=True)
    items = np.concatenate([support.reshape(n_episodes, -1), query.reshape(n_episodes, -1)], 1)
    item_vocab, item_index = np.unique(items, return_inverse=True)
    split = n_way * k_shot
    lines = [
        json.dumps([c, i[:split], i[split:]], separators=(",", ":"))
        for c, i in zip(
            class_index.reshape(classes.shape).tolist(),
            item_index.reshape(items.shape).tolist(),
            strict=True,
        )
    ]
    return class_vocab.tolist(), item_vocab.tolist(), lines


def lines_sha256(lines: Sequence[str]) -> str:
    """The ``episodes_sha256`` of episode lines: sha256 of them joined by newlines."""
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def write_episodes(
    path: str | Path,
    classes: np.ndarray,
    support: np.ndarray,
    query: np.ndarray,
    meta: dict[str, Any],
) -> str:
    """Atomically write the arrays (``(E, N)``, ``(E, N, K)``, ``(E, N, Q)`` of str) to ``path``.

    Returns the item fingerprint.
    """
    class_vocab, item_ids, lines = encode_episodes(classes, support, query)
    for item_id in item_ids:
        check_item_id(item_id, str(path))
    header = {
        "format": FORMAT,
        "version": VERSION,
        "episodes": support.shape[0],
        "n_way": support.shape[1],
        "k_shot": support.shape[2],
        "n_query": query.shape[2],
        "meta": meta,
        "classes": class_vocab,
        "items": item_ids,
        "fingerprint": fingerprint(item_ids),
        "episodes_sha256": lines_sha256(lines),
    }
    try:
        header_line = json.dumps(header, separators=(",", ":"), ensure_ascii=False)
    except TypeError as failure:
        raise ValueError(f"episode meta must hold only JSON values: {failure}") from None
    with atomic_write(path) as handle:
        handle.write(header_line + "\n")
        handle.writelines(line + "\n" for line in lines)
    return header["fingerprint"]


def _header(path: Path, line: str) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(
            f"{path} line 1 is not a metriclab episode header; make episode files with "
            "'metriclab episodes make' or 'metriclab episodes import-omniglot-runs'"
        )
    if header.get("version") != VERSION:
        raise ValueError(
            f"{path} has format version {header.get('version')!r}; this metriclab reads version "
            f"{VERSION}; use the metriclab that wrote it or remake the file"
        )
    missing = [key for key in _HEADER_KEYS if key not in header]
    if missing:
        raise ValueError(f"{path} header lacks {missing[0]!r}; the file is damaged, remake it")
    shape_ok = all(
        isinstance(header[key], int) and header[key] >= 1
        for key in ("episodes", "n_way", "k_shot", "n_query")
    )
    vocab_ok = all(
        isinstance(header[key], list) and all(isinstance(v, str) for v in header[key])
        for key in ("classes", "items")
    )
    if not (shape_ok and vocab_ok and isinstance(header["meta"], dict)):
        raise ValueError(
            f"{path} header has a malformed shape, meta or vocabulary; the file is damaged, "
            "remake it"
        )
    if fingerprint(header["items"]) != header["fingerprint"]:
        raise ValueError(
            f"{path}: the item fingerprint does not match the header's {header['fingerprint']}; "
            "the item list was edited or damaged, remake or re-download the file"
        )
    for item_id in header["items"]:
        check_item_id(item_id, str(path))
    return header


def _episode(path: Path, number: int, line: str, header: dict[str, Any]) -> list[list[int]]:
    """Parse line ``number`` (1-based) of ``path``; check its shape and index ranges."""
    n_way, k_shot, n_query = header["n_way"], header["k_shot"], header["n_query"]
    try:
        episode = json.loads(line)
    except json.JSONDecodeError:
        raise ValueError(
            f"{path} line {number} is not a complete episode; the file is truncated or "
            "damaged, remake or re-download it"
        ) from None
    sizes = [n_way, n_way * k_shot, n_way * n_query]
    limits = [len(header["classes"]), len(header["items"]), len(header["items"])]
    if (
        not isinstance(episode, list)
        or [len(part) if isinstance(part, list) else -1 for part in episode] != sizes
        or not all(
            isinstance(i, int) and 0 <= i < limit
            for part, limit in zip(episode, limits, strict=True)
            for i in part
        )
    ):
        raise ValueError(
            f"{path} line {number} is not an episode [classes ({sizes[0]}), support "
            f"({sizes[1]}), query ({sizes[2]})] of indices into the header's vocabularies; "
            "the file is damaged, remake it"
        )
    return episode


def read_episodes(
    path: str | Path,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    """Read and check a file written by :func:`write_episodes`: header, classes, support, query."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"episode file {path} does not exist; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text; it is not a metriclab episode file") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        raise ValueError(f"{path} is empty; it is not a metriclab episode file")
    header = _header(path, lines[0])
    expected = header["episodes"]
    if len(lines) - 1 < expected:
        raise ValueError(
            f"{path} is truncated: it ends at line {len(lines)}, but its header promises "
            f"{expected} episodes (lines 2 to {expected + 1}); remake or re-download it"
        )
    if len(lines) - 1 > expected:
        raise ValueError(
            f"{path} line {expected + 2} is past the {expected} episodes its header promises; "
            "the file is damaged, remake it"
        )
    body = lines[1:]
    rows = [_episode(path, n, line, header) for n, line in enumerate(body, start=2)]
    if lines_sha256(body) != header["episodes_sha256"]:
        raise ValueError(
            f"{path}: the episode lines do not match the header's checksum; the file was "
            "edited or damaged, remake or re-download it"
        )
    n_way, k_shot, n_query = header["n_way"], header["k_shot"], header["n_query"]
    class_vocab, item_vocab = np.asarray(header["classes"]), np.asarray(header["items"])
    classes = class_vocab[np.array([r[0] for r in rows], dtype=np.int64).reshape(-1, n_way)]
    support = np.array([r[1] for r in rows], dtype=np.int64).reshape(-1, n_way, k_shot)
    query = np.array([r[2] for r in rows], dtype=np.int64).reshape(-1, n_way, n_query)
    return header, classes, item_vocab[support], item_vocab[query]
