"""The ``strokes`` data set: (strokes, label) records drawn as images and trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from metriclab.config import resolve_config
from metriclab.data import load_dataset, read_stroke_records, render_records
from metriclab.data.stroke_sets import fitted
from metriclab.data.strokes import Drawing, StrokeRecord, write_stroke_records


def write_records(path: Path, writers: int = 4, each: int = 3) -> Path:
    """Seeded 'signatures': each writer's drawings are noisy copies of one random curve, in
    tablet units far from the image frame."""
    rng = np.random.default_rng(0)
    records = []
    for w in range(writers):
        curve = np.cumsum(rng.normal(0, 300, size=(12, 2)), axis=0) + 5000
        for k in range(each):
            noisy = (curve + rng.normal(0, 20, size=curve.shape)).astype(np.float32)
            drawing = Drawing((noisy[:7], noisy[7:]))
            records.append(StrokeRecord(f"w{w}/{k}", f"writer{w}", drawing))
    write_stroke_records(records, path)
    return path


def test_fitting_centres_and_scales_any_units() -> None:
    drawing = Drawing((np.array([[1000, 2000], [3000, 2500]], np.float32),))
    out = fitted(drawing, 28.0).strokes[0]
    np.testing.assert_allclose(out[:, 0].max() - out[:, 0].min(), 0.8 * 28, rtol=1e-5)
    np.testing.assert_allclose(out.mean(axis=0), [13.5, 13.5], atol=1e-4)


def test_records_render_to_labelled_images(tmp_path: Path) -> None:
    records = read_stroke_records(write_records(tmp_path / "pen.jsonl"))
    data = render_records(records, 20)
    assert data.images.shape == (12, 1, 20, 20) and data.images.dtype == torch.uint8
    assert data.class_names == ("writer0", "writer1", "writer2", "writer3")
    assert data.item_ids[0] == "w0/0"
    inked = (data.images > 0).flatten(1).float().mean(1)
    assert bool((inked > 0.02).all()) and bool((inked < 0.6).all())
    # Fitted to the canvas: nothing touches the border (10 % margin on each side).
    assert int(data.images[:, :, 0].sum() + data.images[:, :, -1].sum()) == 0
    same = (data.images[0].float() - data.images[1].float()).abs().mean()
    other = (data.images[0].float() - data.images[3].float()).abs().mean()
    assert same < other  # a writer's copies look alike; another writer's do not


def test_params_and_training_through_the_config(tmp_path: Path) -> None:
    from metriclab.training import train

    path = write_records(tmp_path / "pen.jsonl", writers=6)
    thick = load_dataset("strokes", str(path), 20, None, {"pen_width": 3.0}, progress=False)
    thin = load_dataset("strokes", str(path), 20, None, {"pen_width": 1.0}, progress=False)
    assert int(thick.images.sum()) > int(thin.images.sum())
    config = resolve_config(
        None,
        [
            "data.name=strokes", f"data.path={path}", "data.size=16", "data.test_fraction=0.5",
            "train.steps=2", "train.batch_size=4", "train.checkpoint_every=2", "model.dim=8",
            "train.threads=1", "eval.n_way=2", "eval.episodes=4", "eval.pairs=8",
            "eval.n_query=1",
        ],
    )  # fmt: skip
    train(config, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "split.json").is_file()
    with pytest.raises(Exception, match="pen_widht"):
        resolve_config(None, ["data.name=strokes", f"data.path={path}", "data.params.pen_widht=2"])
