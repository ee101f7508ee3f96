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
    with pytest.raises(ValueError, match="class 0 has only 4 items"):
        sample_episodes(labels, 2, 2, 3, episodes=1, seed=0)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 9), min_size=2, max_size=12),
    seed=st.integers(0, 2**31),
)
def test_episode_properties_over_random_layouts(counts: list[int], seed: int) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    present = [c for c in counts if c > 0]
    if min(present, default=0) < 3 or len(present) < 2:
        with pytest.raises(ValueError, match="has only|exceeds"):
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


# --- EpisodeSampler, groups, class-balanced, pair and triplet samplers --------------------------

from scipy.stats import chisquare  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from metriclab.data import (  # noqa: E402
    ClassBalancedSampler,
    EpisodeSampler,
    TripletSampler,
    split_episode,
)
from metriclab.data.class_table import distinct_positions  # noqa: E402

GROUPED_LABELS = np.repeat(np.arange(12), 6)
#: classes 0-1 in group 0, 2-5 in group 1, 6-11 in group 2.
GROUPS = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2])


def _check_episode(batch: list[int], labels: np.ndarray, n: int, k: int, q: int) -> np.ndarray:
    """Assert the class-major K-then-Q layout of one episode; return its (N, K+Q) labels."""
    grid = labels[np.array(batch)].reshape(n, k + q)
    assert (grid == grid[:, :1]).all()
    assert len(set(grid[:, 0])) == n
    assert len(set(batch)) == len(batch)
    return grid


def test_episode_sampler_matches_sample_episodes_and_repeats() -> None:
    labels = np.repeat(np.arange(8), 9)
    sampler = EpisodeSampler(labels, 4, 2, 3, episodes=1500, seed=7)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 1500
    classes, support, query = sample_episodes(labels, 4, 2, 3, episodes=1500, seed=7)
    expected = np.concatenate([support, query], axis=-1).reshape(1500, -1)
    np.testing.assert_array_equal(np.array(batches), expected)
    assert batches == list(sampler)
    for batch, episode_classes in zip(batches[:50], classes[:50], strict=True):
        grid = _check_episode(batch, labels, 4, 2, 3)
        np.testing.assert_array_equal(grid[:, 0], episode_classes)


def test_set_epoch_gives_other_but_reproducible_episodes() -> None:
    labels = np.repeat(np.arange(8), 9)
    sampler = EpisodeSampler(labels, 4, 1, 1, episodes=20, seed=7)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second
    again = EpisodeSampler(labels, 4, 1, 1, episodes=20, seed=7)
    again.set_epoch(1)
    assert list(again) == second
    again.set_epoch(0)
    assert list(again) == first
    with pytest.raises(ValueError, match="epoch"):
        sampler.set_epoch(-1)


