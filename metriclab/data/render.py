"""Strokes → anti-aliased grey images, batched in torch.

Every pixel's intensity is a smooth function of its distance to the pen's path: with the pen's
half width ``r`` and the distance ``d`` from the pixel centre to the polyline, the ink
is ``clamp(r + ½ − d, 0, 1)``, the fraction of a one-pixel box around the centre that a straight
edge at distance ``d`` covers (the box-filter anti-aliasing of a thick line, Gupta & Sproull 1981).
So a pen thinner than a pixel gives grey, not a broken line, and any output size is drawn
directly from the coordinates, with no resize of a large rendering. The path is sampled densely
and each sample inks only the few pixels within the pen's reach, so the cost follows the ink, not
pixels × segments (a first version that measured every pixel against every segment took 45
times as long for 300 drawings at 105 px).

Drawings are packed into flat tensors (:class:`PackedStrokes`) so that perturbing and rendering
a batch is a handful of tensor operations, whatever the number of strokes per drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from metriclab.data.strokes import Drawing

#: Omniglot's drawing frame: strokes are in pixels of its 105×105 images.
OMNIGLOT_FRAME = 105.0
#: The pen width (pixels of the 105 frame) whose renderings agree best with the shipped Omniglot
#: images (tests/data/test_strokes_render.py measures it; BENCHMARKS.md "Omniglot from pen strokes").
OMNIGLOT_PEN = 5.0
#: The frame's top-left corner in stroke coordinates: Omniglot's point (x, y) is the centre of
#: pixel (row round(y), column round(x)) of the 105-pixel image, so the canvas spans
#: [−½, 104.5]; corners 0, −0.25 and −0.75 agree worse with the shipped images (thresholded IoU
#: 0.80, 0.87 and 0.91 against 0.92 at pen width 5).
FRAME_ORIGIN = -0.5


@dataclass(frozen=True)
class PackedStrokes:
    """A batch of ``B`` drawings as flat tensors.

    Attributes:
        points: ``(N, 2)`` float32 pen positions ``(x, y)`` in frame pixels, stroke after stroke.
        stroke: ``(N,)`` int64, the stroke (0 … S−1) of each point; strokes are contiguous.
        along: ``(N,)`` float32, each point's position along its stroke in [0, 1] (arc length
            fraction for resampled strokes; 0 for a one-point stroke).
        drawing: ``(S,)`` int64, the drawing (0 … B−1) of each stroke.
        count: ``B``.
    """

    points: torch.Tensor
    stroke: torch.Tensor
    along: torch.Tensor
    drawing: torch.Tensor
    count: int

    @staticmethod
    def pack(drawings: Sequence[Drawing]) -> PackedStrokes:
        """Pack ``drawings`` (each with at least one stroke of at least one point)."""
        strokes = [s for d in drawings for s in d.strokes]
        if not strokes:
            raise ValueError("cannot pack an empty batch of drawings; pass at least one drawing")
        lengths = np.array([len(s) for s in strokes], dtype=np.int64)
        if (lengths < 1).any():
            raise ValueError("every stroke needs at least one point; drop empty strokes")
        stroke = np.repeat(np.arange(len(strokes)), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        index = np.arange(len(stroke)) - np.repeat(starts, lengths)
        along = index / np.maximum(np.repeat(lengths, lengths) - 1, 1)
        per_drawing = [len(d.strokes) for d in drawings]
        return PackedStrokes(
            points=torch.from_numpy(np.concatenate(strokes).astype(np.float32)),
            stroke=torch.from_numpy(stroke),
            along=torch.from_numpy(along.astype(np.float32)),
            drawing=torch.from_numpy(np.repeat(np.arange(len(drawings)), per_drawing)),
            count=len(drawings),
        )

    def with_points(self, points: torch.Tensor) -> PackedStrokes:
        """The same strokes at new positions ``(N, 2)``."""
        return PackedStrokes(points, self.stroke, self.along, self.drawing, self.count)


def segments(packed: PackedStrokes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pen segments ``(starts (M, 2), ends (M, 2), drawing (M,))``.

    Consecutive points of a stroke make a segment; every stroke's first point also makes a
    zero-length one, so a stroke that is a single point (a dot) is drawn too.
    """
    p, stroke = packed.points, packed.stroke
    joined = stroke[1:] == stroke[:-1]
    first = torch.ones_like(stroke, dtype=torch.bool)
    first[1:] = ~joined
    starts = torch.cat([p[:-1][joined], p[first]])
    ends = torch.cat([p[1:][joined], p[first]])
    owner = packed.drawing[torch.cat([stroke[:-1][joined], stroke[first]])]
    return starts, ends, owner


