"""Pen trajectories: Omniglot's stroke files, a general ``(strokes, label)`` format, resampling.

A drawing is a tuple of strokes; a stroke is a float32 array ``(P, 2)`` of pen positions ``(x, y)``
in image pixels (x right, y down, the origin at the image's top-left corner), in drawing order,
one stroke per pen-down. Times are kept beside them (``(P,)`` milliseconds) when the file has
them, since speed and stroke order are what online handwriting adds to a picture.

**Omniglot** (Lake, Salakhutdinov & Tenenbaum 2015): ``strokes_background*.zip`` (or its unpacked
folder) holds ``<Alphabet>/characterNN/<drawing>_<drawer>.txt`` beside the images' ``….png``. A
file is ``START``, then one ``x,y,t`` line per sample, and ``BREAK`` after every stroke; y is
negated (the image point of ``(x, y)`` is ``(x, −y)``). :func:`omniglot_strokes` returns the
drawings keyed by the *image's* item id (``"Latin/character03/0123_05.png"``), exactly the ids
:func:`metriclab.data.omniglot.omniglot` gives, so strokes and images join by id.

**General format** for online handwriting or signatures (:func:`read_stroke_records`), either

* a JSON-lines file, one drawing a line::

      {"id": "w07/0001", "label": "w07", "strokes": [[[x, y], [x, y], ...], [[x, y, t], ...]]}

  (points ``[x, y]`` or ``[x, y, t]``, image coordinates, y down; ``id`` unique), or
* a folder of ``<label>/<name>.txt`` files in Omniglot's text format without the negation of y
  (``flip_y=True`` reads Omniglot's own folders this way); the id is ``<label>/<name>.txt``.

The raw sampling is non-uniform (each browser and computer sampled the pen at its own rate), so
a stroke is resampled at a uniform arc length (:func:`resample`) before it is perturbed or drawn.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CHARACTER = re.compile(r"character\d+")


@dataclass(frozen=True)
class Drawing:
    """One drawing: ``strokes`` float32 ``(P_i, 2)`` arrays in image pixels (y down), in order;
    ``times`` float32 ``(P_i,)`` milliseconds per stroke, or ``None`` when the source has none."""

    strokes: tuple[np.ndarray, ...]
    times: tuple[np.ndarray, ...] | None = None

    @property
    def num_points(self) -> int:
        return sum(len(s) for s in self.strokes)


@dataclass(frozen=True)
class StrokeRecord:
    """A drawing with its id and class label: the general ``(strokes, label)`` item."""

    item_id: str
    label: str
    drawing: Drawing


def _block(lines: list[str]) -> np.ndarray | None:
    """``(P, 3)`` float32 ``x, y, t`` of one stroke's lines, or None when any line is malformed."""
    try:
        values = np.array(",".join(lines).split(","), dtype=np.float32)
    except ValueError:
        return None
    if len(values) != 3 * len(lines) or not np.isfinite(values).all():
        return None
    return values.reshape(-1, 3)


def _first_bad(lines: list[str], numbers: list[int]) -> tuple[int, str]:
    for number, line in zip(numbers, lines, strict=True):
        if _block([line]) is None:
            return number, line
    return numbers[0], lines[0]  # unreachable when _block failed on the lines


def parse_stroke_text(text: str, origin: str, flip_y: bool = True) -> Drawing:
    """A drawing from Omniglot's text format (``START``, ``x,y,t`` lines, ``BREAK`` per stroke).

    ``flip_y`` negates y back (Omniglot's files store −y). ``origin`` names the file in errors:
    a malformed line raises one :class:`ValueError` naming the file and the line number.
    """
    blocks: list[tuple[list[str], list[int]]] = []
    lines: list[str] = []
    numbers: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line == "START":
            continue
        if line == "BREAK":
            if lines:
                blocks.append((lines, numbers))
            lines, numbers = [], []
            continue
        lines.append(line)
        numbers.append(number)
    if lines:  # a last stroke without its BREAK: keep it rather than lose the pen's last move
        blocks.append((lines, numbers))
    if not blocks:
        raise ValueError(f"{origin} holds no pen positions; expected 'x,y,t' lines")
    sign = np.float32([1, -1 if flip_y else 1])
    strokes, times = [], []
    for lines, numbers in blocks:
        array = _block(lines)
        if array is None:
            number, line = _first_bad(lines, numbers)
            raise ValueError(
                f"{origin}, line {number}: expected 'x,y,t' numbers, START or BREAK, got "
                f"{line[:40]!r}; fix or remove that line"
            )
        strokes.append(array[:, :2] * sign)
        times.append(array[:, 2].copy())
    return Drawing(tuple(strokes), tuple(times))