def test_episode_sampler_shards_episodes_over_ranks() -> None:
    labels = np.repeat(np.arange(8), 9)
    whole = list(EpisodeSampler(labels, 3, 1, 2, episodes=2100, seed=3))
    shards = [
        list(EpisodeSampler(labels, 3, 1, 2, episodes=2100, seed=3, rank=r, world_size=3))
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [700, 700, 700]
    for r in range(3):
        assert shards[r] == whole[r::3]
    with pytest.raises(ValueError, match="world_size=4"):
        EpisodeSampler(labels, 3, 1, 2, episodes=10, seed=3, rank=0, world_size=4)
    with pytest.raises(ValueError, match="rank"):
        EpisodeSampler(labels, 3, 1, 2, episodes=10, seed=3, rank=2, world_size=2)


def test_episodes_are_class_balanced() -> None:
    # Each of C classes is in an episode with probability N / C: counts are Binomial(E, N / C).
    labels = np.repeat(np.arange(10), 4)
    classes, _, _ = sample_episodes(labels, 3, 1, 1, episodes=6000, seed=11)
    counts = np.bincount(classes.ravel(), minlength=10)
    assert chisquare(counts).pvalue > 1e-4
    assert np.abs(counts - 1800).max() < 5 * np.sqrt(6000 * 0.3 * 0.7)


@pytest.mark.parametrize(("size", "n"), [(4, 2), (9, 2), (6, 3), (10, 3), (7, 1)])
def test_distinct_positions_is_uniform_over_ordered_tuples(size: int, n: int) -> None:
    # Both paths (key sort for small pools, rejection for large): distinct and uniform.
    rng = np.random.default_rng(0)
    draws = distinct_positions(rng, np.full(20000, size), n)
    assert (np.sort(draws, 1)[:, 1:] != np.sort(draws, 1)[:, :-1]).all()
    assert draws.min() >= 0 and draws.max() < size
    codes = np.ravel_multi_index(tuple(draws.T), (size,) * n)
    _, counts = np.unique(codes, return_counts=True)
    tuples = int(np.prod(np.arange(size - n + 1, size + 1)))
    assert len(counts) == tuples
    assert chisquare(counts).pvalue > 1e-4


def test_within_group_episodes_stay_in_one_group_chosen_by_size() -> None:
    classes, support, _query = sample_episodes(
        GROUPED_LABELS, 2, 1, 2, episodes=6000, seed=5, groups=GROUPS
    )
    episode_groups = GROUPS[classes]
    assert (episode_groups == episode_groups[:, :1]).all()
    assert (GROUPED_LABELS[support] == classes[..., None]).all()
    # A group is chosen with probability size / 12, so every class is equally likely.
    chosen = np.bincount(episode_groups[:, 0], minlength=3)
    expected = 6000 * np.array([2, 4, 6]) / 12
    assert chisquare(chosen, expected).pvalue > 1e-4
    assert chisquare(np.bincount(classes.ravel(), minlength=12)).pvalue > 1e-4


def test_within_group_errors_name_the_largest_group() -> None:
    names = ("Latin", "Greek", "Korean")
    with pytest.raises(ValueError, match=r"largest group, 'Korean', has 6"):
        sample_episodes(GROUPED_LABELS, 7, 1, 1, 1, seed=0, groups=GROUPS, group_names=names)
    with pytest.raises(ValueError, match="groups must give one group per class"):
        sample_episodes(GROUPED_LABELS, 2, 1, 1, 1, seed=0, groups=GROUPS[:5])


def test_short_class_is_named() -> None:
    labels = np.array([0] * 5 + [1] * 2 + [2] * 5)
    with pytest.raises(
        ValueError, match=r"class 'b' has only 2 items, fewer than k_shot \+ n_query = 3"
    ):
        EpisodeSampler(labels, 2, 1, 2, 5, seed=0, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="n_query must be an integer of at least 1"):
        EpisodeSampler(labels, 2, 1, 0, 5, seed=0)
    with pytest.raises(ValueError, match="n_way=4 exceeds the 3 classes"):
        EpisodeSampler(labels, 4, 1, 1, 5, seed=0)
    with pytest.raises(ValueError, match="seed"):
        EpisodeSampler(labels, 2, 1, 1, 5, seed=-1)


def test_collate_through_a_dataloader() -> None:
    images = torch.arange(60, dtype=torch.float32).reshape(60, 1, 1).expand(60, 2, 3).clone()
    labels = torch.arange(6).repeat_interleave(10)
    sampler = EpisodeSampler(labels, 3, 2, 4, episodes=5, seed=1)
    loader = DataLoader(
        TensorDataset(images, labels), batch_sampler=sampler, collate_fn=sampler.collate
    )
    for episode, batch in zip(loader, sampler, strict=True):
        blocks = np.array(batch).reshape(3, 6)
        assert episode.support.shape == (6, 2, 3) and episode.query.shape == (12, 2, 3)
        np.testing.assert_array_equal(episode.support[:, 0, 0].numpy(), blocks[:, :2].ravel())
        np.testing.assert_array_equal(episode.query[:, 0, 0].numpy(), blocks[:, 2:].ravel())
        assert episode.support_targets.tolist() == [0, 0, 1, 1, 2, 2]
        assert episode.query_targets.tolist() == [0] * 4 + [1] * 4 + [2] * 4
        np.testing.assert_array_equal(episode.classes.numpy(), labels.numpy()[blocks[:, 0]])


def test_split_episode_rejects_wrong_batches() -> None:
    items = torch.zeros(8, 3)
    with pytest.raises(ValueError, match="has 6 items, got 8"):
        split_episode(items, 2, 1, 2)
    with pytest.raises(ValueError, match="not grouped by class"):
        split_episode(items[:6], 2, 1, 2, labels=torch.tensor([0, 1, 0, 1, 1, 0]))


def test_class_balanced_batches_and_shards() -> None:
    sampler = ClassBalancedSampler(GROUPED_LABELS, 4, 3, batches=30, seed=2)
    batches = list(sampler)
    assert len(batches) == 30 and batches == list(sampler)
    for batch in batches:
        _check_episode(batch, GROUPED_LABELS, 4, 3, 0)
    shards = [
        list(ClassBalancedSampler(GROUPED_LABELS, 4, 3, 30, seed=2, rank=r, world_size=2))
        for r in range(2)
    ]
    for whole, first, second in zip(batches, *shards, strict=True):
        assert first + second == whole
        _check_episode(first, GROUPED_LABELS, 2, 3, 0)
    grouped = ClassBalancedSampler(GROUPED_LABELS, 3, 2, 30, seed=2, groups=GROUPS)
    for batch in grouped:
        assert len(set(GROUPS[GROUPED_LABELS[batch]])) == 1
    with pytest.raises(ValueError, match="n_classes=3 cannot be split evenly"):
        ClassBalancedSampler(GROUPED_LABELS, 3, 2, 5, seed=0, rank=1, world_size=2)
    with pytest.raises(ValueError, match="fewer than n_samples = 7; lower n_samples"):
        ClassBalancedSampler(GROUPED_LABELS, 3, 7, 5, seed=0)


def test_pairs_within_group() -> None:
    sampler = PairSampler(GROUPED_LABELS, batch_size=200, batches=3, seed=4, groups=GROUPS)
    for first, second, same in sampler:
        a, b = GROUPED_LABELS[first], GROUPED_LABELS[second]
        np.testing.assert_array_equal(a == b, same)
        assert (GROUPS[a] == GROUPS[b]).all()
        assert same.sum() == 100
    # Without groups, different pairs do cross groups.
    first, second, same = next(iter(PairSampler(GROUPED_LABELS, 200, 1, seed=4)))
    assert (GROUPS[GROUPED_LABELS[first]] != GROUPS[GROUPED_LABELS[second]]).any()
    lonely = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="largest group, 'group 0', has 1"):
        PairSampler(GROUPED_LABELS[:18], 4, 1, seed=0, groups=lonely)