def densify(
    starts: torch.Tensor, ends: torch.Tensor, owner: torch.Tensor, spacing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``(Q, 2)`` at most ``spacing`` apart along every segment, and their drawing ``(Q,)``."""
    length = (ends - starts).norm(dim=1)
    pieces = torch.ceil(length / spacing).clamp_min_(1).to(torch.int64)
    segment = torch.repeat_interleave(torch.arange(len(pieces)), pieces)
    offsets = torch.cumsum(pieces, 0) - pieces
    fraction = (torch.arange(len(segment)) - offsets[segment]) / pieces[segment]
    points = starts[segment] + fraction[:, None] * (ends - starts)[segment]
    # Each segment's own end is the next one's start; the last end of a stroke is added here.
    return torch.cat([points, ends]), torch.cat([owner[segment], owner])


def render(
    packed: PackedStrokes,
    size: int,
    pen_width: float | torch.Tensor = OMNIGLOT_PEN,
    frame: float = OMNIGLOT_FRAME,
    spacing: float = 0.5,
) -> torch.Tensor:
    """Draw each drawing as a ``size``×``size`` grey image: float32 ``(B, 1, size, size)`` in [0, 1].

    Args:
        packed: the drawings, in pixels of a ``frame``×``frame`` canvas.
        size: output side in pixels; coordinates and the pen scale by ``size / frame``.
        pen_width: the pen's width in frame pixels, one number or ``(B,)`` per drawing.
        spacing: the path is sampled every ``spacing`` output pixels; each sample inks the
            pixels within the pen's reach and a pixel keeps its largest ink (``scatter_reduce``
            with ``amax``); the distance to the nearest sample overestimates that to the path by
            at most ``spacing²/(8d)`` at distance ``d`` (0.03 px at 1 px for 0.5), and by
            ``spacing/2`` on the path itself, where a pen of a pixel or more saturates anyway.

    Ink is bright on a zero background (metriclab's white-on-black convention for characters).
    Cost grows with the ink (path length × pen width), not with ``size²`` × segments.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1 pixel, got {size}")
    if not frame > 0:
        raise ValueError(f"frame must be a positive number of pixels, got {frame}")
    if not 0 < spacing <= 1:
        raise ValueError(f"spacing must lie in (0, 1] output pixels, got {spacing}")
    scale = size / frame
    widths = torch.as_tensor(pen_width, dtype=torch.float32).expand(packed.count)
    if not bool(torch.all(widths > 0)):
        raise ValueError(f"pen_width must be positive, got {pen_width}")
    # Output pixel i spans [i, i + 1) after this map, its centre at i + ½.
    starts, ends, owner = segments(packed.with_points((packed.points - FRAME_ORIGIN) * scale))
    points, owner = densify(starts, ends, owner, spacing)
    radius = widths * (scale / 2)  # (B,)
    # A pixel gets ink while its centre is within radius + ½ of a sample; a sample lies in
    # [base, base + 1) of pixel centres, so pixels base − reach + 1 … base + reach cover it.
    reach = int(np.ceil(float(radius.max()) + 0.5))
    steps = torch.arange(1 - reach, reach + 1)
    # Samples far off the canvas are clamped to its margin: their ink there is computed from
    # their true position, hence zero, so no sample needs filtering out.
    base = torch.floor(points - 0.5).clamp_(-reach, size + reach - 1).to(torch.int64)
    offset = steps.to(torch.float32) + 0.5
    dx = base[:, 0, None].to(torch.float32) + offset - points[:, 0, None]  # (Q, K)
    dy = base[:, 1, None].to(torch.float32) + offset - points[:, 1, None]
    distance = torch.sqrt(dy.square()[:, :, None] + dx.square()[:, None, :])  # (Q, K, K)
    ink = (radius[owner][:, None, None] + 0.5 - distance).clamp_(0.0, 1.0)
    # A canvas with a margin of 2·reach on every side holds every neighbour of every sample.
    margin = 2 * reach
    side = size + 2 * margin
    corner = (owner * side + base[:, 1] + margin) * side + base[:, 0] + margin  # (Q,)
    flat = corner[:, None, None] + (steps[:, None] * side + steps[None, :])
    canvas = torch.zeros(packed.count * side * side)
    canvas.scatter_reduce_(0, flat.flatten(), ink.flatten(), reduce="amax")
    out = canvas.view(packed.count, side, side)[:, margin : margin + size, margin : margin + size]
    return out.unsqueeze(1).contiguous()


def render_drawings(
    drawings: Sequence[Drawing],
    size: int,
    pen_width: float = OMNIGLOT_PEN,
    frame: float = OMNIGLOT_FRAME,
) -> torch.Tensor:
    """uint8 ``(B, 1, size, size)`` renderings of ``drawings`` (ink 255 on 0), see :func:`render`."""
    ink = render(PackedStrokes.pack(drawings), size, pen_width, frame)
    return (ink * 255).round_().to(torch.uint8)
