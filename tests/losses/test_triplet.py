import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning import reducers as pml_reducers
from torch.utils._python_dispatch import TorchDispatchMode

import metriclab.losses.triplet as triplet_module
from metriclab.distances import L2, Cosine, SquaredL2, WeightedL1, to_pml
from metriclab.losses import TripletLoss


def euclidean(x: list[float], y: list[float], squared: bool = False) -> float:
    total = sum((a - b) ** 2 for a, b in zip(x, y, strict=True))
    return total if squared else math.sqrt(total)


def naive_triplet(
    embeddings: torch.Tensor,
    labels: list[int],
    margin: float,
    mining: str,
    soft: bool = False,
    squared: bool = False,
) -> tuple[list[float], int]:
    """Per-anchor loss sums and the number of selected triplets, loop by loop from the papers."""
    e = embeddings.tolist()
    b = len(e)
    f = (lambda v: math.log1p(math.exp(v))) if soft else (lambda v: max(0.0, v))
    sums, count = [0.0] * b, 0
    for a in range(b):
        positives = [p for p in range(b) if p != a and labels[p] == labels[a]]
        negatives = [n for n in range(b) if labels[n] != labels[a]]
        d = [euclidean(e[a], e[j], squared) for j in range(b)]
        if mining == "batch_hard":  # Hermans et al. 2017, eq. 5
            if positives and negatives:
                hardest_p = max(d[p] for p in positives)
                hardest_n = min(d[n] for n in negatives)
                sums[a] = f(hardest_p - hardest_n + margin)
                count += 1
            continue
        for p in positives:
            for n in negatives:
                # Schroff et al. 2015: semi-hard negatives lie farther than p, inside the margin.
                if mining == "semi_hard" and not (d[p] < d[n] <= d[p] + margin):
                    continue
                sums[a] += f(d[p] - d[n] + margin)
                count += 1
    return sums, count


def labelled_batch(b: int, classes: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(b, dim, dtype=torch.float64, generator=generator)
    labels = torch.randint(0, classes, (b,), generator=generator)
    return embeddings, labels


CASES = [
    ("all", False),
    ("all", True),
    ("batch_hard", False),
    ("batch_hard", True),
    ("semi_hard", False),
    ("semi_hard", True),
]


@pytest.mark.parametrize(("mining", "soft"), CASES)
def test_batch_mining_matches_naive_loops(mining: str, soft: bool) -> None:
    embeddings, labels = labelled_batch(10, 3, 4, seed=0)
    labels[-1] = 7  # a singleton class: an anchor with no positive
    sums, count = naive_triplet(embeddings, labels.tolist(), 0.8, mining, soft)
    assert count > 0
    none = TripletLoss(0.8, mining=mining, soft=soft, reduction="none").batch(embeddings, labels)
    assert none.tolist() == pytest.approx(sums, abs=1e-12)
    total = TripletLoss(0.8, mining=mining, soft=soft, reduction="sum").batch(embeddings, labels)
    assert total.item() == pytest.approx(sum(sums), abs=1e-12)
    mean = TripletLoss(0.8, mining=mining, soft=soft).batch(embeddings, labels)
    assert mean.item() == pytest.approx(sum(sums) / count, abs=1e-12)


def test_batch_mining_with_squared_distance_matches_naive_loops() -> None:
    embeddings, labels = labelled_batch(9, 3, 3, seed=1)
    for mining in ("all", "semi_hard", "batch_hard"):
        sums, count = naive_triplet(embeddings, labels.tolist(), 1.5, mining, squared=True)
        loss = TripletLoss(1.5, distance=SquaredL2(), mining=mining)
        assert loss.batch(embeddings, labels).item() == pytest.approx(sum(sums) / count)


def test_explicit_triplets_match_the_formula() -> None:
    generator = torch.Generator().manual_seed(2)
    a, p, n = (torch.randn(8, 5, dtype=torch.float64, generator=generator) for _ in range(3))
    expected = [
        max(0.0, euclidean(x, y) - euclidean(x, z) + 0.5)
        for x, y, z in zip(a.tolist(), p.tolist(), n.tolist(), strict=True)
    ]
    assert TripletLoss(0.5, reduction="none")(a, p, n).tolist() == pytest.approx(expected)
    assert TripletLoss(0.5)(a, p, n).item() == pytest.approx(sum(expected) / 8)


def test_no_valid_triplet_gives_zero() -> None:
    embeddings, _ = labelled_batch(4, 1, 3, seed=3)
    empty, no_labels = torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)
    for mining in ("all", "batch_hard", "semi_hard"):
        assert TripletLoss(mining=mining).batch(embeddings, torch.zeros(4, dtype=torch.long)) == 0
        assert TripletLoss(mining=mining).batch(empty, no_labels) == 0
        assert TripletLoss(mining=mining, reduction="none").batch(empty, no_labels).shape == (0,)


