import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.data import ClassTable, EpisodeSet, LabeledImages, PairSampler, sample_episodes
from tests.helpers import tiny_images


def test_digits_is_uint8_with_stable_ids(digit_data: LabeledImages) -> None:
    assert digit_data.images.dtype == torch.uint8
    assert digit_data.images.shape == (1797, 1, 16, 16)
    assert digit_data.num_classes == 10
    assert digit_data.item_ids[5] == "digits:5"
    assert int(digit_data.images.max()) == 255


def test_split_classes_is_disjoint_and_seeded(digit_data: LabeledImages) -> None:
    train, test = digit_data.split_classes(0.5, seed=0)
    assert set(train.class_names).isdisjoint(test.class_names)
    assert len(train) + len(test) == len(digit_data)
    again = digit_data.split_classes(0.5, seed=0)[1]
    assert again.class_names == test.class_names
    other = digit_data.split_classes(0.5, seed=1)[1]
    assert other.class_names != test.class_names


def test_split_by_names_and_bad_names(digit_data: LabeledImages) -> None:
    _train, test = digit_data.split_classes(test_classes=["3", "7"])
    assert test.class_names == ("3", "7")
    with pytest.raises(ValueError, match="'x'"):
        digit_data.split_classes(test_classes=["x"])


def test_class_table_groups_every_item() -> None:
    labels = np.array([2, 0, 2, 1, 2, 0])
    table = ClassTable.from_labels(labels)
    assert table.counts.tolist() == [2, 1, 3]
    for c in range(3):
        members = table.members[c, : table.counts[c]]
        assert sorted(members.tolist()) == np.flatnonzero(labels == c).tolist()


def test_episodes_are_seeded_and_disjoint() -> None:
    labels = np.repeat(np.arange(10), 20)
    classes, support, query = sample_episodes(labels, 5, 2, 3, episodes=50, seed=4)
    again = sample_episodes(labels, 5, 2, 3, episodes=50, seed=4)
    for a, b in zip((classes, support, query), again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert support.shape == (50, 5, 2) and query.shape == (50, 5, 3)
    for e in range(50):
        assert len(set(classes[e])) == 5
        assert not set(support[e].ravel()) & set(query[e].ravel())
        np.testing.assert_array_equal(labels[support[e]], np.repeat(classes[e][:, None], 2, 1))
        np.testing.assert_array_equal(labels[query[e]], np.repeat(classes[e][:, None], 3, 1))


def test_episodes_reject_bad_settings() -> None:
    labels = np.repeat(np.arange(3), 4)
    with pytest.raises(ValueError, match="n_way=4"):
        sample_episodes(labels, 4, 1, 1, episodes=1, seed=0)
    with pytest.raises(ValueError, match="k_shot"):
        sample_episodes(labels, 2, 0, 1, episodes=1, seed=0)
    with pytest.raises(ValueError, match="only 4 items"):
        sample_episodes(labels, 2, 2, 3, episodes=1, seed=0)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 9), min_size=2, max_size=12),
    seed=st.integers(0, 2**31),
)
def test_episode_properties_over_random_layouts(counts: list[int], seed: int) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    eligible = sum(c >= 3 for c in counts)
    if eligible < 2:
        with pytest.raises(ValueError):
            sample_episodes(labels, 2, 1, 2, episodes=3, seed=seed)
        return
    classes, support, query = sample_episodes(labels, 2, 1, 2, episodes=3, seed=seed)
    items = np.concatenate([support, query], axis=-1)
    assert (labels[items] == classes[..., None]).all()
    for e in range(3):
        assert len(np.unique(items[e])) == items[e].size


def test_pair_sampler_is_balanced_and_seeded() -> None:
    labels = torch.arange(6).repeat_interleave(5)
    sampler = PairSampler(labels, batch_size=64, batches=3, seed=1)
    batches = list(sampler)
    assert len(batches) == 3
    for first, second, same in batches:
        assert same.sum() == 32
        np.testing.assert_array_equal(labels[first] == labels[second], same)
        assert (first[same] != second[same]).all()
    for (a1, a2, _a3), (b1, b2, _b3) in zip(batches, list(sampler), strict=True):
        np.testing.assert_array_equal(a1, b1)
        np.testing.assert_array_equal(a2, b2)


def test_pair_sampler_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="two classes"):
        PairSampler(torch.zeros(5, dtype=torch.int64), batch_size=4, batches=1, seed=0)


def test_episode_set_resolves_ids_after_reordering() -> None:
    data = tiny_images()
    episodes = EpisodeSet.sample(data, n_way=3, k_shot=1, n_query=2, episodes=4, seed=0)
    reversed_ids = data.item_ids[::-1]
    support, _query = episodes.resolve(reversed_ids)
    assert [reversed_ids[p] for p in support.ravel()] == episodes.support.ravel().tolist()
    missing = episodes.query[0, 0, 0]
    with pytest.raises(ValueError, match=repr(str(missing))):
        episodes.resolve([i for i in data.item_ids if i != missing])
