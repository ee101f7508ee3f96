"""Training from pretrained weights through the config: model.weights, model.freeze_bn,
train.head_lr_scale and train.freeze_backbone_steps."""

from __future__ import annotations

from pathlib import Path

import torch

from metriclab.config import resolve_config
from metriclab.models import backbone
from metriclab.runs import open_run
from metriclab.training import Trainer, train


def _weights(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(123)
    state = backbone("conv4", 1).state_dict()
    for name, value in state.items():
        if name.endswith("running_var"):
            value.uniform_(0.5, 2.0)  # statistics a frozen BN must keep
    file = tmp_path / "pretrained.pt"
    torch.save(state, file)
    return file, state


def test_a_run_starts_from_the_weights_and_keeps_a_frozen_backbone(tmp_path: Path) -> None:
    file, state = _weights(tmp_path)
    overrides = [
        "train.batch_size=16",
        "train.steps=3",
        "train.log_every=1",
        f"model.weights={file}",
        "model.freeze_bn=true",
        "train.head_lr_scale=10",
        "train.freeze_backbone_steps=5",
    ]
    trainer = Trainer(resolve_config(None, overrides), tmp_path / "run", progress=False)
    start = trainer.model.embedding_net.backbone.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(start[key], value)
    head_before = trainer.model.embedding_net.head.weight.detach().clone()
    roles = {g["role"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert roles == {"backbone": 1e-3, "head": 1e-2}
    trainer.run()
    # Three of the five frozen steps: the backbone, statistics included, is the file's.
    for key, value in trainer.model.embedding_net.backbone.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert not torch.equal(trainer.model.embedding_net.head.weight, head_before)


def test_a_finished_run_evaluates_without_the_weights_file(tmp_path: Path) -> None:
    file, _ = _weights(tmp_path)
    config = resolve_config(None, ["train.batch_size=16", "train.steps=2", f"model.weights={file}"])
    trained = train(config, tmp_path / "run", progress=False)
    file.unlink()
    run = open_run(tmp_path / "run")
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(run.model.state_dict()[key], value)


def test_the_shipped_cub_config_trains_and_evaluates_on_a_miniature_tree(tmp_path: Path) -> None:
    from torchvision import models

    from metriclab.evaluation.run import evaluate_run
    from tests.data.test_dml import write_cub

    root = write_cub(tmp_path / "cub", picked=(*range(1, 9), *range(101, 105)), per_class=4)
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(models.resnet18(weights=None).state_dict(), weights)
    overrides = [
        f"data.path={root}",
        "data.size=32",
        "model.backbone=torchvision:resnet18",
        f"model.weights={weights}",
        "model.dim=16",
        "train.steps=2",
        "train.classes_per_batch=4",
        "train.samples_per_class=2",
        "eval.n_way=2",
        "eval.n_query=3",
        "eval.episodes=10",
        "eval.pairs=20",
    ]
    config = resolve_config("cub-ms", overrides)
    train(config, tmp_path / "run", progress=False)
    report = evaluate_run(tmp_path / "run", plots=False, progress=False)
    assert report.num_classes == 4
    assert set(report.recall) >= {1, 2, 4, 8}
