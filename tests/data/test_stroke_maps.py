"""Stroke maps (starts, order, direction): what the image does not hold, binned on a coarse grid,
turned with class copies like the images, and offered as auxiliary targets by the augmentation."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from metriclab.data.render import PackedStrokes, render, render_drawings
from metriclab.data.stroke_augment import StrokeAugmentation
from metriclab.data.stroke_maps import CHANNELS, WEIGHTED, class_copy_points, stroke_maps
from metriclab.data.strokes import Drawing, resample_drawing


def line(x0: float, x1: float, y: float) -> np.ndarray:
    return np.float32([[x0, y], [x1, y]])


def test_a_stroke_drawn_either_way_looks_the_same_but_maps_differently() -> None:
    forward = resample_drawing(Drawing((line(10, 95, 52),)), 1.0)
    backward = resample_drawing(Drawing((line(95, 10, 52),)), 1.0)
    assert torch.equal(render_drawings([forward], 28), render_drawings([backward], 28))
    maps = stroke_maps(PackedStrokes.pack([forward, backward]), 3)
    assert maps.shape == (2, len(CHANNELS), 3, 3)
    for m in maps:
        assert float(m[0].sum()) == pytest.approx(1.0, abs=1e-5)  # all the ink, middle row
        assert float(m[0, 1].sum()) == pytest.approx(1.0, abs=1e-5)
    ahead, back = maps
    assert ahead[1, 1, 0] == 1.0 and back[1, 1, 2] == 1.0  # where the one stroke starts
    assert ahead[2, 1, 0] < ahead[2, 1, 1] < ahead[2, 1, 2]  # drawn left to right
    assert back[2, 1, 0] > back[2, 1, 1] > back[2, 1, 2]
    torch.testing.assert_close(ahead[3, 1], torch.ones(3))  # pen moves right …
    torch.testing.assert_close(back[3, 1], -torch.ones(3))  # … or left
    torch.testing.assert_close(maps[:, 4], torch.zeros(2, 3, 3))


def test_starts_count_each_stroke_and_order_follows_the_strokes() -> None:
    two = resample_drawing(Drawing((line(10, 30, 15), line(75, 95, 90))), 1.0)
    (m,) = stroke_maps(PackedStrokes.pack([two]), 3)
    assert m[1, 0, 0] == pytest.approx(0.5) and m[1, 2, 2] == pytest.approx(0.5)
    assert float(m[2, 0, 0]) < 0.5 < float(m[2, 2, 2])  # the first stroke's ink comes first
    assert set(WEIGHTED) == {2, 3, 4}


@pytest.mark.parametrize(("turns", "mirrored"), [(1, False), (2, False), (3, True), (0, True)])
def test_points_turn_as_class_copies_turn_images(turns: int, mirrored: bool) -> None:
    rng = np.random.default_rng(turns)
    drawing = Drawing(tuple(rng.uniform(10, 95, size=(4, 2)).astype(np.float32) for _ in range(2)))
    packed = PackedStrokes.pack([resample_drawing(drawing, 1.0)])
    n = len(packed.points)
    moved = class_copy_points(
        packed.points, torch.full((n,), turns), torch.full((n,), mirrored, dtype=torch.bool)
    )
    image = render(packed, 21)  # 105 / 5: pixel centres map onto pixel centres
    expected = torch.rot90(image, turns, dims=(2, 3))
    expected = torch.flip(expected, dims=(3,)) if mirrored else expected
    torch.testing.assert_close(render(packed.with_points(moved), 21), expected, atol=1e-4, rtol=0)


def test_the_augmentation_offers_maps_of_each_items_class_copy(tmp_path: Path) -> None:
    ids = ["A/character01/0001_01.png", "A/character02/0002_01.png"]
    with zipfile.ZipFile(tmp_path / "strokes.zip", "w") as out:
        for n, item in enumerate(ids):
            lines = ["START", *(f"{x},{-(20 + 30 * n)},0" for x in (10, 60, 90)), "BREAK"]
            out.writestr(f"strokes/{item[:-4]}.txt", "\n".join(lines) + "\n")
    augment = StrokeAugmentation([str(tmp_path / "strokes.zip")], p=0.0, auxiliary=0.5)
    augment.for_items(ids)
    asked = [ids[0], ids[0] + "@rot90", ids[1] + "@mirror", "unknown.png"]
    targets, known, weighted = augment.auxiliary_targets(asked, 5)
    assert targets.shape == (4, len(CHANNELS), 5, 5) and weighted == WEIGHTED
    assert known.tolist() == [True, True, True, False]
    assert torch.equal(targets[3], torch.zeros_like(targets[3]))
    # Ink, starts and order turn with the image; a turned pen direction turns too.
    torch.testing.assert_close(targets[1, :3], torch.rot90(targets[0, :3], 1, dims=(1, 2)))
    rotated = torch.rot90(targets[0, 3:], 1, dims=(1, 2))
    torch.testing.assert_close(targets[1, 3], rotated[1])  # (dx, dy) → (dy, −dx) as displayed
    torch.testing.assert_close(targets[1, 4], -rotated[0])
    plain, _, _ = augment.auxiliary_targets([ids[1]], 5)
    torch.testing.assert_close(targets[2, 3], -torch.flip(plain[0, 3], dims=(1,)))
    with pytest.raises(ValueError, match="auxiliary must be a loss weight"):
        StrokeAugmentation([str(tmp_path / "strokes.zip")], auxiliary=-1.0)
    with pytest.raises(ValueError, match="auxiliary stroke target needs the pen strokes"):
        StrokeAugmentation(auxiliary=1.0)
