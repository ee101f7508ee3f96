import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.distances import L1, L2, Cosine, SquaredL2, WeightedL1, build_distance


def naive(name: str, a: torch.Tensor, b: torch.Tensor, w: torch.Tensor | None = None) -> float:
    """The distance of two vectors, written as a loop from its definition."""
    total = 0.0
    if name == "cosine":
        dot = sum(float(x) * float(y) for x, y in zip(a, b, strict=True))
        na = sum(float(x) ** 2 for x in a) ** 0.5
        nb = sum(float(y) ** 2 for y in b) ** 0.5
        return 1.0 - dot / (na * nb)
    for j, (x, y) in enumerate(zip(a, b, strict=True)):
        diff = float(x) - float(y)
        if name == "l1":
            total += abs(diff)
        elif name == "weighted_l1":
            total += float(w[j]) * abs(diff)
        else:
            total += diff * diff
    return total**0.5 if name == "l2" else total


@pytest.mark.parametrize("name", ["l1", "weighted_l1", "l2", "squared_l2", "cosine"])
def test_distances_match_naive_loops(name: str) -> None:
    torch.manual_seed(0)
    distance = build_distance(name, dim=6).double()
    if isinstance(distance, WeightedL1):
        with torch.no_grad():
            distance.raw_weight.copy_(torch.randn(6))
    w = distance.weight.detach() if isinstance(distance, WeightedL1) else None
    a, b = torch.randn(5, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    matrix = distance.matrix(a, b)
    for i in range(5):
        for j in range(4):
            assert matrix[i, j].item() == pytest.approx(naive(name, a[i], b[j], w), abs=1e-9)
    aligned = distance(a[:4], b)
    for i in range(4):
        assert aligned[i].item() == pytest.approx(naive(name, a[i], b[i], w), abs=1e-9)


def test_weighted_l1_is_l1_on_scaled_vectors() -> None:
    torch.manual_seed(1)
    weighted = WeightedL1(8)
    with torch.no_grad():
        weighted.raw_weight.copy_(torch.randn(8))
    assert (weighted.weight > 0).all()
    a, b = torch.randn(7, 8), torch.randn(3, 8)
    torch.testing.assert_close(
        weighted.matrix(a, b), L1().matrix(weighted.scale(a), weighted.scale(b))
    )


def test_batched_matrix_has_leading_dims() -> None:
    a, b = torch.randn(2, 5, 3), torch.randn(2, 4, 3)
    for distance in (L1(), L2(), SquaredL2(), Cosine(), WeightedL1(3)):
        assert distance.matrix(a, b).shape == (2, 5, 4)


def test_distance_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="dimensions differ"):
        L2().matrix(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="equal shapes"):
        L1()(torch.randn(2, 3), torch.randn(3, 3))
    with pytest.raises(ValueError, match="unknown distance 'l3'"):
        build_distance("l3", 4)


def test_gradients_are_correct_in_float64() -> None:
    a = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    for distance in (L1(), L2(), SquaredL2(), Cosine(), WeightedL1(5).double()):
        assert torch.autograd.gradcheck(lambda x, y, d=distance: d(x, y), (a, b))
        assert torch.autograd.gradcheck(lambda x, y, d=distance: d.matrix(x, y), (a, b))


vectors = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=3, max_size=3)


@settings(max_examples=60, deadline=None)
@given(a=vectors, b=vectors)
def test_distances_are_symmetric_and_non_negative(a: list[float], b: list[float]) -> None:
    x, y = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    for distance in (L1(), L2(), SquaredL2(), WeightedL1(3).double()):
        forward, backward = distance(x, y), distance(y, x)
        assert forward.item() >= 0
        assert forward.item() == pytest.approx(backward.item())
        assert distance(x, x).item() == 0
