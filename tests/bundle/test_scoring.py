"""The runtime's numpy distances equal the torch distances they stand for, record by record."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.bundle import NUMPY_DISTANCES, numpy_distance
from metriclab.distances import DISTANCES, WeightedL1


def _torch_distance(name: str, dim: int, seed: int) -> torch.nn.Module:
    distance = DISTANCES.get(name).build(dim if DISTANCES.get(name).learned else None)
    if isinstance(
        distance, WeightedL1
    ):  # learned weights far from their start, some near 0 or > 20
        with torch.no_grad():
            raw = torch.randn(dim, generator=torch.Generator().manual_seed(seed)) * 3
            raw[0] = 25.0
            distance.raw_weight.copy_(raw)
    return distance


def test_every_registered_distance_serves_without_torch() -> None:
    assert set(DISTANCES.names()) <= set(NUMPY_DISTANCES.names())


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(DISTANCES.names())),
    rows=st.integers(1, 6),
    dim=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    offset=st.floats(-5, 5),
)
def test_numpy_distance_equals_torch(
    name: str, rows: int, dim: int, seed: int, offset: float
) -> None:
    rng = np.random.default_rng(seed)
    a = (rng.normal(size=(rows, dim)) + offset).astype(np.float32)
    b = (rng.normal(size=(rows + 1, dim)) + offset).astype(np.float32)
    reference = _torch_distance(name, dim, seed)
    served = numpy_distance(reference.to_dict())
    with torch.no_grad():
        aligned = reference(torch.from_numpy(a), torch.from_numpy(b[:rows])).numpy()
        matrix = reference.matrix(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(served.pairwise(a, b[:rows]), aligned, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(served.matrix(a, b), matrix, rtol=1e-5, atol=1e-4)
    # The FAISS forms too: the index prepares vectors with them.
    np.testing.assert_allclose(served.faiss_vectors(a), reference.faiss_vectors(a), rtol=1e-6)
    values = np.abs(rng.normal(size=(rows, 3))).astype(np.float32)
    np.testing.assert_allclose(
        served.from_faiss(values.copy()), reference.from_faiss(values.copy()), rtol=1e-6
    )


def test_format_1_weighted_l1_record_and_bad_records() -> None:
    reference = _torch_distance("weighted_l1", 4, 0)
    record = reference.to_dict()
    only_raw = numpy_distance({"name": "weighted_l1", "raw_weight": record["raw_weight"]})
    np.testing.assert_allclose(only_raw.weight, reference.weight.detach().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="did you mean 'cosine'"):
        numpy_distance({"name": "cosin"})
    with pytest.raises(ValueError, match="'raw_weight' or 'weights'"):
        numpy_distance({"name": "weighted_l1"})
