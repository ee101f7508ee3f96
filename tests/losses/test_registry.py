import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners

from metriclab.distances import L2, Cosine, WeightedL1
from metriclab.losses import (
    LOSSES,
    ContrastiveLoss,
    TripletLoss,
    VerificationLoss,
    build_loss,
    build_miner,
)


def test_registry_names_the_losses() -> None:
    assert LOSSES["verification"] is VerificationLoss
    assert LOSSES["contrastive"] is ContrastiveLoss
    assert LOSSES["triplet"] is TripletLoss


def test_build_loss_passes_params_and_builds_distances_by_name() -> None:
    loss = build_loss("triplet", {"margin": 0.3, "mining": "batch_hard", "distance": "cosine"})
    assert isinstance(loss, TripletLoss)
    assert (loss.margin, loss.mining) == (0.3, "batch_hard")
    assert isinstance(loss.distance, Cosine)
    weighted = build_loss("contrastive", {"distance": {"name": "weighted_l1", "dim": 5}})
    assert isinstance(weighted.distance, WeightedL1)
    assert weighted.distance.weight.shape == (5,)
    mine = L2()
    assert build_loss("contrastive", {"distance": mine}).distance is mine
    assert isinstance(build_loss("verification", {}), VerificationLoss)
    assert isinstance(build_loss("triplet"), TripletLoss)


def test_pml_losses_and_miners_plug_in_with_unnormalised_distances() -> None:
    loss = build_loss("pml:TripletMarginLoss", {"margin": 0.1, "distance": "l2"})
    assert isinstance(loss, pml_losses.TripletMarginLoss) and loss.margin == 0.1
    assert isinstance(loss.distance, pml_distances.LpDistance)
    assert not loss.distance.normalize_embeddings
    miner = build_miner("pml:TripletMarginMiner", {"type_of_triplets": "semihard"})
    assert isinstance(miner, pml_miners.TripletMarginMiner)
    cosine = build_miner("pml:BatchHardMiner", {"distance": "cosine"})
    assert isinstance(cosine.distance, pml_distances.CosineSimilarity)
    embeddings, labels = torch.randn(8, 4), torch.arange(8) % 2
    assert torch.isfinite(loss(embeddings, labels, miner(embeddings, labels)))


def test_unknown_names_and_params_suggest_the_closest() -> None:
    with pytest.raises(
        ValueError, match="unknown loss 'tripplet' for train.loss \\(did you mean 'triplet'\\?\\)"
    ):
        build_loss("tripplet", {})
    with pytest.raises(ValueError, match="unknown parameter 'margn'.*did you mean 'margin'"):
        build_loss("triplet", {"margn": 0.2})
    with pytest.raises(ValueError, match="did you mean 'pml:TripletMarginLoss'"):
        build_loss("pml:TripletMarginLos", {})
    with pytest.raises(ValueError, match="unknown parameter 'marginn' for miner"):
        build_miner("pml:TripletMarginMiner", {"marginn": 0.1})
    with pytest.raises(ValueError, match="did you mean 'pml:BatchHardMiner'"):
        build_miner("pml:BatchHardMiners", {})
    with pytest.raises(ValueError, match="miners come from pytorch-metric-learning"):
        build_miner("batch_hard", {})


def test_bad_params_give_one_clear_error() -> None:
    with pytest.raises(ValueError, match="needs parameter\\(s\\) embedding_size, num_classes"):
        build_loss("pml:ArcFaceLoss", {})
    with pytest.raises(ValueError, match="unknown distance 'l3'"):
        build_loss("triplet", {"distance": "l3"})
    with pytest.raises(ValueError, match="needs dim"):
        build_loss("triplet", {"distance": "weighted_l1"})
    with pytest.raises(ValueError, match="distance must be a name"):
        build_loss("triplet", {"distance": 3})
    with pytest.raises(ValueError, match="mining must be one of"):
        build_loss("triplet", {"mining": "hardest"})
    with pytest.raises(ValueError, match="cannot build miner 'pml:BatchHardMiner'"):
        build_miner("pml:BatchHardMiner", {"pos_strategy": "easy"})
    with pytest.raises(ValueError, match="params for 'triplet' must be a mapping"):
        build_loss("triplet", [("margin", 0.1)])  # type: ignore[arg-type]