def test_pair_and_triplet_shards_cover_the_global_batch() -> None:
    for cls in (PairSampler, TripletSampler):
        whole = list(cls(GROUPED_LABELS, 12, 4, seed=9))
        shards = [list(cls(GROUPED_LABELS, 12, 4, seed=9, rank=r, world_size=3)) for r in range(3)]
        for b, arrays in enumerate(whole):
            for a, array in enumerate(arrays):
                merged = np.empty_like(array)
                for r in range(3):
                    merged[r::3] = shards[r][b][a]
                np.testing.assert_array_equal(merged, array)
    with pytest.raises(ValueError, match="batch_size=10 cannot be split evenly"):
        TripletSampler(GROUPED_LABELS, 10, 1, seed=0, world_size=3)


def test_triplets_are_valid_seeded_and_within_group() -> None:
    sampler = TripletSampler(GROUPED_LABELS, 300, 2, seed=6, groups=GROUPS)
    batches = list(sampler)
    for anchor, positive, negative in batches:
        la, lp, ln = (GROUPED_LABELS[x] for x in (anchor, positive, negative))
        assert (la == lp).all() and (anchor != positive).all() and (la != ln).all()
        assert (GROUPS[la] == GROUPS[ln]).all()
    for x, y in zip(batches[0], next(iter(sampler)), strict=True):
        np.testing.assert_array_equal(x, y)
    # The anchor class is uniform over the 12 classes.
    counts = np.bincount(np.concatenate([GROUPED_LABELS[b[0]] for b in batches]), minlength=12)
    assert chisquare(counts).pvalue > 1e-4
    with pytest.raises(ValueError, match="triplets need"):
        TripletSampler(np.arange(4), 4, 1, seed=0)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(2, 6) | st.just(1), min_size=2, max_size=10),
    group_seed=st.integers(0, 3),
    n_way=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_within_group_properties_over_random_layouts(
    counts: list[int], group_seed: int, n_way: int, seed: int
) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    groups = np.random.default_rng(group_seed).integers(0, 3, size=len(counts))
    eligible_groups = np.bincount(groups, minlength=3)
    if min(counts) < 2 or eligible_groups.max() < n_way:
        with pytest.raises(ValueError, match="has only|largest group|exceeds"):
            EpisodeSampler(labels, n_way, 1, 1, 4, seed=seed, groups=groups)
        return
    sampler = EpisodeSampler(labels, n_way, 1, 1, 4, seed=seed, groups=groups)
    for batch in sampler:
        grid = _check_episode(batch, labels, n_way, 1, 1)
        assert len(set(groups[grid[:, 0]])) == 1


def test_class_table_draw_is_uniform_and_never_pads() -> None:
    # Class 1 has 5 items among padded rows; its ordered pairs are uniform over 5 · 4 = 20.
    labels = np.array([0] * 9 + [1] * 5 + [2] * 2)
    table = ClassTable.from_labels(labels)
    draws = table.draw(np.random.default_rng(0), np.ones(20000, dtype=np.int64), 2)
    assert (labels[draws] == 1).all() and (draws[:, 0] != draws[:, 1]).all()
    codes = np.searchsorted(np.flatnonzero(labels == 1), draws)
    counts = np.bincount(codes[:, 0] * 5 + codes[:, 1], minlength=25)
    assert (counts.reshape(5, 5).diagonal() == 0).all()
    assert chisquare(counts[counts > 0]).pvalue > 1e-4 and (counts > 0).sum() == 20
    full = table.draw(np.random.default_rng(1), np.array([[0, 2], [2, 0]]), 2)
    assert full.shape == (2, 2, 2) and (labels[full] == np.array([[0, 2], [2, 0]])[..., None]).all()
