"""Coarse maps of how a drawing was drawn: where strokes start, in which order and direction the
ink was laid down. Training targets only (an auxiliary head predicts them from the image).

An image shows where the ink is, not how it got there; the pen trajectory adds the stroke
starts, the order and the direction of motion, which Lake et al. 2015 show carry most of what
makes one-shot character recognition human-like. :func:`stroke_maps` bins a packed batch of
drawings into an ``side × side`` grid (the backbone's feature map) with five channels:

0. ``ink``: the share of the drawing's path inside the cell;
1. ``start``: the share of the drawing's strokes that start inside the cell;
2. ``order``: the mean drawing-order position (0 at the first ink, 1 at the last, by path
   length) of the ink in the cell;
3–4. ``direction``: the mean unit pen direction ``(dx, dy)`` of the ink in the cell (x right,
   y down), whose sign no image holds.

Channels 2–4 are means over the cell's ink and are 0 where there is none (:data:`WEIGHTED`
names them: a loss weighs them by channel 0). :func:`class_copy_points` turns the points as
:func:`~metriclab.data.augment.rotations_as_classes` and ``mirrors_as_classes`` turn images,
so maps follow rotated and mirrored class copies exactly, direction vectors included.
"""

from __future__ import annotations

import torch

from metriclab.data.render import FRAME_ORIGIN, OMNIGLOT_FRAME, PackedStrokes

#: Channel names in order.
CHANNELS = ("ink", "start", "order", "dx", "dy")
#: Channels that are means over the cell's ink (weigh their error by the ``ink`` channel).
WEIGHTED = (2, 3, 4)


def class_copy_points(
    points: torch.Tensor, turns: torch.Tensor, mirrored: torch.Tensor, frame: float = OMNIGLOT_FRAME
) -> torch.Tensor:
    """Points ``(N, 2)`` rotated by ``turns`` ``(N,)`` quarter turns counter-clockwise as displayed
    (``torch.rot90(image, turns, dims=(2, 3))``), then mirrored left-right where ``mirrored``
    ``(N,)`` (``torch.flip(image, dims=(3,))``), about the frame's centre."""
    u = (points - FRAME_ORIGIN) / frame  # [0, 1] across the canvas
    for _ in range(3):  # at most three quarter turns; each point turns while it has turns left
        turning = turns > 0
        # rot90 on (H, W): new row = W − 1 − old column, new column = old row.
        u = torch.where(turning[:, None], torch.stack([u[:, 1], 1 - u[:, 0]], 1), u)
        turns = turns - turning.to(turns.dtype)
    u = torch.where(mirrored[:, None], torch.stack([1 - u[:, 0], u[:, 1]], 1), u)
    return u * frame + FRAME_ORIGIN


def stroke_maps(packed: PackedStrokes, side: int, frame: float = OMNIGLOT_FRAME) -> torch.Tensor:
    """float32 ``(B, 5, side, side)`` maps of :data:`CHANNELS` for each drawing of ``packed``.

    Each point stands for the path up to the next point of its stroke (its segment length is its
    ink); a stroke's last point carries none but marks nothing else either. Points off the
    canvas count in the nearest border cell.
    """
    if side < 1:
        raise ValueError(f"side must be at least 1 cell, got {side}")
    points, stroke = packed.points, packed.stroke
    count = packed.count
    same = torch.zeros(len(points), dtype=torch.bool)
    same[:-1] = stroke[1:] == stroke[:-1]
    step = torch.zeros_like(points)
    step[:-1] = points[1:] - points[:-1]
    step[~same] = 0.0
    length = step.norm(dim=1)
    owner = packed.drawing[stroke]
    path = torch.zeros(count).index_add_(0, owner, length)
    total = path.clamp_min(1e-6)
    # Drawing-order position: the path drawn before the point's segment midpoint, as a share
    # (drawings are contiguous and in order, so each starts where the ones before it end).
    before = torch.cumsum(length, 0) - length
    first_of_drawing = torch.cumsum(path, 0) - path
    order = (before - first_of_drawing[owner] + length / 2) / total[owner]
    direction = step / length.clamp_min(1e-6)[:, None]
    cell = ((points - FRAME_ORIGIN) / frame * side).floor().clamp_(0, side - 1).to(torch.int64)
    flat = (owner * side + cell[:, 1]) * side + cell[:, 0]
    ink = length / total[owner]
    maps = torch.zeros(5, count * side * side)
    maps[0].index_add_(0, flat, ink)
    starts = torch.ones(len(points), dtype=torch.bool)
    starts[1:] = stroke[1:] != stroke[:-1]
    strokes_per = torch.bincount(packed.drawing, minlength=count).clamp_min(1).to(torch.float32)
    maps[1].index_add_(0, flat[starts], 1.0 / strokes_per[owner[starts]])
    for channel, value in ((2, order), (3, direction[:, 0]), (4, direction[:, 1])):
        maps[channel].index_add_(0, flat, ink * value)
    maps[2:] /= maps[0].clamp_min(1e-6)
    return maps.view(5, count, side, side).transpose(0, 1).contiguous()


__all__ = ["CHANNELS", "WEIGHTED", "class_copy_points", "stroke_maps"]
