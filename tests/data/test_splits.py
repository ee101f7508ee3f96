import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.data import LabeledImages, require_min_per_class
from tests.helpers import tiny_images

ALPHABETS = ("Greek", "Korean", "Latin", "Tagalog")


def alphabet_data(characters: tuple[int, ...] = (3, 2, 4, 1), per_class: int = 2) -> LabeledImages:
    """Classes named ``<alphabet>/characterNN``, grouped by alphabet, ``per_class`` images each."""
    names = [
        f"{a}/character{c:02d}"
        for a, n in zip(ALPHABETS, characters, strict=True)
        for c in range(n)
    ]
    groups = [g for g, n in enumerate(characters) for _ in range(n)]
    n = len(names) * per_class
    return LabeledImages(
        images=torch.zeros((n, 1, 4, 4), dtype=torch.uint8),
        labels=torch.arange(len(names)).repeat_interleave(per_class),
        class_names=tuple(names),
        item_ids=tuple(f"item{i}" for i in range(n)),
        groups=torch.tensor(groups),
        group_names=ALPHABETS,
        description="alphabets",
    )


def alphabets_of(data: LabeledImages) -> set[str]:
    return {name.split("/")[0] for name in data.class_names}


def check_partition(whole: LabeledImages, first: LabeledImages, second: LabeledImages) -> None:
    """No class on both sides; together they hold every item exactly once, with consistent groups."""
    assert set(first.class_names).isdisjoint(second.class_names)
    assert sorted(first.item_ids + second.item_ids) == sorted(whole.item_ids)
    for part in (first, second):
        for label, name in enumerate(part.class_names):
            assert part.group_names[int(part.groups[label])] == name.split("/")[0]


def test_split_groups_by_name_keeps_alphabets_whole() -> None:
    data = alphabet_data()
    train, test = data.split_groups(test_groups=["Latin", "Korean"])
    check_partition(data, train, test)
    assert alphabets_of(test) == {"Latin", "Korean"}
    assert alphabets_of(train) == {"Greek", "Tagalog"}


def test_split_groups_unknown_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'Klingon'.*valid groups: Greek, Korean, Latin, Tagalog"):
        alphabet_data().split_groups(test_groups=["Klingon"])
    train, _ = alphabet_data().split_groups(test_groups=["Latin"])
    with pytest.raises(ValueError, match="'Latin'.*valid groups: Greek, Korean, Tagalog"):
        train.split_groups(test_groups=["Latin"])


def test_split_groups_needs_groups_and_one_side_each() -> None:
    with pytest.raises(ValueError, match="has no groups; split by classes instead"):
        tiny_images().split_groups(test_groups=["a"])
    with pytest.raises(ValueError, match="at least one class on each side"):
        alphabet_data().split_groups(test_groups=list(ALPHABETS))
    with pytest.raises(ValueError, match="exactly one of test_groups or test_fraction"):
        alphabet_data().split_groups()


@settings(max_examples=30, deadline=None)
@given(st.floats(0.01, 0.99), st.integers(0, 10_000))
def test_random_group_split_is_a_seeded_partition(fraction: float, seed: int) -> None:
    data = alphabet_data()
    train, test = data.split_groups(test_fraction=fraction, seed=seed)
    check_partition(data, train, test)
    assert alphabets_of(train).isdisjoint(alphabets_of(test))
    assert len(alphabets_of(test)) == min(max(round(4 * fraction), 1), 3)
    assert data.split_groups(test_fraction=fraction, seed=seed)[1].item_ids == test.item_ids


@settings(max_examples=30, deadline=None)
@given(st.floats(0.01, 0.99), st.integers(0, 10_000))
def test_validation_fraction_is_carved_from_training_classes(fraction: float, seed: int) -> None:
    data = alphabet_data()
    train, test = data.split_groups(test_groups=["Latin"])
    fit, validation = train.split_validation(fraction=fraction, seed=seed)
    check_partition(train, fit, validation)
    assert set(validation.class_names) <= set(train.class_names)
    assert set(validation.class_names).isdisjoint(test.class_names)


def test_validation_by_classes_or_groups() -> None:
    train, _ = alphabet_data().split_groups(test_groups=["Latin"])
    fit, validation = train.split_validation(classes=["Greek/character01"])
    assert validation.class_names == ("Greek/character01",)
    check_partition(train, fit, validation)
    fit, validation = train.split_validation(groups=["Tagalog"])
    assert alphabets_of(validation) == {"Tagalog"}
    check_partition(train, fit, validation)
    with pytest.raises(ValueError, match="^groups names 'Latin'.*valid groups: Greek, Korean"):
        train.split_validation(groups=["Latin"])
    with pytest.raises(ValueError, match="^classes names 'Latin/character00', which is not"):
        train.split_validation(classes=["Latin/character00"])
    with pytest.raises(ValueError, match=r"^fraction must lie in \(0, 1\), got 1.5"):
        train.split_validation(fraction=1.5)


def test_validation_takes_exactly_one_way() -> None:
    with pytest.raises(ValueError, match="exactly one of fraction, classes or groups, got none"):
        alphabet_data().split_validation()
    with pytest.raises(ValueError, match="got fraction, groups"):
        alphabet_data().split_validation(fraction=0.2, groups=["Latin"])


def test_require_min_per_class_names_the_short_class() -> None:
    data = alphabet_data()
    require_min_per_class(data, 2, "pairs")
    single = data.subset(torch.arange(1, len(data)))  # the first class keeps one image
    with pytest.raises(
        ValueError, match=r"class 'Greek/character00' has 1 image\(s\) but the siamese"
    ):
        require_min_per_class(single, 2, "the siamese objective (same-class pairs)")