def _is_junk(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _omniglot_id(parts: Sequence[str]) -> str | None:
    """``Alphabet/characterNN/name.png`` for a path ending ``Alphabet/characterNN/name.txt``."""
    if len(parts) < 3 or not parts[-1].lower().endswith(".txt") or any(map(_is_junk, parts)):
        return None
    alphabet, character, name = parts[-3:]
    if not _CHARACTER.fullmatch(character):
        return None
    return f"{alphabet}/{character}/{name[:-4]}.png"


def _zip_texts(archive: Path) -> Iterator[tuple[list[str], str, str]]:
    """``(path parts, text, origin)`` of every ``.txt`` member of a zip, junk skipped."""
    try:
        with zipfile.ZipFile(archive) as opened:
            for info in opened.infolist():
                parts = info.filename.split("/")
                if info.is_dir() or not parts[-1].lower().endswith(".txt"):
                    continue
                if any(map(_is_junk, parts)):
                    continue
                yield parts, opened.read(info).decode("utf-8"), f"{archive}:{info.filename}"
    except (zipfile.BadZipFile, OSError) as failure:
        raise ValueError(
            f"{archive} is not a readable zip archive ({failure}); fetch it again"
        ) from None


def _folder_texts(root: Path) -> Iterator[tuple[list[str], str, str]]:
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not _is_junk(d))
        for name in sorted(files):
            path = Path(folder) / name
            if name.lower().endswith(".txt") and not _is_junk(name):
                yield list(path.relative_to(root).parts), path.read_text("utf-8"), str(path)
            elif name.lower().endswith(".zip"):
                yield from _zip_texts(path)


def _texts(path: Path) -> Iterator[tuple[list[str], str, str]]:
    if path.is_dir():
        return _folder_texts(path)
    if path.is_file():
        return _zip_texts(path)
    raise FileNotFoundError(
        f"stroke path {path} does not exist; pass strokes_background*.zip or its folder"
    )


def omniglot_strokes(
    paths: str | Path | Sequence[str | Path],
    alphabets: Iterable[str] | None = None,
    items: Iterable[str] | None = None,
) -> dict[str, Drawing]:
    """Omniglot drawings keyed by the image item id, from stroke zips or folders (merged; the
    first path wins a repeated id, as Greek and Latin are in both small sets).

    ``alphabets`` keeps only those alphabets and ``items`` only those item ids; the others are
    not parsed. No drawing found is an error naming the paths.
    """
    sources = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    wanted = None if alphabets is None else set(alphabets)
    kept = None if items is None else set(items)
    drawings: dict[str, Drawing] = {}
    for source in sources:
        for parts, text, origin in _texts(source):
            item = _omniglot_id(parts)
            if item is None or item in drawings:
                continue
            if wanted is not None and item.split("/")[0] not in wanted:
                continue
            if kept is not None and item not in kept:
                continue
            drawings[item] = parse_stroke_text(text, origin, flip_y=True)
    if not drawings:
        names = ", ".join(str(s) for s in sources)
        raise ValueError(
            f"no Omniglot strokes in {names}: expected <Alphabet>/characterNN/*.txt files "
            f"(strokes_background*.zip)"
        )
    return dict(sorted(drawings.items()))


