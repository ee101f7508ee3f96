"""The ``strokes`` data set: any ``(strokes, label)`` records, drawn as images to train on.

Online handwriting, online signatures or sketches stored in the general format of
:func:`metriclab.data.strokes.read_stroke_records` (a JSON-lines file or ``<label>/<name>.txt``
folders) become :class:`~metriclab.data.LabeledImages` here, so every objective, split and
evaluation works on them unchanged. Coordinates are in arbitrary units (tablet points), so each
drawing is scaled to fit the canvas (its longer side spans ``1 − 2·margin`` of it, centred,
aspect kept); ``frame`` instead keeps absolute positions in a ``frame``-pixel canvas, as
Omniglot's strokes are (``frame: 105``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from metriclab.data.images import LabeledImages
from metriclab.data.preprocess import Preprocess
from metriclab.data.registry import DATA_SETS, DataParam, DataSetSpec, LoadRequest
from metriclab.data.render import FRAME_ORIGIN, PackedStrokes, render
from metriclab.data.strokes import Drawing, StrokeRecord, read_stroke_records, resample_drawing

#: Share of the canvas left empty on each side of a drawing fitted to it.
MARGIN = 0.1


def fitted(drawing: Drawing, side: float, margin: float = MARGIN) -> Drawing:
    """``drawing`` scaled and centred so that its longer side spans ``(1 − 2·margin)·side``."""
    points = np.concatenate(drawing.strokes)
    low, high = points.min(axis=0), points.max(axis=0)
    extent = float((high - low).max())
    scale = (1 - 2 * margin) * side / extent if extent > 0 else 1.0
    # The canvas spans [FRAME_ORIGIN, FRAME_ORIGIN + side] in the renderer's coordinates.
    centre = FRAME_ORIGIN + side / 2
    middle = (low + high) / 2
    return Drawing(
        tuple(((s - middle) * scale + centre).astype(np.float32) for s in drawing.strokes),
        drawing.times,
    )


def render_records(
    records: Sequence[StrokeRecord],
    size: int,
    pen_width: float = 1.5,
    frame: float | None = None,
    description: str = "strokes",
) -> LabeledImages:
    """``records`` drawn as uint8 ``(N, 1, size, size)`` white-on-black images with their labels.

    ``pen_width`` is in output pixels when drawings are fitted (``frame`` None), else in frame
    pixels. Classes are the sorted labels; item ids are the records' ids.
    """
    if frame is None:
        drawings = [fitted(r.drawing, float(size)) for r in records]
        canvas, pen = float(size), pen_width
    else:
        drawings, canvas, pen = [r.drawing for r in records], float(frame), pen_width
    # Resampled to a quarter of an output pixel: raw tablet samples can be far apart or bunched.
    spacing = canvas / size / 4
    chunks = []
    for start in range(0, len(drawings), 256):  # bounded memory for large sets
        part = [resample_drawing(d, spacing) for d in drawings[start : start + 256]]
        chunks.append(render(PackedStrokes.pack(part), size, pen, canvas))
    images = (torch.cat(chunks) * 255).round_().to(torch.uint8)
    names = sorted({r.label for r in records})
    index = {name: i for i, name in enumerate(names)}
    return LabeledImages(
        images=images,
        labels=torch.tensor([index[r.label] for r in records], dtype=torch.int64),
        class_names=tuple(names),
        item_ids=tuple(r.item_id for r in records),
        description=description,
        preprocess=Preprocess(size=size, channels=1, invert=True),
    )


def _load(request: LoadRequest) -> LabeledImages:
    (path,) = request.paths
    params = request.params
    records = read_stroke_records(path, flip_y=bool(params.get("flip_y") or False))
    size = request.size or 28
    pen = params.get("pen_width")
    return render_records(
        records,
        size,
        pen_width=1.5 if pen is None else float(pen),
        frame=params.get("frame"),
        description=f"strokes({path.name}, size={size})",
    )


DATA_SETS.register(
    "strokes",
    DataSetSpec(
        loader=_load,
        paths="one",
        path_help="a JSON-lines file of {id, label, strokes} or a folder of <label>/<name>.txt",
        size=28,
        channels=1,
        # Ink is drawn bright on black; images that later arrive as files (ink on paper) are
        # inverted to match, as Omniglot's are.
        invert=True,
        params={
            "pen_width": DataParam(
                float | None, "pen width (output pixels; frame pixels with frame)"
            ),
            "frame": DataParam(
                float | None, "keep positions in a canvas of this many pixels (Omniglot: 105)"
            ),
            "flip_y": DataParam(bool | None, "negate y when reading .txt files (Omniglot's own)"),
        },
        help="pen-stroke records (online handwriting, signatures) drawn as images",
    ),
)
