"""train.extra_loss: a second, weighted loss over the batch the objective embedded."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from metriclab import checkpoints
from metriclab.cli import main
from metriclab.config import ConfigError, resolve_config
from metriclab.data import LabeledImages, to_float
from metriclab.data.streaming import pixels
from metriclab.losses import TripletLoss
from metriclab.training import build_model, build_objective, train
from metriclab.training.builders import build_data
from metriclab.training.loop import StepLoss
from metriclab.training.metrics_log import read_metrics

SMALL = [
    "train.batch_size=12",
    "train.classes_per_batch=4",
    "train.samples_per_class=3",
    "train.log_every=1",
    "eval.episodes=10",
    "eval.pairs=50",
]


@pytest.fixture(scope="module")
def digits_train() -> LabeledImages:
    return build_data(resolve_config(None, []))[0]


def _one_step(data: LabeledImages, overrides: list[str], step: int):
    """The model, its objective, the step's total loss, the objective's own loss alone, and the
    embeddings and labels of the batch the objective drew, recomputed apart from it (no
    augmentation in these configs)."""
    config = resolve_config(None, [*SMALL, *overrides])
    torch.manual_seed(0)
    model = build_model(config, data.channels)
    built = build_objective(config, data, model.distance)
    seen: list[np.ndarray] = []
    embed = built.embed

    def spy(model, positions, rng):  # records the positions the objective embeds
        seen.append(positions.copy())
        return embed(model, positions, rng)

    built.embed = spy
    total, _ = StepLoss(model, built)(step=step)
    own, _ = built.loss(model, step=step)  # the same step draws the same batch again
    assert len(seen) == 2 and np.array_equal(seen[0], seen[1])
    positions = torch.from_numpy(seen[0])
    embeddings = model.embedding_net(to_float(pixels(data.images[positions])))
    return model, built, total, own, (embeddings, data.labels[positions])


@pytest.mark.parametrize(
    ("objective", "loss"),
    [("siamese", "verification"), ("triplet", "triplet"), ("classifier", "cross_entropy")],
)
def test_the_total_is_the_objectives_loss_plus_the_weighted_extra_on_the_same_batch(
    digits_train: LabeledImages, objective: str, loss: str
) -> None:
    extra = [
        "train.extra_loss=pml:ArcFaceLoss",
        "train.extra_loss_weight=0.3",
        "train.extra_loss_params={margin: 20, scale: 16}",
    ]
    overrides = [f"train.objective={objective}", f"train.loss={loss}", *extra]
    model, built, total, own, batch = _one_step(digits_train, overrides, step=3)
    # Independent reference: PML's ArcFace with the extra term's class weights.
    reference = pml_losses.ArcFaceLoss(
        num_classes=digits_train.num_classes,
        embedding_size=model.embedding_net.dim,
        margin=20,
        scale=16,
    )
    reference.load_state_dict(built.extra.criterion.state_dict())
    torch.testing.assert_close(total, own + 0.3 * reference(*batch), rtol=1e-5, atol=1e-6)
    assert float((total - own).detach()) > 0


def test_a_labelled_batch_loss_beside_a_margin_classifier(digits_train: LabeledImages) -> None:
    """The faces pairing: ArcFace as train.loss, a triplet term (every valid triplet) beside it."""
    overrides = [
        "train.objective=classifier",
        "train.loss=pml:ArcFaceLoss",
        "train.extra_loss=triplet",
        "train.extra_loss_params={margin: 0.3}",
        "train.extra_loss_weight=2",
    ]
    model, _, total, own, batch = _one_step(digits_train, overrides, step=0)
    # The trainer fills the loss's distance with the model's (a learned weighted L1 by default).
    reference = TripletLoss(margin=0.3, distance=model.distance)
    torch.testing.assert_close(total, own + 2 * reference(*batch), rtol=1e-5, atol=1e-6)


def test_the_extra_terms_weights_train_checkpoint_and_resume(tmp_path: Path) -> None:
    overrides = [
        *SMALL,
        "train.objective=triplet",
        "train.loss=triplet",
        "train.extra_loss=pml:ArcFaceLoss",
        "train.checkpoint_every=2",
        "train.keep_last=5",
    ]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    train(resolve_config(None, [*overrides, "train.steps=4"]), whole, progress=False)
    train(resolve_config(None, [*overrides, "train.steps=2"]), broken, progress=False)
    assert main(["train", "--no-progress", "--resume", str(broken), "train.steps=4"]) == 0

    start = checkpoints.load(checkpoints.step_path(whole, 2))["objective"]["extra.criterion.W"]
    end = checkpoints.load(checkpoints.step_path(whole, 4))["objective"]["extra.criterion.W"]
    resumed = checkpoints.load(checkpoints.step_path(broken, 4))["objective"]["extra.criterion.W"]
    assert not torch.equal(start, end), "the optimiser does not step the extra term's weights"
    assert torch.equal(end, resumed), "a resumed run does not continue the extra term exactly"
    rows = read_metrics(whole / "metrics.csv")  # the term is logged beside the total
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert all(0 < float(r["extra_loss"]) < float(r["loss"]) for r in rows)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["train.extra_loss=verification"], r"train.extra_loss=verification consumes .*triplet"),
        (["train.extra_loss=tripplet"], r"for train.extra_loss \(did you mean 'triplet'\?\)"),
        (["train.extra_loss=triplet", "train.extra_loss_weight=0"], "extra_loss_weight"),
        (["train.extra_loss=triplet", "train.extra_loss_weight=nan"], "extra_loss_weight"),
        (["train.extra_loss_params={margin: 0.2}"], "train.extra_loss is none"),
    ],
)
def test_bad_extra_losses_are_one_sentence(
    digits_train: LabeledImages, overrides: list[str], match: str
) -> None:
    with pytest.raises((ConfigError, ValueError), match=match):
        config = resolve_config(None, [*SMALL, *overrides])
        build_objective(config, digits_train, build_model(config, 1).distance)


def test_the_cli_names_the_extra_loss_it_cannot_feed(tmp_path: Path, capsys) -> None:
    args = ["train", "--no-progress", "--run-dir", str(tmp_path / "run")]
    assert main([*args, "train.extra_loss=verification", "train.steps=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: train.extra_loss=verification") and "Traceback" not in err
