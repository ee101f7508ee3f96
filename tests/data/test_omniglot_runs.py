"""The Omniglot one-shot runs format (Lake et al. 2015) on a tiny synthetic runs folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metriclab.data import EpisodeSet, load_omniglot_runs


def write_runs(
    root: Path, runs: int = 3, classes: int = 4, size: int = 21, seed: int = 0
) -> dict[str, str]:
    """A runs folder of random binary PNGs (black strokes on white, as Omniglot).

    Returns ``{test id: training id}``, the true class of every query.
    """
    rng = np.random.default_rng(seed)
    truth = {}
    for r in range(1, runs + 1):
        run = f"run{r:02d}"
        for folder in ("training", "test"):
            (root / run / folder).mkdir(parents=True)
        lines = []
        for m, k in enumerate(rng.permutation(classes), start=1):
            for folder, name in (("training", f"class{m:02d}"), ("test", f"item{k + 1:02d}")):
                pixels = rng.random((size, size)) > 0.2  # True = white background
                Image.fromarray(pixels).save(root / run / folder / f"{name}.png")
            test, train = f"{run}/test/item{k + 1:02d}.png", f"{run}/training/class{m:02d}.png"
            truth[test] = train
            lines.append(f"{test} {train}")
        (root / run / "class_labels.txt").write_text("\n".join(sorted(lines)) + "\n")
    return truth


def test_runs_become_one_shot_episodes(tmp_path: Path) -> None:
    truth = write_runs(tmp_path, runs=3, classes=4)
    episodes, data = load_omniglot_runs(tmp_path, size=21)
    assert (episodes.n_episodes, episodes.n_way, episodes.k_shot, episodes.n_query) == (3, 4, 1, 1)
    assert episodes.meta["source"] == "omniglot-runs" and episodes.meta["root"] == str(tmp_path)
    for e in range(3):
        run = f"run{e + 1:02d}"
        assert sorted(episodes.support[e, :, 0]) == [
            f"{run}/training/class{m:02d}.png" for m in range(1, 5)
        ]
        for n in range(4):
            assert truth[episodes.query[e, n, 0]] == episodes.support[e, n, 0]
            assert episodes.classes[e, n] == episodes.support[e, n, 0].replace("/training", "")[:-4]
    episodes.check(data)
    assert len(data) == 24 and data.num_classes == 12
    assert data.group_names == ("run01", "run02", "run03")
    assert data.groups.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_images_are_inverted_and_resized_like_pil(tmp_path: Path) -> None:
    write_runs(tmp_path, runs=1, classes=2, size=21)
    episodes, data = load_omniglot_runs(tmp_path, size=21)
    support, _query = episodes.resolve(data.item_ids)
    item = episodes.support[0, 0, 0]
    original = np.asarray(Image.open(tmp_path / item).convert("L"))
    assert data.images.dtype == torch.uint8 and data.images.shape == (4, 1, 21, 21)
    np.testing.assert_array_equal(data.images[support[0, 0, 0], 0].numpy(), 255 - original)
    _episodes, small = load_omniglot_runs(tmp_path, size=10)
    reference = Image.fromarray(255 - original).resize((10, 10), Image.Resampling.BILINEAR)
    got = small.images[small.item_ids.index(item), 0].numpy().astype(int)
    assert np.abs(got - np.asarray(reference, dtype=int)).max() <= 2


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    write_runs(tmp_path / "runs", runs=2, classes=3)
    episodes, data = load_omniglot_runs(tmp_path / "runs", size=21)
    episodes.save(tmp_path / "runs.jsonl")
    loaded = EpisodeSet.load(tmp_path / "runs.jsonl", data=data)
    np.testing.assert_array_equal(loaded.query, episodes.query)


def _edit_labels(root: Path, old: str, new: str) -> None:
    labels = root / "run01" / "class_labels.txt"
    labels.write_text(labels.read_text().replace(old, new, 1))


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (("run01/test/", "run01/../run01/test/"), ValueError, "escapes its root"),
        (("run01/test/", "/run01/test/"), ValueError, "escapes its root"),
        (("item01", "item77"), FileNotFoundError, "item77.png, which does not exist"),
        (("run01/training/", "run02/training/"), ValueError, "is not in run01/training/"),
        (
            (".png run01", ".png extra run01"),
            ValueError,
            "line 1 must be '<test image> <training image>'",
        ),
    ],
)
def test_bad_class_labels_are_named(
    tmp_path: Path, edit: tuple[str, str], error: type[Exception], message: str
) -> None:
    write_runs(tmp_path, runs=2, classes=3)
    _edit_labels(tmp_path, *edit)
    with pytest.raises(error, match=message):
        load_omniglot_runs(tmp_path, size=21)


def test_bad_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_omniglot_runs(tmp_path / "missing")
    with pytest.raises(ValueError, match="has no runNN/ folders"):
        load_omniglot_runs(tmp_path)
    write_runs(tmp_path, runs=2, classes=3)
    lines = (tmp_path / "run01" / "class_labels.txt").read_text().splitlines()
    second = lines[1].split()[0]
    (tmp_path / "run01" / "class_labels.txt").write_text(
        "\n".join([lines[0], f"{second} {lines[0].split()[1]}", lines[2]]) + "\n"
    )
    with pytest.raises(ValueError, match="classes have 1 to 2 queries"):
        load_omniglot_runs(tmp_path, size=21)
    (tmp_path / "run01" / "class_labels.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "run02" / "class_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match="run02/class_labels.txt does not exist"):
        load_omniglot_runs(tmp_path, size=21)
