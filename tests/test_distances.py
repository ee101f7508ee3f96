import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances as pml_distances

from metriclab.distances import (
    DISTANCES,
    L1,
    L2,
    Cosine,
    SquaredL2,
    WeightedL1,
    build_distance,
    from_pml,
    to_pml,
)


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


def test_weighted_l1_needs_dim_by_name() -> None:
    with pytest.raises(ValueError, match="needs dim"):
        build_distance("weighted_l1")
    assert isinstance(build_distance("l2"), L2)


def test_weighted_l1_init_is_the_starting_weight_and_only_its_own() -> None:
    torch.testing.assert_close(build_distance("weighted_l1", 8).weight, torch.full((8,), 1 / 8))
    torch.testing.assert_close(build_distance("weighted_l1", 8, 1.0).weight, torch.ones(8))
    with pytest.raises(
        ValueError, match="init applies only to learned distances .*weighted_l1.*not .l2."
    ):
        build_distance("l2", 8, 1.0)


@pytest.mark.parametrize("cls", [L2, SquaredL2])
def test_euclidean_matrix_is_accurate_for_offset_embeddings(cls: type) -> None:
    # 40 rows take cdist's GEMM path; a shared offset of 10 is what a head bias produces.
    generator = torch.Generator().manual_seed(3)
    a = 10 + 0.5 * torch.randn(40, 16, generator=generator)
    b = torch.cat([a[:5], 10 + 0.5 * torch.randn(30, 16, generator=generator)])
    exact = ((a.double()[:, None] - b.double()[None]) ** 2).sum(-1)
    exact = exact.sqrt() if cls is L2 else exact
    error = (cls().matrix(a, b).double() - exact).abs().max().item()
    # Without centring the errors are 0.022 and 8e-4; centred they are 1e-3 and 2e-6.
    assert error < (5e-3 if cls is L2 else 5e-5)


@pytest.mark.parametrize("distance", [L1(), L2(), SquaredL2(), Cosine(), WeightedL1(4)])
def test_gradients_at_identical_points_are_finite(distance: torch.nn.Module) -> None:
    for rows in (3, 40):  # below and above cdist's GEMM threshold
        a = torch.randn(rows, 4, requires_grad=True)
        (distance(a, a.detach().clone()).sum() + distance.matrix(a, a).sum()).backward()
        assert torch.isfinite(a.grad).all()
    x = torch.randn(3, 4, requires_grad=True)
    if isinstance(distance, L2):  # the subgradient at a = b is 0, not NaN
        distance(x, x.detach().clone()).sum().backward()
        assert x.grad.abs().max().item() == 0


def test_batched_matrix_gradients_in_float64() -> None:
    a = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    for distance in (L1(), L2(), SquaredL2(), Cosine(), WeightedL1(3).double()):
        assert torch.autograd.gradcheck(lambda x, y, d=distance: d.matrix(x, y), (a, b))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), name=st.sampled_from(sorted(DISTANCES)))
def test_matrix_is_invariant_to_batch_order(seed: int, name: str) -> None:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(6, 3, dtype=torch.float64, generator=generator)
    b = torch.randn(5, 3, dtype=torch.float64, generator=generator)
    pa, pb = torch.randperm(6, generator=generator), torch.randperm(5, generator=generator)
    distance = build_distance(name, 3).double()
    expected = distance.matrix(a, b)[pa][:, pb]
    torch.testing.assert_close(distance.matrix(a[pa], b[pb]), expected)
    torch.testing.assert_close(distance.matrix(b, a), distance.matrix(a, b).T)
    assert (distance.matrix(a, b) >= 0).all()


# --- pytorch-metric-learning converters --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DISTANCES))
def test_pml_round_trip_is_equal_on_random_inputs(name: str) -> None:
    generator = torch.Generator().manual_seed(7)
    distance = build_distance(name, 8)
    if isinstance(distance, WeightedL1):
        with torch.no_grad():
            distance.raw_weight.copy_(torch.randn(8, generator=generator))
    a, b = 3 * torch.randn(9, 8, generator=generator), torch.randn(7, 8, generator=generator)
    pml = to_pml(distance)
    back = from_pml(pml)
    assert type(back) is type(distance)
    torch.testing.assert_close(back.matrix(a, b), distance.matrix(a, b))
    # PML's own values: a similarity 1 − d for cosine (is_inverted), the distance otherwise.
    if isinstance(distance, Cosine):
        assert pml.is_inverted
        torch.testing.assert_close(1 - pml(a, b), distance.matrix(a, b))
    else:
        assert not pml.is_inverted and not pml.normalize_embeddings
        torch.testing.assert_close(pml(a, b), distance.matrix(a, b))


def test_from_pml_converts_the_native_distances() -> None:
    assert isinstance(from_pml(pml_distances.LpDistance(normalize_embeddings=False, p=1)), L1)
    assert isinstance(from_pml(pml_distances.LpDistance(normalize_embeddings=False)), L2)
    squared = pml_distances.LpDistance(normalize_embeddings=False, power=2)
    assert isinstance(from_pml(squared), SquaredL2)
    assert isinstance(from_pml(pml_distances.CosineSimilarity()), Cosine)
    normalized_dot = pml_distances.DotProductSimilarity(normalize_embeddings=True)
    assert isinstance(from_pml(normalized_dot), Cosine)


def test_from_pml_refuses_what_it_cannot_represent() -> None:
    with pytest.raises(ValueError, match="normalize_embeddings=False"):
        from_pml(pml_distances.LpDistance())  # PML's default normalises
    with pytest.raises(ValueError, match=r"LpDistance\(p=3"):
        from_pml(pml_distances.LpDistance(normalize_embeddings=False, p=3))
    with pytest.raises(ValueError, match="not a cosine similarity"):
        from_pml(pml_distances.DotProductSimilarity(normalize_embeddings=False))
    with pytest.raises(ValueError, match="SNRDistance"):
        from_pml(pml_distances.SNRDistance())


def test_weighted_l1_trains_through_a_pml_loss() -> None:
    from pytorch_metric_learning.losses import ContrastiveLoss

    weighted = WeightedL1(4)
    pml = to_pml(weighted)
    assert any(p is weighted.raw_weight for p in pml.parameters())
    loss = ContrastiveLoss(distance=pml)
    loss(torch.randn(8, 4), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])).backward()
    assert weighted.raw_weight.grad is not None and weighted.raw_weight.grad.abs().sum() > 0


@pytest.mark.parametrize("form", ["aligned", "matrix"])
def test_bad_inputs_name_the_fix(form: str) -> None:
    a = torch.rand(3, 8)

    def call(distance, x, y):
        return distance(x, y) if form == "aligned" else distance.matrix(x, y)

    with pytest.raises(TypeError, match=r"got ndarray for a; wrap it: torch\.from_numpy"):
        call(L2(), a.numpy(), a)
    with pytest.raises(TypeError, match=r"float embeddings, got torch\.int64 for b"):
        call(L2(), a, torch.ones(3, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"built for 64-d embeddings, got 8-d .*WeightedL1\(8\)"):
        call(WeightedL1(64), a, a)
    assert call(WeightedL1(8), a, a).shape == ((3,) if form == "aligned" else (3, 3))
