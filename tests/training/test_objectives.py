"""Objectives feed a loss from its declaration: every registered loss trains or is refused."""

from pathlib import Path

import pytest
import torch
from torch import nn

from metriclab.cli import main
from metriclab.config import Config, ConfigError, resolve_config
from metriclab.data import LabeledImages
from metriclab.losses import LOSSES, LossInput, declaration_of
from metriclab.losses.registry import loss_declaration
from metriclab.training import OBJECTIVES, build_model, build_objective, train
from metriclab.training.builders import build_data
from metriclab.training.metrics_log import read_metrics

SMALL = [
    "train.batch_size=16",
    "train.classes_per_batch=4",
    "train.samples_per_class=4",
    "train.n_way=3",
    "train.k_shot=1",
    "train.n_query=2",
    "train.log_every=1",
]
# Constructor arguments a registered loss needs beyond what the trainer fills.
NEEDS = {
    "camri": ["train.loss_params.margins={0: 0.3}"],
    "ohem": ["train.loss_params.keep=0.5", "train.loss_params.loss={name: cosine}"],
}
# Which objectives feed each shipped loss, written out by hand so that a wrong declaration
# fails here; a loss added later is checked against its own declaration instead.
FED_BY = {
    "verification": {"siamese"},
    "binary_hard_mining": {"siamese"},
    "contrastive": {"siamese", "triplet"},
    "triplet": {"triplet"},
    "cross_entropy": {"classifier", "cot"},
    "cosine": {"classifier", "cot"},
    "ohem": {"classifier", "cot"},  # as wrapped around cosine in NEEDS
    "hard_mining": {"classifier", "cot"},
    "complement_cross_entropy": {"classifier", "cot"},
    "camri": {"classifier"},
}


@pytest.fixture(scope="module")
def digits_train() -> LabeledImages:
    return build_data(resolve_config(None, []))[0]


def _config(objective: str, loss: str) -> Config:
    # an objective that trains a learned comparator (matching, relation) names the one it needs
    comparator = getattr(OBJECTIVES.get(objective), "comparator", None)
    needs = [*NEEDS.get(loss, []), *([f"model.comparator={comparator}"] if comparator else [])]
    return resolve_config(
        None, [*SMALL, f"train.objective={objective}", f"train.loss={loss}", *needs]
    )


def _feeders(loss: str) -> set[str]:
    if loss in FED_BY:
        return FED_BY[loss]
    consumes = loss_declaration(loss).consumes
    return {name for name, kind in OBJECTIVES.items() if consumes & set(kind.produces)}


