"""Recombined-stroke classes: the ink cut, the seeded class table, the drawn classes and the
training discipline (only the training split's drawings are read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from metriclab.config import resolve_config
from metriclab.data.augment import with_new_classes
from metriclab.data.images import LabeledImages
from metriclab.data.render import render_drawings
from metriclab.data.stroke_augment import StrokeAugmentation
from metriclab.data.stroke_classes import (
    Exemplars,
    Recipe,
    ink_parts,
    recombination_table,
    recombined,
    recombined_drawings,
    stroke_parts,
)
from metriclab.data.strokes import Drawing, resample_drawing
from tests.data.synthetic import item_ids, write_zip
from tests.helpers import write_stroke_zip


def path_length(drawing: Drawing) -> float:
    return sum(float(np.linalg.norm(np.diff(s, axis=0), axis=1).sum()) for s in drawing.strokes)


def drawing(seed: int, strokes: int = 3) -> Drawing:
    """A seeded drawing of ``strokes`` random polylines inside the 105-pixel frame."""
    rng = np.random.default_rng(seed)
    return Drawing(
        tuple(rng.uniform(20, 85, size=(4, 2)).astype(np.float32) for _ in range(strokes))
    )


@pytest.mark.parametrize("cut", [0.2, 0.5, 0.8])
def test_ink_parts_cut_the_path_at_its_ink_share(cut: float) -> None:
    whole = resample_drawing(drawing(1), 0.25)
    head, tail = ink_parts(whole, cut)
    total = path_length(whole)
    # Nothing lost or doubled but the shared cut point; the head holds `cut` of the ink.
    assert path_length(head) + path_length(tail) == pytest.approx(total, rel=1e-4)
    assert path_length(head) / total == pytest.approx(cut, abs=0.25 / total + 1e-3)
    assert np.array_equal(head.strokes[0], whole.strokes[0][: len(head.strokes[0])])
    assert np.array_equal(tail.strokes[-1], whole.strokes[-1][-len(tail.strokes[-1]) :])
    # The cut point ends the head and starts the tail: the pen does not jump.
    assert np.array_equal(head.strokes[-1][-1], tail.strokes[0][0])
    with pytest.raises(ValueError, match="cut must lie strictly between 0 and 1"):
        ink_parts(whole, 1.0)


def test_a_dot_gives_its_point_to_both_parts() -> None:
    dot = Drawing((np.float32([[10.0, 20.0]]),))
    head, tail = ink_parts(dot, 0.5)
    assert np.array_equal(head.strokes[0], dot.strokes[0])
    assert np.array_equal(tail.strokes[0], dot.strokes[0])


def test_stroke_parts_cut_between_whole_strokes() -> None:
    four = drawing(2, strokes=4)
    head, tail = stroke_parts(four, 0.5)
    assert head.strokes == four.strokes[:2] and tail.strokes == four.strokes[2:]
    head, tail = stroke_parts(four, 0.1)  # at least one stroke on each side
    assert head.strokes == four.strokes[:1] and tail.strokes == four.strokes
    one = drawing(3, strokes=1)
    assert stroke_parts(one, 0.5) == (one, one)


def test_stroke_exemplars_keep_drawers_with_the_usual_stroke_counts() -> None:
    """Class 0's drawers use 2, 2, 3 strokes and class 1's 1, 1, 1: only drawers 0 and 1 fit."""
    data, _ = tiny()
    counts = {0: (2, 2, 3), 1: (1, 1, 1), 2: (2, 2, 2), 3: (3, 3, 3)}
    drawings = {
        item: drawing(n, strokes=counts[n // 3][n % 3]) for n, item in enumerate(data.item_ids)
    }
    by_stroke = Exemplars(data, drawings, "strokes")
    assert by_stroke.typical == {0: 2, 1: 1, 2: 2, 3: 3}
    assert by_stroke.pairs(Recipe(0, 1, 0.5)) == [
        ("G0/c0/00.png", "G0/c1/00.png"), ("G0/c0/01.png", "G0/c1/01.png"),
    ]  # fmt: skip
    assert len(Exemplars(data, drawings, "ink").pairs(Recipe(0, 1, 0.5))) == 3
    # A table that asks for three exemplars skips the pairs with fewer.
    enough = lambda r: len(by_stroke.pairs(r)) >= 3  # noqa: E731
    table = recombination_table(data.labels, data.groups, 1, seed=0, accept=enough)
    assert [(r.first, r.second) for r in table] in ([(2, 3)], [(3, 2)])
    with pytest.raises(ValueError, match="only 2 pairs of training classes have enough"):
        recombination_table(data.labels, data.groups, 3, seed=0, accept=enough)
    made = recombined_drawings(data, drawings, [Recipe(0, 1, 0.5)], parts="strokes")
    assert len(made) == 2
    first = made["G0/recombined0000/00"][1]
    # Head: the first of c0's two strokes; tail: c1's single stroke (kept whole).
    assert first.strokes == drawings["G0/c0/00.png"].strokes[:1] + drawings["G0/c1/00.png"].strokes
    with pytest.raises(ValueError, match="parts must be one of"):
        Exemplars(data, drawings, "halves")


def test_the_class_table_is_seeded_distinct_and_within_groups() -> None:
    labels = torch.arange(10).repeat_interleave(3)
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 3, 3])
    table = recombination_table(labels, groups, 12, seed=4, cut=(0.3, 0.6))
    assert table == recombination_table(labels, groups, 12, seed=4, cut=(0.3, 0.6))
    assert table != recombination_table(labels, groups, 12, seed=5, cut=(0.3, 0.6))
    pairs = [(r.first, r.second) for r in table]
    assert len(set(pairs)) == len(pairs) == 12
    for recipe in table:
        assert recipe.first != recipe.second
        assert groups[recipe.first] == groups[recipe.second]  # one alphabet per new class
        assert 0.3 <= recipe.cut <= 0.6
        assert 7 not in (recipe.first, recipe.second)  # alone in its group: no partner
    # Ordered pairs within groups: 3·2 + 4·3 + 0 + 2·1 = 20.
    assert len(recombination_table(labels, groups, 20, seed=0)) == 20
    with pytest.raises(ValueError, match="allow only 20 ordered pairs"):
        recombination_table(labels, groups, 21, seed=0)
    with pytest.raises(ValueError, match="0 < low ≤ high < 1"):
        recombination_table(labels, groups, 2, seed=0, cut=(0.6, 0.3))


def test_a_disjoint_table_lends_no_class_to_two_recipes() -> None:
    """Siblings (two recipes sharing a class) are near-duplicates: ``disjoint`` forbids them."""
    labels = torch.arange(10).repeat_interleave(3)
    groups = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    full = recombination_table(labels, groups, 20, seed=3)
    assert len({r.first for r in full}) < 20  # without it, classes are shared
    table = recombination_table(labels, groups, 5, seed=3, disjoint=True)
    used = [c for r in table for c in (r.first, r.second)]
    assert len(used) == len(set(used)) == 10
    assert all(groups[r.first] == groups[r.second] for r in table)
    assert table == recombination_table(labels, groups, 5, seed=3, disjoint=True)
    with pytest.raises(ValueError, match="only 5 disjoint pairs"):
        recombination_table(labels, groups, 6, seed=3, disjoint=True)


def test_proper_parts_leave_out_characters_drawn_in_one_stroke() -> None:
    data, _ = tiny()
    counts = {0: 2, 1: 1, 2: 3, 3: 2}
    drawings = {item: drawing(n, strokes=counts[n // 3]) for n, item in enumerate(data.item_ids)}
    by_stroke = Exemplars(data, drawings, "strokes")
    # Class 1 is drawn in one stroke: cut between strokes, all of it would join the new class.
    assert not by_stroke.proper(Recipe(0, 1, 0.5)) and not by_stroke.proper(Recipe(1, 0, 0.5))
    assert by_stroke.proper(Recipe(2, 3, 0.5))
    assert Exemplars(data, drawings, "ink").proper(Recipe(0, 1, 0.5))


def tiny(size: int = 28) -> tuple[LabeledImages, dict[str, Drawing]]:
    """Four classes in two groups, three items each; the last item of class 3 has no drawing."""
    ids = [f"G{c // 2}/c{c}/{j:02d}.png" for c in range(4) for j in range(3)]
    data = LabeledImages(
        images=torch.zeros(len(ids), 3, size, size, dtype=torch.uint8),
        labels=torch.arange(4).repeat_interleave(3),
        class_names=tuple(f"G{c // 2}/c{c}" for c in range(4)),
        item_ids=tuple(ids),
        groups=torch.tensor([0, 0, 1, 1]),
        group_names=("G0", "G1"),
    )
    drawings = {item: drawing(n, strokes=1 + n % 3) for n, item in enumerate(ids[:-1])}
    return data, drawings


def test_recombined_classes_join_drawer_j_of_both_characters() -> None:
    data, drawings = tiny()
    table = recombination_table(data.labels, data.groups, 4, seed=1)
    joined, made = recombined(data, drawings, table, spacing=2.0)
    assert joined.num_classes == 8 and joined.images.shape[1:] == (3, 28, 28)
    assert torch.equal(joined.images[: len(data)], data.images)
    assert joined.item_ids[: len(data)] == data.item_ids and set(made) == set(
        joined.item_ids[len(data) :]
    )
    for k, recipe in enumerate(table):
        rows = torch.nonzero(joined.labels == 4 + k).flatten()
        # Class 3 has two drawn items, the others three: a recipe gets the smaller count.
        assert len(rows) == (2 if 3 in (recipe.first, recipe.second) else 3)
        assert joined.class_names[4 + k].startswith(data.class_names[recipe.first][:2])
        assert joined.groups[4 + k] == data.groups[recipe.first]
        for j, row in enumerate(rows.tolist()):
            a = f"{data.class_names[recipe.first]}/{j:02d}.png"
            b = f"{data.class_names[recipe.second]}/{j:02d}.png"
            head, _ = ink_parts(resample_drawing(drawings[a], 0.5), recipe.cut)
            _, tail = ink_parts(resample_drawing(drawings[b], 0.5), recipe.cut)
            expected = render_drawings([Drawing(head.strokes + tail.strokes)], 28)[0]
            assert torch.equal(joined.images[row], expected.expand(3, -1, -1))
    # Without a drawing, an item gives no exemplar; an empty table adds nothing.
    assert all("c3/02" not in item for item in recombined_drawings(data, drawings, table))
    assert recombined(data, drawings, [])[0].num_classes == data.num_classes


def test_one_drawer_classes_repeat_the_first_drawer_pair() -> None:
    """Drawers split a character's strokes differently; one drawer pair makes one character."""
    data, drawings = tiny()
    table = recombination_table(data.labels, data.groups, 4, seed=1)
    each, _ = recombined(data, drawings, table, spacing=2.0)
    one, made = recombined(data, drawings, table, spacing=2.0, one_drawer=True)
    assert torch.equal(one.labels, each.labels) and one.item_ids == each.item_ids
    for k in range(len(table)):
        rows = torch.nonzero(one.labels == 4 + k).flatten()
        # Exemplar 0 is drawer 0's, as before; the others copy it instead of their own drawer's.
        assert torch.equal(one.images[rows[0]], each.images[rows[0]])
        assert all(torch.equal(one.images[r], one.images[rows[0]]) for r in rows[1:])
        assert not all(torch.equal(each.images[r], each.images[rows[0]]) for r in rows[1:])
    assert len(made) == len(each.item_ids) - len(data)


