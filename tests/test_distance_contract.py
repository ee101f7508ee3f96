"""The distance contract: FAISS search form, ranking, one serialisation, registration."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.distances import DISTANCES, Distance, WeightedL1, build_distance, distance_from_dict


def built(name: str, seed: int = 0) -> Distance:
    """Every registered distance, learned ones with non-trivial weights."""
    distance = build_distance(name, dim=6)
    if isinstance(distance, WeightedL1):
        with torch.no_grad():
            distance.raw_weight.copy_(torch.randn(6, generator=torch.Generator().manual_seed(seed)))
    return distance


def faiss_values(distance: Distance, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """What FAISS would report for all pairs, computed by hand from the distance's search form:
    the metric named by ``faiss_metric`` on ``faiss_vectors``, mapped back by ``from_faiss``."""
    x, y = distance.faiss_vectors(a.copy()), distance.faiss_vectors(b.copy())
    diff = x[:, None, :].astype(np.float64) - y[None, :, :]
    raw = {
        "l1": np.abs(diff).sum(-1),
        "l2": (diff**2).sum(-1),
        "inner_product": x.astype(np.float64) @ y.T.astype(np.float64),
    }[distance.faiss_metric]
    return distance.from_faiss(raw)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), name=st.sampled_from(DISTANCES.names()))
def test_faiss_search_form_equals_the_distance(seed: int, name: str) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    distance = built(name, seed)
    expected = distance.matrix(torch.from_numpy(a).double(), torch.from_numpy(b).double())
    np.testing.assert_allclose(faiss_values(distance, a, b), expected.detach().numpy(), atol=2e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), name=st.sampled_from(DISTANCES.names()))
def test_ranking_orders_neighbours_as_the_distance(seed: int, name: str) -> None:
    generator = torch.Generator().manual_seed(seed)
    a, b = torch.randn(5, 6, generator=generator), torch.randn(7, 6, generator=generator)
    distance = built(name, seed)
    order = distance.matrix(a, b).argsort(-1)
    assert torch.equal(distance.ranking().matrix(a, b).argsort(-1), order)


@pytest.mark.parametrize("name", DISTANCES.names())
def test_serialisation_round_trips_exactly_through_json(name: str) -> None:
    distance = built(name, seed=3)
    record = json.loads(json.dumps(distance.to_dict()))
    back = distance_from_dict(record)
    assert type(back) is type(distance) and back.same_as(distance)
    a, b = torch.randn(3, 6), torch.randn(3, 6)
    assert torch.equal(back.matrix(a, b), distance.matrix(a, b))


def test_weighted_l1_reads_the_old_bundle_record_of_weights_only() -> None:
    distance = built("weighted_l1", seed=4)
    legacy = {"name": "weighted_l1", "weights": distance.weight.detach().tolist()}
    torch.testing.assert_close(distance_from_dict(legacy).weight, distance.weight)


def test_same_as_tells_learned_parameters_apart() -> None:
    assert built("weighted_l1", seed=1).same_as(built("weighted_l1", seed=1))
    assert not built("weighted_l1", seed=1).same_as(built("weighted_l1", seed=2))
    assert not build_distance("l1").same_as(build_distance("l2"))


def test_bad_records_get_one_sentence() -> None:
    with pytest.raises(
        ValueError, match=r"unknown distance 'l3' for model.distance; choose one of l1"
    ):
        distance_from_dict({"name": "l3"})
    with pytest.raises(ValueError, match="mapping with a 'name'"):
        distance_from_dict(["l1"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'raw_weight' or 'weights'"):
        distance_from_dict({"name": "weighted_l1"})


def test_a_new_distance_is_one_class_and_one_registration() -> None:
    class Chebyshev(Distance):
        """max_j |a_j − b_j| declaring a FAISS metric that does not exist: the index refuses it."""

        name = "chebyshev_test"
        faiss_metric = "chebyshev"  # type: ignore[assignment]

        def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (a - b).abs().amax(-1)

        def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.cdist(a, b, p=float("inf"))

    DISTANCES.register(Chebyshev.name, Chebyshev)
    try:
        distance = distance_from_dict(build_distance("chebyshev_test").to_dict())
        assert isinstance(distance, Chebyshev)
        from metriclab.evaluation import FaissIndex

        with pytest.raises(ValueError, match="faiss_metric is 'chebyshev'"):
            FaissIndex.build(torch.randn(4, 3), distance)
    finally:
        DISTANCES.unregister(Chebyshev.name)


def test_no_isinstance_on_distance_classes_outside_distances() -> None:
    package = Path(__file__).resolve().parents[1] / "metriclab"
    pattern = re.compile(r"isinstance\([^)]*\b(L1|L2|SquaredL2|Cosine|WeightedL1)\b")
    found = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        if path.name != "distances.py"
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
