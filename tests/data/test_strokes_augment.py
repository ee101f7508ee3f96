"""Stroke-level augmentation: seeded, batched, per-item from the item's own strokes, class copies
on top, and wired into training through data.augment / data.augment_params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from metriclab.config import ConfigError, resolve_config
from metriclab.data.augment import AUGMENTATIONS, KochAffine, build_augmentation, prepare_for_items
from metriclab.data.render import PackedStrokes, render, render_drawings
from metriclab.data.stroke_augment import (
    StrokeAugmentation,
    StrokeBank,
    StrokeJitter,
    class_copy,
    perturbed_renderings,
)
from metriclab.data.strokes import Drawing, resample_drawing
from tests.data.synthetic import item_ids, write_zip
from tests.helpers import write_stroke_zip


def shape(seed: int) -> Drawing:
    """A seeded two-stroke drawing inside the 105-pixel frame."""
    rng = np.random.default_rng(seed)
    return Drawing(tuple(rng.uniform(25, 80, size=(5, 2)).astype(np.float32) for _ in range(2)))


def test_bank_gathers_drawings_in_the_order_asked() -> None:
    drawings = {f"d{i}": shape(i) for i in range(5)}
    bank = StrokeBank(drawings, spacing=1.0)
    packed = bank.gather(torch.tensor([3, 0, 3]))
    assert packed.count == 3 and int(packed.drawing.max()) == 2
    resampled = [resample_drawing(drawings[k], 1.0) for k in ("d3", "d0", "d3")]
    direct = PackedStrokes.pack(resampled)
    for name in ("points", "stroke", "along", "drawing"):
        assert torch.equal(getattr(packed, name), getattr(direct, name)), name
    gathered = render(packed, 28)
    assert torch.equal(gathered[0], gathered[2])  # a drawing asked twice is drawn twice
    raw = render(PackedStrokes.pack([drawings["d0"]]), 28)
    assert float((gathered[1] - raw[0]).abs().max()) < 0.15  # resampling cuts corners a little


def test_zero_jitter_changes_nothing_and_strength_moves_further() -> None:
    packed = StrokeBank({"a": shape(1), "b": shape(2)}, 1.0).gather(torch.tensor([0, 1]))
    still = StrokeJitter(strength=0.0, pen=(1.0, 1.0))
    moved, pens = still.perturb(packed, torch.Generator().manual_seed(0))
    torch.testing.assert_close(moved.points, packed.points)
    assert torch.equal(pens, torch.ones(2))
    shifts = []
    for strength in (0.5, 2.0):
        jitter = StrokeJitter(strength=strength)
        out, _ = jitter.perturb(packed, torch.Generator().manual_seed(0))
        shifts.append(float((out.points - packed.points).norm(dim=1).mean()))
    assert 0 < shifts[0] < shifts[1]


def test_only_relations_change_with_stroke_shift_alone() -> None:
    packed = StrokeBank({"a": shape(3)}, 1.0).gather(torch.tensor([0]))
    jitter = StrokeJitter(
        stroke_rotation=0, stroke_shear=0, stroke_scale=0, noise=0, rotation=0, shear=0,
        scale=0, translate=0, stroke_shift=3.0,
    )  # fmt: skip
    out, _ = jitter.perturb(packed, torch.Generator().manual_seed(1))
    moves = out.points - packed.points
    for s in range(2):  # each stroke moves rigidly, by its own shift
        own = moves[packed.stroke == s]
        torch.testing.assert_close(own, own[:1].expand_as(own))
        assert float(own[0].abs().max()) <= 3.0
    assert not torch.allclose(moves[packed.stroke == 0][0], moves[packed.stroke == 1][0])


def test_perturbed_renderings_are_seeded() -> None:
    drawings = [shape(i) for i in range(4)]
    first = perturbed_renderings(drawings, 28, seed=7)
    assert first.shape == (4, 1, 28, 28) and first.dtype == torch.uint8
    assert torch.equal(first, perturbed_renderings(drawings, 28, seed=7))
    assert not torch.equal(first, perturbed_renderings(drawings, 28, seed=8))
    assert not torch.equal(first, render_drawings(drawings, 28))


def test_bad_jitter_settings_are_named() -> None:
    with pytest.raises(ValueError, match="knots must be at least 2"):
        StrokeJitter(knots=1)
    with pytest.raises(ValueError, match="scale × strength must lie in"):
        StrokeJitter(scale=0.5, strength=2.0)
    with pytest.raises(ValueError, match="noise must be a finite number"):
        StrokeJitter(noise=-1.0)
    with pytest.raises(ValueError, match="p must lie in"):
        StrokeAugmentation(p=1.5)


def test_class_copy_reads_rotation_and_mirror_suffixes() -> None:
    assert class_copy("A/character01/1_01.png") == ("A/character01/1_01.png", 0, False)
    assert class_copy("A/character01/1_01.png@rot270") == ("A/character01/1_01.png", 3, False)
    assert class_copy("A/c/1.png@rot90@mirror") == ("A/c/1.png", 1, True)
    assert class_copy("odd@name") == ("odd@name", 0, False)


@pytest.fixture
def stroke_zip(tmp_path: Path) -> tuple[Path, list[str]]:
    ids = item_ids()
    write_stroke_zip(tmp_path / "strokes.zip", ids, shape)
    return tmp_path / "strokes.zip", ids


def test_augmentation_redraws_the_items_own_strokes(stroke_zip: tuple[Path, list[str]]) -> None:
    archive, ids = stroke_zip
    augment = StrokeAugmentation([str(archive)], p=1.0, strength=0.0, affine=False)
    augment.jitter = StrokeJitter(strength=0.0, pen=(1.0, 1.0))
    blank = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    chosen = [ids[0], ids[5] + "@rot90", ids[5] + "@mirror"]
    out = augment(blank, torch.Generator().manual_seed(0), chosen)
    bank = StrokeBank({i: shape(n) for n, i in enumerate(ids)}, 2.0)
    plain = (render(bank.gather(torch.tensor([0, 5])), 28) * 255).round().to(torch.uint8)
    assert torch.equal(out[0], plain[0])
    assert torch.equal(out[1], torch.rot90(plain[1], 1, dims=(1, 2)))  # as rotations_as_classes
    assert torch.equal(out[2], torch.flip(plain[1], dims=(2,)))  # as mirrors_as_classes


def test_augmentation_mixes_seeded_and_leaves_unknown_items(
    stroke_zip: tuple[Path, list[str]],
) -> None:
    archive, ids = stroke_zip
    augment = StrokeAugmentation([str(archive)], p=0.5)
    images = torch.randint(0, 256, (len(ids), 1, 20, 20), dtype=torch.uint8)
    first = augment(images, torch.Generator().manual_seed(3), ids)
    again = augment(images, torch.Generator().manual_seed(3), ids)
    assert first.shape == images.shape and first.dtype == torch.uint8
    assert torch.equal(first, again)
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(4), ids))
    # Without the items' ids, or for items with no drawing, it is the affine alone.
    warped = StrokeAugmentation(p=0.5)(images, torch.Generator().manual_seed(3))
    unknown = augment(images, torch.Generator().manual_seed(3), ["nope.png"] * len(ids))
    assert torch.equal(warped, unknown)
    # affine_redrawn warps the re-drawn items after drawing; the others are as before.
    both = StrokeAugmentation([str(archive)], p=0.5, affine_redrawn=True)
    warped_too = both(images, torch.Generator().manual_seed(3), ids)
    changed = (warped_too != first).flatten(1).any(1)
    assert bool(changed.any()) and torch.equal(warped_too[~changed], first[~changed])
    with pytest.raises(ValueError, match="item ids for"):
        augment(images, torch.Generator(), ids[:2])


def test_augment_params_reach_the_augmentation_and_bad_ones_are_named(
    stroke_zip: tuple[Path, list[str]],
) -> None:
    archive, _ = stroke_zip
    built = build_augmentation("strokes", {"strokes": [str(archive)], "p": 0.25})
    assert isinstance(built, StrokeAugmentation) and built.p == 0.25 and built.bank is not None
    assert AUGMENTATIONS.get("strokes") is StrokeAugmentation
    with pytest.raises(ConfigError, match="'q', which data.augment=strokes does not take"):
        resolve_config(None, ["data.augment=strokes", "data.augment_params.q=1"])
    with pytest.raises(ConfigError, match="data.augment=none does not take; it takes none"):
        resolve_config(None, ["data.augment_params.p=0.5"])
    # Any registered augmentation takes its own constructor's parameters (Koch's p here).
    affine = resolve_config(None, ["data.augment=affine", "data.augment_params.p=0.2"])
    assert build_augmentation(affine.data.augment, affine.data.augment_params).p == 0.2


def test_training_draws_strokes_for_the_batch_items(
    tmp_path: Path, stroke_zip: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from metriclab.training import train

    archive, ids = stroke_zip
    write_zip(tmp_path / "images.zip", "images")
    seen: list[list[str]] = []
    banked: set[str] = set()
    real = StrokeAugmentation.__call__

    def spy(self, images, generator, item_ids=None):  # type: ignore[no-untyped-def]
        seen.append(list(item_ids))
        banked.update(self.bank.ids)
        return real(self, images, generator, item_ids)

    monkeypatch.setattr(StrokeAugmentation, "__call__", spy)
    config = resolve_config(
        None,
        [
            "data.name=omniglot", f"data.path=[{tmp_path / 'images.zip'}]", "data.size=20",
            "data.test_groups=[Gamma]", "data.rotations=[90]", "data.augment=strokes",
            f"data.augment_params.strokes=[{archive}]", "data.augment_params.p=1.0",
            "train.objective=triplet", "train.loss=triplet", "train.classes_per_batch=3",
            "train.samples_per_class=2", "train.steps=2", "train.checkpoint_every=2",
            "model.backbone=conv4", "model.dim=8", "model.distance=l2", "train.threads=1",
            "eval.n_way=2", "eval.episodes=5", "eval.pairs=10",
        ],
    )  # fmt: skip
    train(config, tmp_path / "run", progress=False)
    assert len(seen) == 2 and all(len(batch) == 6 for batch in seen)
    assert all(not item.startswith("Gamma/") for batch in seen for item in batch)
    # The held-out alphabet's strokes are never even read (for_items), only training drawings.
    assert banked and all(not item.startswith("Gamma/") for item in banked)
    assert any(item.startswith("Gamma/") for item in ids)
    assert any("@rot90" in item for batch in seen for item in batch)


def test_for_items_reads_only_the_training_items_drawings(
    stroke_zip: tuple[Path, list[str]],
) -> None:
    """Training calls ``for_items`` with its split's ids (class copies included): held-out
    items' strokes are never parsed, and re-drawing the kept items is unchanged."""
    archive, ids = stroke_zip
    training = [ids[0], ids[5] + "@rot90", ids[5] + "@mirror", ids[2]]
    augment = StrokeAugmentation([str(archive)], p=1.0, affine=False)
    prepare_for_items(augment, training)
    assert sorted(augment.bank.ids) == sorted({ids[0], ids[5], ids[2]})
    full = StrokeAugmentation([str(archive)], p=1.0, affine=False)
    images = torch.zeros(len(training), 1, 28, 28, dtype=torch.uint8)
    generator = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(augment(images, generator(), training), full(images, generator(), training))
    assert len(full.bank) == len(ids)
    # An augmentation that reads no items is left alone.
    prepare_for_items(KochAffine(), training)
