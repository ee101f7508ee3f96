"""scripts/faces_baseline.py and scripts/reproduce_faces.py on a tiny synthetic ORL-layout zip."""

from __future__ import annotations

import math
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import faces_baseline as base
import reproduce_faces as repro

SUBJECTS, PHOTOS = 20, 4
# The tiny photos are enlarged to the tutorial's 100 × 100 on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:images such as")


@pytest.fixture(scope="module")
def faces_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``orl_faces/sNN/MM.pgm``: 20 subjects, 4 noisy copies of one random 12 × 12 face each."""
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    archive = root / "orl_faces_tiny.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for s in range(1, SUBJECTS + 1):
            face = rng.integers(40, 216, (12, 12))
            for m in range(1, PHOTOS + 1):
                noisy = np.clip(face + rng.integers(-30, 31, face.shape), 0, 255).astype(np.uint8)
                path = root / f"{s:02d}-{m:02d}.pgm"
                Image.fromarray(noisy).save(path)
                out.write(path, f"orl_faces/s{s:02d}/{m:02d}.pgm")
    return archive


def test_contrastive_loss_matches_the_formula_pair_by_pair() -> None:
    generator = torch.Generator().manual_seed(0)
    distance = torch.rand(12, generator=generator) * 3
    same = torch.rand(12, generator=generator) > 0.5
    # Hadsell et al. 2006, one pair at a time: d² when alike, max(0, m − d)² when not.
    naive = [
        float(d) ** 2 if s else max(0.0, 2.0 - float(d)) ** 2
        for d, s in zip(distance, same, strict=True)
    ]
    assert float(base.contrastive_loss(distance, same, 2.0)) == pytest.approx(np.mean(naive))


@settings(max_examples=30, deadline=None)
@given(subjects=st.integers(4, 40), folds=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_subject_folds_partition_the_subjects(subjects: int, folds: int, seed: int) -> None:
    names = tuple(f"s{i:02d}" for i in range(subjects))
    if folds > subjects // 2:
        with pytest.raises(ValueError, match="folds="):
            base.subject_folds(names, folds, seed)
        return
    parts = base.subject_folds(names, folds, seed)
    assert sorted(n for part in parts for n in part) == sorted(names)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parts == base.subject_folds(names, folds, seed)


def test_tutorial_net_shapes_and_size() -> None:
    net = base.TutorialNet(size=100)
    out = net(torch.rand(3, 1, 100, 100))
    assert out.shape == (3, 5)
    # 3 convs (4/8/8 channels), 80000 → 500 → 500 → 5: the tutorial's parameter count by hand.
    convs = (9 * 1 * 4 + 4) + (9 * 4 * 8 + 8) + (9 * 8 * 8 + 8) + 2 * (4 + 8 + 8)
    dense = (80000 * 500 + 500) + (500 * 500 + 500) + (500 * 5 + 5)
    assert sum(p.numel() for p in net.parameters()) == convs + dense


def test_episodes_and_pairs_do_not_depend_on_the_input_size(faces_zip: Path) -> None:
    small, large = base.load_faces(faces_zip, 8), base.load_faces(faces_zip, 100)
    subjects = base.subject_folds(small.class_names, 2, 0)[0]
    a, b = base.test_part(small, subjects), base.test_part(large, subjects)
    assert a.item_ids == b.item_ids and torch.equal(a.labels, b.labels)
    sets_a, sets_b = base.episode_sets(a), base.episode_sets(b)
    assert list(sets_a) == ["10-way 1-shot", "5-way 1-shot"]
    for name in sets_a:
        assert np.array_equal(sets_a[name].support, sets_b[name].support)
        assert np.array_equal(sets_a[name].query, sets_b[name].query)
    assert set(a.class_names) == set(subjects)


def test_baseline_learns_the_synthetic_faces(faces_zip: Path) -> None:
    data = base.load_faces(faces_zip, 16)  # 100 px would be the tutorial's; 16 keeps it fast
    subjects = base.subject_folds(data.class_names, 2, 0)[0]
    report, minutes = base.run_fold(
        data, subjects, base.BaselineSettings(epochs=6, batch_size=32), seed=0
    )
    # Chance is 10 % (10-way); these faces differ by their whole pattern, trained nets reach > 25 %.
    assert report.episodes["10-way 1-shot"].mean > 0.25
    assert 0.0 <= report.verification.eer <= 0.5 and minutes >= 0


@pytest.mark.parametrize("validation_folds", [2, 4])
def test_validation_zip_never_holds_the_first_folds_subjects(
    faces_zip: Path, tmp_path: Path, validation_folds: int
) -> None:
    args = repro.argparse.Namespace(
        data=faces_zip,
        folds=2,
        fold_seed=0,
        validation=True,
        validation_folds=validation_folds,
        runs=tmp_path,
    )
    data, folds = repro.plan(args)
    assert len(folds) == validation_folds
    held_back = base.subject_folds(base.load_faces(faces_zip, 8).class_names, 2, 0)[0]
    with zipfile.ZipFile(data) as archive:
        seen = {name.split("/")[-2] for name in archive.namelist()}
    assert seen.isdisjoint(held_back) and len(seen) == SUBJECTS - len(held_back)
    assert sorted(s for fold in folds for s in fold) == sorted(seen)


def test_validation_folds_without_validation_is_one_error(
    faces_zip: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    argv = ["reproduce_faces.py", "--data", str(faces_zip), "--validation-folds", "4"]
    monkeypatch.setattr(sys, "argv", argv)
    assert repro.main() == 2
    assert capsys.readouterr().err.startswith("error: --validation-folds applies with --validation")


def test_reproduce_script_prints_both_methods(
    faces_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    argv = ["reproduce_faces.py", "--data", str(faces_zip), "--folds", "2", "--quick",
            "--runs", str(tmp_path), "--baseline-size", "16", "--set", "data.size=16", "--set", "data.val_fraction=0",
            "--set", "train.classes_per_batch=4", "--set", "train.samples_per_class=2"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert repro.main() == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 2 * 2 + 2  # header, 2 methods × 2 folds, 2 pooled rows
    for row in rows[1:]:
        cells = row.strip("|").split("|")
        accuracy = float(cells[2].split("±")[0])
        assert 0 < accuracy <= 100 and math.isfinite(accuracy)
    assert "tutorial Siamese (1 epochs)" in out and "**faces-orl**" in out


def test_pixel_embeddings_ignore_brightness_and_contrast() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(60, 150, (4, 1, 6, 6), dtype=torch.uint8, generator=generator)
    data = base.LabeledImages(images, torch.tensor([0, 0, 1, 1]), ("a", "b"), ("1", "2", "3", "4"))
    brighter = base.LabeledImages(
        (images.int() * 3 // 2 + 20).to(torch.uint8), data.labels, ("a", "b"), data.item_ids
    )
    plain, bright = base.pixel_embeddings(data), base.pixel_embeddings(brighter)
    assert plain.vectors.shape == (4, 36)
    torch.testing.assert_close(plain.vectors.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(plain.vectors.sum(dim=1), torch.zeros(4), atol=1e-5, rtol=0)
    # A gain and an offset of the grey levels leave centred unit vectors nearly unchanged (the
    # integer rounding of the 3/2 gain is all that differs).
    assert float((plain.vectors - bright.vectors).abs().max()) < 0.02


def test_recipes_are_scored_with_their_eval_scorer_and_views(
    faces_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    original, seen = repro.embed, []

    def recording_embed(
        net: torch.nn.Module,
        data: base.LabeledImages,
        *,
        progress: bool,
        views: torch.Tensor | None,
    ) -> base.Embeddings:
        seen.append(1 if views is None else len(views))
        return original(net, data, progress=progress, views=views)

    argv = ["reproduce_faces.py", "--data", str(faces_zip), "--folds", "2", "--quick",
            "--runs", str(tmp_path), "--baseline-epochs", "0", "--set", "data.size=16",
            "--set", "data.val_fraction=0", "--set", "train.classes_per_batch=4",
            "--set", "train.samples_per_class=2", "--set", "eval.scorer=simpleshot",
            "--set", "eval.tta=true", "--set", "eval.tta_views=flip", "--pixels", "12"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(repro, "embed", recording_embed)
    assert repro.main() == 0
    assert "| **raw pixels (12 px)** | **all (pooled)** |" in capsys.readouterr().out
    # Each fold's unseen subjects are embedded with the run's two flip views, and SimpleShot's
    # training-class mean was computed (with the same views) and stored in the run folder.
    assert seen == [2, 2]
    for fold in (0, 1):
        assert (tmp_path / f"faces-orl-fold{fold}" / "train_mean.pt").exists()