def _omniglot_with_strokes(tmp_path: Path, overrides: list[str]):
    """A config of a synthetic Omniglot zip (Gamma held out) whose items have pen strokes in
    ``tmp_path / "strokes.zip"``."""
    write_stroke_zip(tmp_path / "strokes.zip", item_ids(), drawing)
    write_zip(tmp_path / "images.zip", "images")
    common = [
        "data.name=omniglot", f"data.path=[{tmp_path / 'images.zip'}]", "data.size=20",
        "data.test_groups=[Gamma]", "eval.n_way=2",
    ]  # fmt: skip
    return resolve_config(None, [*common, *overrides])


def test_new_classes_read_only_the_training_items(tmp_path: Path) -> None:
    config = _omniglot_with_strokes(tmp_path, [])
    from metriclab.assemble import build_data

    train, _ = build_data(config)
    augment = StrokeAugmentation([str(tmp_path / "strokes.zip")], p=0.0, recombined=5)
    joined = with_new_classes(augment, train)
    assert joined.num_classes == train.num_classes + 5
    # Every source drawing read is a training item's; Gamma's strokes were never parsed.
    assert augment.bank is not None and augment._sources == set(train.item_ids)
    assert all(not item.startswith("Gamma/") for item in augment.bank.ids)
    assert all(not name.startswith("Gamma/") for name in joined.class_names)
    # Training's own for_items call afterwards (class copies included) keeps the new drawings.
    augment.for_items([*joined.item_ids, *(f"{i}@rot90" for i in joined.item_ids)])
    assert set(joined.item_ids) <= set(augment.bank.ids)
    # Seeded: the same seed makes the same classes, another seed others.
    again = StrokeAugmentation([str(tmp_path / "strokes.zip")], p=0.0, recombined=5)
    assert torch.equal(with_new_classes(again, train).images, joined.images)
    other = StrokeAugmentation(
        [str(tmp_path / "strokes.zip")], p=0.0, recombined=5, recombined_seed=1
    )
    assert not torch.equal(with_new_classes(other, train).images, joined.images)
    # An augmentation that makes no classes leaves the training set as it is.
    assert with_new_classes(StrokeAugmentation([str(tmp_path / "strokes.zip")]), train) is train
    with pytest.raises(ValueError, match="recombined classes need the pen strokes"):
        StrokeAugmentation(recombined=3)
    # A cut range that is not two shares in (0, 1) is one sentence, not a TypeError.
    for bad in (0.5, [0.7, 0.3], [0, 0.5], "a,b"):
        with pytest.raises(ValueError, match="recombined_cut must be two shares"):
            StrokeAugmentation(recombined_cut=bad)
    assert StrokeAugmentation(recombined_cut=[0.4, 0.6]).recombined_cut == (0.4, 0.6)