def _json_drawing(value: object, origin: str) -> Drawing:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{origin}: 'strokes' must be a non-empty list of strokes")
    strokes, times = [], []
    for stroke in value:
        try:
            array = np.asarray(stroke, dtype=np.float32)
        except (TypeError, ValueError):
            array = np.zeros((0, 0), dtype=np.float32)
        if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] not in (2, 3):
            raise ValueError(
                f"{origin}: every stroke must be a non-empty list of [x, y] or [x, y, t] points"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"{origin}: a stroke holds a non-finite coordinate")
        strokes.append(array[:, :2].copy())
        times.append(array[:, 2].copy() if array.shape[1] == 3 else None)
    timed = all(t is not None for t in times)
    return Drawing(tuple(strokes), tuple(times) if timed else None)  # type: ignore[arg-type]


def _jsonl_records(path: Path) -> list[StrokeRecord]:
    records = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        origin = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as failure:
            raise ValueError(f"{origin} is not valid JSON ({failure.msg}); fix that line") from None
        if not isinstance(row, dict) or not {"id", "label", "strokes"} <= set(row):
            raise ValueError(f"{origin}: each line needs the keys id, label and strokes")
        drawing = _json_drawing(row["strokes"], origin)
        records.append(StrokeRecord(str(row["id"]), str(row["label"]), drawing))
    return records


def read_stroke_records(path: str | Path, flip_y: bool = False) -> list[StrokeRecord]:
    """``(strokes, label)`` records from a JSON-lines file or a ``<label>/<name>.txt`` folder
    (see the module docstring), sorted by id; a repeated id is an error naming it."""
    path = Path(path)
    if path.is_file():
        records = _jsonl_records(path)
    elif path.is_dir():
        records = []
        for parts, text, origin in _folder_texts(path):
            if len(parts) < 2:
                continue  # files beside the label folders are not drawings
            drawing = parse_stroke_text(text, origin, flip_y=flip_y)
            records.append(StrokeRecord("/".join(parts), "/".join(parts[:-1]), drawing))
    else:
        raise FileNotFoundError(f"stroke records {path} do not exist; pass a .jsonl or a folder")
    if not records:
        raise ValueError(f"{path} holds no drawings; see metriclab.data.strokes for the format")
    seen: set[str] = set()
    for record in records:
        if record.item_id in seen:
            raise ValueError(f"{path}: id {record.item_id!r} appears twice; ids must be unique")
        seen.add(record.item_id)
    return sorted(records, key=lambda r: r.item_id)


def write_stroke_records(records: Iterable[StrokeRecord], path: str | Path) -> None:
    """Write records as JSON lines (the format :func:`read_stroke_records` reads), atomically."""
    from metriclab.atomic import write_text

    lines = []
    for record in records:
        d = record.drawing
        strokes = [
            np.column_stack([s, d.times[i]]).tolist() if d.times is not None else s.tolist()
            for i, s in enumerate(d.strokes)
        ]
        lines.append(json.dumps({"id": record.item_id, "label": record.label, "strokes": strokes}))
    write_text(Path(path), "\n".join(lines) + "\n")


def resample(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """``stroke`` ``(P, 2)`` resampled at uniform arc length: ``(Q, 2)`` float32 points, the
    first and last kept, consecutive points ``≤ spacing`` apart and equally spaced along the path.

    A stroke of zero length (a dot, or one sample) becomes its single first point.
    """
    if not spacing > 0:
        raise ValueError(f"spacing must be a positive number of pixels, got {spacing}")
    stroke = np.asarray(stroke, dtype=np.float64)
    steps = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    length = float(arc[-1])
    if length <= 1e-9:
        return stroke[:1].astype(np.float32)
    count = int(np.ceil(length / spacing)) + 1
    target = np.linspace(0.0, length, count)
    # Repeated samples (the pen held still) give equal arc values; np.interp needs them unique.
    keep = np.concatenate([[True], steps > 1e-12])
    arc, stroke = arc[keep], stroke[keep]
    out = np.column_stack([np.interp(target, arc, stroke[:, k]) for k in range(2)])
    return out.astype(np.float32)


def resample_drawing(drawing: Drawing, spacing: float) -> Drawing:
    """Every stroke of ``drawing`` resampled (:func:`resample`); times are dropped (they no
    longer match the points)."""
    return Drawing(tuple(resample(s, spacing) for s in drawing.strokes), None)
