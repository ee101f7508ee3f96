"""EpisodeSet.resolve (sorted search over the distinct ids) against a plain dict lookup."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.data import EpisodeSet

ids = st.text(alphabet="abcxyzé/:0123", min_size=1, max_size=6)


def naive(episodes: EpisodeSet, item_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    lookup = {item: position for position, item in enumerate(item_ids)}  # last position wins
    support = np.array([lookup[i] for i in episodes.support.ravel()]).reshape(
        episodes.support.shape
    )
    query = np.array([lookup[i] for i in episodes.query.ravel()]).reshape(episodes.query.shape)
    return support, query


@settings(max_examples=60, deadline=None)
@given(data=st.lists(ids, min_size=4, max_size=30), seed=st.integers(0, 2**31))
def test_resolve_equals_a_dict_lookup(data: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    used = rng.choice(np.asarray(data), size=(3, 2, 2))  # duplicates in the data are allowed
    episodes = EpisodeSet(np.full((3, 2), "c"), used[..., :1], used[..., 1:])
    support, query = episodes.resolve(data)
    want_support, want_query = naive(episodes, data)
    np.testing.assert_array_equal(support, want_support)
    np.testing.assert_array_equal(query, want_query)
    missing = [i for i in data if i != used[0, 0, 0]]
    with pytest.raises(ValueError, match="is not in the data"):
        episodes.resolve(missing)