def _one_step(config: Config, data: LabeledImages) -> None:
    torch.manual_seed(0)
    model = build_model(config, data.channels)
    objective = build_objective(config, data, model.distance)
    loss, images = objective.loss(model, step=0)
    assert torch.isfinite(loss) and images > 0
    loss.backward()
    grads = [p.grad for p in model.embedding_net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_every_registered_loss_trains_or_is_refused_naming_who_can(
    digits_train: LabeledImages, objective: str, loss: str
) -> None:
    config = _config(objective, loss)
    feeders = _feeders(loss)
    own_loss = not OBJECTIVES.get(objective).produces  # episodic, matching, relation
    if objective in feeders or (own_loss and loss == Config().train.loss):
        _one_step(config, digits_train)  # these train with their own loss under the default
        return
    with pytest.raises(ConfigError) as refused:
        build_objective(config, digits_train, build_model(config, 1).distance)
    message = str(refused.value)
    assert message.count(";") <= 1 and "\n" not in message
    able = ", ".join(name for name in OBJECTIVES if name in feeders)
    assert f"(objectives that can feed it: {able})" in message
    first = next(name for name in OBJECTIVES if name in feeders)
    assert f"use train.objective={first}" in message
    assert f"train.objective={objective}" in message or f"{loss!r}" in message


def test_shipped_declarations_match_the_table() -> None:
    for name, feeders in FED_BY.items():
        assert name in LOSSES
        if name != "ohem":  # OHEM consumes what the loss it wraps consumes
            consumes = loss_declaration(name).consumes
            derived = {o for o, kind in OBJECTIVES.items() if consumes & set(kind.produces)}
            assert derived == feeders, name


def test_cli_refuses_a_loss_the_objective_cannot_feed(tmp_path: Path, capsys) -> None:
    run = ["train", "--no-progress", "--run-dir", str(tmp_path / "run")]
    assert main([*run, "train.loss=cross_entropy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: loss 'cross_entropy' consumes class logits (B, C)")
    assert "use train.objective=classifier (objectives that can feed it: classifier, cot)" in err
    assert "Traceback" not in err
    assert main([*run, "train.objective=episodic", "train.loss=triplet"]) == 2
    err = capsys.readouterr().err
    assert "train.objective=episodic trains with its own prototypical cross-entropy" in err
    assert "use train.objective=triplet" in err
    assert main([*run, "train.loss=no_such_loss"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown loss 'no_such_loss' for train.loss")


def test_binary_hard_mining_trains_under_the_default_objective(tmp_path: Path) -> None:
    # It used to crash with a raw TypeError: it takes binary scores and 0/1 targets, which is
    # what a Siamese head's pair logits and same flags are.
    config = resolve_config(None, [*SMALL, "train.loss=binary_hard_mining", "train.steps=3"])
    assert config.train.objective == "siamese"
    train(config, tmp_path / "run", progress=False)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert len(rows) == 3 and all(float(r["loss"]) > 0 for r in rows)


def test_a_miner_with_a_loss_that_mines_itself_is_refused(digits_train: LabeledImages) -> None:
    config = resolve_config(
        None,
        [*SMALL, "train.objective=triplet", "train.loss=triplet", "train.miner=pml:BatchHardMiner"],
    )
    with pytest.raises(ConfigError, match="selects its own tuples .* drop train.miner="):
        build_objective(config, digits_train, build_model(config, 1).distance)


class ToyCenterLoss(nn.Module):
    """A loss from outside the package: squared distance of each embedding to its class mean."""

    consumes = frozenset({LossInput.LABELED_BATCH})

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        classes, index = labels.unique(return_inverse=True)
        sums = embeddings.new_zeros(len(classes), embeddings.shape[1]).index_add_(
            0, index, embeddings
        )
        means = sums / torch.bincount(index)[:, None]
        return (embeddings - means[index]).pow(2).sum(1).mean()


class ToyTripletsOnly(nn.Module):
    consumes = frozenset({LossInput.TRIPLETS})


def test_a_toy_loss_registered_from_a_test_trains_through_the_config(tmp_path: Path) -> None:
    LOSSES.register("toy_center", ToyCenterLoss)
    LOSSES.register("toy_triplets_only", ToyTripletsOnly)
    try:
        config = resolve_config(
            None, [*SMALL, "train.objective=triplet", "train.loss=toy_center", "train.steps=2"]
        )
        train(config, tmp_path / "run", progress=False)
        assert len(read_metrics(tmp_path / "run" / "metrics.csv")) == 2
        wrong = resolve_config(None, [*SMALL, "train.loss=toy_center"])
        with pytest.raises(ConfigError, match="use train.objective=triplet"):
            build_objective(wrong, build_data(wrong)[0], build_model(wrong, 1).distance)
        orphan = resolve_config(None, [*SMALL, "train.loss=toy_triplets_only"])
        with pytest.raises(ConfigError, match="no registered objective can feed it"):
            build_objective(orphan, build_data(orphan)[0], build_model(orphan, 1).distance)
    finally:
        LOSSES.unregister("toy_center")
        LOSSES.unregister("toy_triplets_only")


def test_objectives_registry_keeps_its_names() -> None:
    assert set(OBJECTIVES) == {
        "siamese",
        "triplet",
        "episodic",
        "classifier",
        "cot",
        "matching",
        "relation",
    }
    assert "siamese" in OBJECTIVES
    with pytest.raises(ValueError, match="unknown objective 'siamse' .*did you mean 'siamese'"):
        OBJECTIVES.get("siamse")
    # OHEM's declaration is its inner loss's, read from the built instance.
    config = _config("classifier", "ohem")
    data = build_data(config)[0]
    objective = build_objective(config, data, build_model(config, 1).distance)
    assert declaration_of(objective.criterion).consumes == {LossInput.CLASS_LOGITS}