def test_distinct_recombined_classes_share_no_parent(tmp_path: Path) -> None:
    config = _omniglot_with_strokes(tmp_path, [])
    from metriclab.assemble import build_data

    train, _ = build_data(config)
    zips = [str(tmp_path / "strokes.zip")]
    # Two alphabets of three training characters, each drawn with 3 strokes (every cut is
    # proper): one disjoint pair per alphabet; five recipes must share a character.
    plain = StrokeAugmentation(zips, p=0.0, recombined=5)
    distinct = StrokeAugmentation(zips, p=0.0, recombined=2, recombined_distinct=True)
    joined = with_new_classes(distinct, train)
    assert joined.num_classes == train.num_classes + 2

    def parents(augment: StrokeAugmentation) -> list[str]:
        """Each recombined item's two source classes, read back from its drawing's strokes."""
        by_stroke = {
            stroke.tobytes(): item.rsplit("/", 1)[0]
            for item, d in augment._drawings.items()
            for stroke in resample_drawing(d, augment.spacing / 4).strokes
        }
        found = set()
        for item, d in augment._made.items():
            found |= {(item.rsplit("/", 1)[0], by_stroke[s.tobytes()]) for s in d.strokes}
        return [source for _, source in sorted(found)]

    used = parents(distinct)
    assert len(used) == len(set(used)) == 4  # two parents per class, none shared
    with_new_classes(plain, train)
    shared = parents(plain)
    assert len(shared) == 10 and len(set(shared)) <= 6  # without it, parents are shared
    with pytest.raises(ValueError, match="only 2 disjoint pairs"):
        with_new_classes(
            StrokeAugmentation(zips, p=0.0, recombined=3, recombined_distinct=True), train
        )