@pytest.mark.parametrize("chunk_elements", [1, 3 * 64, 2**21])
def test_chunking_does_not_change_the_result(
    chunk_elements: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    embeddings, labels = labelled_batch(8, 3, 4, seed=4)
    reference = {
        m: naive_triplet(embeddings, labels.tolist(), 1.0, m)[0] for m in ("all", "semi_hard")
    }
    monkeypatch.setattr(triplet_module, "_CHUNK_ELEMENTS", chunk_elements)
    for mining, expected in reference.items():
        per_anchor = TripletLoss(1.0, mining=mining, reduction="none").batch(embeddings, labels)
        assert per_anchor.tolist() == pytest.approx(expected, abs=1e-12)


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements any operator returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return out


@pytest.mark.parametrize("mining", ["all", "semi_hard", "batch_hard"])
def test_memory_is_quadratic_forward_and_backward(
    mining: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = 48  # B³ = 110,592 elements; B² = 2,304
    monkeypatch.setattr(triplet_module, "_CHUNK_ELEMENTS", b * b)  # one anchor per chunk
    embeddings = torch.randn(b, 8, requires_grad=True)
    labels = torch.arange(b) % 6
    with LargestTensor() as spy:
        TripletLoss(1.0, mining=mining).batch(embeddings, labels).backward()
    assert spy.largest <= b * b
    assert embeddings.grad is not None and torch.isfinite(embeddings.grad).all()


@pytest.mark.parametrize(("mining", "soft"), CASES)
def test_gradients_in_float64(mining: str, soft: bool) -> None:
    embeddings, labels = labelled_batch(7, 2, 3, seed=5)
    embeddings.requires_grad_(True)
    for distance in (L2(), Cosine(), WeightedL1(3).double()):
        loss = TripletLoss(1.0, distance=distance, mining=mining, soft=soft)
        assert torch.autograd.gradcheck(lambda x, f=loss: f.batch(x, labels), (embeddings,))
    a, p, n = (torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    explicit = TripletLoss(1.0, soft=soft)
    assert torch.autograd.gradcheck(explicit, (a, p, n))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    mining=st.sampled_from(["all", "batch_hard", "semi_hard"]),
    soft=st.booleans(),
)
def test_non_negative_and_batch_order_invariant(seed: int, mining: str, soft: bool) -> None:
    embeddings, labels = labelled_batch(9, 3, 3, seed)
    order = torch.randperm(9, generator=torch.Generator().manual_seed(seed))
    per_anchor = TripletLoss(0.7, mining=mining, soft=soft, reduction="none")
    values = per_anchor.batch(embeddings, labels)
    assert (values >= 0).all()
    torch.testing.assert_close(per_anchor.batch(embeddings[order], labels[order]), values[order])
    mean = TripletLoss(0.7, mining=mining, soft=soft)
    torch.testing.assert_close(
        mean.batch(embeddings[order], labels[order]), mean.batch(embeddings, labels)
    )


# --- agreement with pytorch-metric-learning ---------------------------------------------------
# Equal settings: the same raw Euclidean distance (PML normalises by default, so
# normalize_embeddings=False via to_pml), the same margin, and MeanReducer, which averages over
# the mined triplets exactly as our "mean" does (PML's default AvgNonZeroReducer counts only
# non-zero losses; the last test checks that relation). float64 keeps the mining boundaries equal.


def pml_value(embeddings: torch.Tensor, labels: torch.Tensor, margin: float, **options) -> float:
    distance = to_pml(L2())
    miner = options.pop("miner", None)
    loss = pml_losses.TripletMarginLoss(margin=margin, distance=distance, **options)
    indices = miner(embeddings, labels) if miner is not None else None
    return loss(embeddings, labels, indices_tuple=indices).item()


@pytest.mark.parametrize("soft", [False, True])
def test_agrees_with_pml(soft: bool) -> None:
    embeddings, labels = labelled_batch(24, 4, 6, seed=6)
    mean = pml_reducers.MeanReducer()
    cases = {
        "all": None,
        "batch_hard": pml_miners.BatchHardMiner(distance=to_pml(L2())),
        "semi_hard": pml_miners.TripletMarginMiner(
            margin=1.0, type_of_triplets="semihard", distance=to_pml(L2())
        ),
    }
    for mining, miner in cases.items():
        ours = TripletLoss(1.0, mining=mining, soft=soft).batch(embeddings, labels).item()
        theirs = pml_value(embeddings, labels, 1.0, miner=miner, smooth_loss=soft, reducer=mean)
        assert ours == pytest.approx(theirs, rel=1e-10), mining


def test_pml_default_reducer_averages_only_non_zero_losses() -> None:
    embeddings, labels = labelled_batch(16, 3, 4, seed=7)
    sums, _ = naive_triplet(embeddings, labels.tolist(), 0.5, "all")
    total = TripletLoss(0.5, reduction="sum").batch(embeddings, labels).item()
    nonzero = sum(
        1
        for a in range(16)
        for p in range(16)
        for n in range(16)
        if a != p
        and labels[a] == labels[p]
        and labels[a] != labels[n]
        and euclidean(embeddings[a].tolist(), embeddings[p].tolist())
        - euclidean(embeddings[a].tolist(), embeddings[n].tolist())
        + 0.5
        > 0
    )
    assert total == pytest.approx(sum(sums))
    assert pml_value(embeddings, labels, 0.5) == pytest.approx(total / nonzero, rel=1e-10)


def test_triplet_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="mining must be one of all, batch_hard, semi_hard"):
        TripletLoss(mining="hardest")
    for margin in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="margin must be a finite number ≥ 0"):
            TripletLoss(margin=margin)
    with pytest.raises(ValueError, match="margin must be a finite number > 0"):
        TripletLoss(margin=0.0, mining="semi_hard")
    with pytest.raises(ValueError, match="soft must be True or False"):
        TripletLoss(soft="yes")  # type: ignore[arg-type]
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"call \.batch\(embeddings, labels\)"):
        TripletLoss(mining="batch_hard")(x, x, x)
    with pytest.raises(ValueError, match="anchor, positive, negative must all have the same"):
        TripletLoss()(x, x, x[:3])
    with pytest.raises(ValueError, match="negative contains NaN"):
        TripletLoss()(x, x, torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        TripletLoss().batch(torch.full((4, 3), float("nan")), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        TripletLoss().batch(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction"):
        TripletLoss(reduction="avg")  # type: ignore[arg-type]