def test_training_with_recombined_classes_through_the_config(tmp_path: Path) -> None:
    from metriclab.training.loop import Trainer

    config = _omniglot_with_strokes(
        tmp_path,
        [
            "data.rotations=[90]", "data.augment=strokes",
            f"data.augment_params.strokes=[{tmp_path / 'strokes.zip'}]",
            "data.augment_params.p=0.5", "data.augment_params.recombined=4",
            "train.objective=triplet", "train.loss=triplet", "train.classes_per_batch=3",
            "train.samples_per_class=2", "train.steps=2", "train.checkpoint_every=2",
            "model.backbone=conv4", "model.dim=8", "model.distance=l2", "train.threads=1",
            "eval.episodes=5", "eval.pairs=10",
        ],
    )  # fmt: skip
    trainer = Trainer(config, tmp_path / "run", progress=False)
    names = trainer.train_data.class_names
    # 6 training characters + 4 recombined, each also rotated by 90 degrees as a new class.
    assert len(names) == 2 * (6 + 4)
    assert sum("recombined" in n for n in names) == 8
    assert sum("recombined" in n and n.endswith("@rot90") for n in names) == 4


def test_recombined_classes_come_from_one_drawer_pair_unless_asked(tmp_path: Path) -> None:
    config = _omniglot_with_strokes(tmp_path, [])
    from metriclab.assemble import build_data

    train, _ = build_data(config)
    zips = [str(tmp_path / "strokes.zip")]

    def identical_exemplars(augment: StrokeAugmentation) -> list[bool]:
        joined = with_new_classes(augment, train)
        images = joined.images[len(train) :]
        labels = joined.labels[len(train) :]
        return [
            bool((images[labels == c] == images[labels == c][0]).all()) for c in labels.unique()
        ]

    assert all(identical_exemplars(StrokeAugmentation(zips, p=0.0, recombined=3)))
    drawer_by_drawer = StrokeAugmentation(zips, p=0.0, recombined=3, recombined_one_drawer=False)
    assert not any(identical_exemplars(drawer_by_drawer))
