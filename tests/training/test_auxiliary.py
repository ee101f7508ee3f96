"""The auxiliary head: it reads the training batch's feature map, trains the backbone toward the
augmentation's targets, lives on the objective (checkpoints keep it) and never in the model."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from metriclab.config import ConfigError, resolve_config
from metriclab.models import EmbeddingNet
from metriclab.models.backbones import backbone
from metriclab.training.auxiliary import AuxiliaryHead, auxiliary_head
from tests.data.synthetic import item_ids, write_zip


class Targets:
    """A stand-in augmentation: fixed seeded maps per item, the second channel ink-weighted."""

    auxiliary = 2.0
    auxiliary_channels = 2

    def auxiliary_targets(
        self, items: Sequence[str], side: int
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        maps = torch.stack(
            [
                torch.rand(2, side, side, generator=torch.Generator().manual_seed(len(i)))
                for i in items
            ]
        )
        known = torch.tensor([not i.startswith("x") for i in items])
        return maps, known, (1,)


def test_the_head_reads_the_last_training_batch_and_trains_the_backbone() -> None:
    net = EmbeddingNet(backbone("conv4_nopool", 1), dim=8, image_size=28)
    head = auxiliary_head(Targets(), net)
    assert isinstance(head, AuxiliaryHead) and head.side == 3 and head.weight == 2.0
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    items = ["a", "bb", "ccc", "x"]
    net(images)
    loss = head.loss(items)
    loss.backward()
    # By hand: weighted squared error per item, mean over the items with targets, × weight.
    features = net.backbone[:-1](images)  # the map before the backbone's Flatten
    targets, _, _ = Targets().auxiliary_targets(items, 3)
    error = (head.conv(features) - targets).square()
    weights = torch.stack([torch.ones_like(targets[:, 0]), targets[:, 0]], 1)
    per_item = (error * weights).flatten(1).sum(1) / weights.flatten(1).sum(1)
    torch.testing.assert_close(loss, 2.0 * per_item[:3].mean())
    assert all(p.grad is not None for p in net.backbone.parameters())
    assert head.conv.weight.grad is not None and net.head.weight.grad is None
    with pytest.raises(RuntimeError, match="saw no training batch"):
        head.loss(items)  # each batch feeds one loss
    with torch.no_grad():
        net(images)  # evaluation passes are not kept
    with pytest.raises(RuntimeError, match="saw no training batch"):
        head.loss(items)


class GlobalMean(nn.Module):
    """A backbone end that pools to ``(B, F)`` without a Flatten: no map to read."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_no_head_without_a_weight_and_flat_backbones_are_refused() -> None:
    net = EmbeddingNet(backbone("conv4_nopool", 1), dim=8, image_size=28)
    assert auxiliary_head(object(), net) is None
    flat = EmbeddingNet(nn.Sequential(nn.Conv2d(1, 4, 3), GlobalMean()), dim=8, image_size=28)
    with pytest.raises(ConfigError, match="needs a backbone with a square feature map"):
        auxiliary_head(Targets(), flat)


def test_training_with_an_auxiliary_stroke_target(tmp_path: Path) -> None:
    from metriclab.training.loop import Trainer

    ids = item_ids()
    with zipfile.ZipFile(tmp_path / "strokes.zip", "w") as out:
        for n, item in enumerate(ids):
            points = np.random.default_rng(n).uniform(20, 85, size=(4, 2))
            lines = ["START", *(f"{x},{-y},0" for x, y in points), "BREAK"]
            out.writestr(f"strokes/{item[:-4]}.txt", "\n".join(lines) + "\n")
    write_zip(tmp_path / "images.zip", "images")
    overrides = [
        "data.name=omniglot", f"data.path=[{tmp_path / 'images.zip'}]", "data.size=28",
        "data.test_groups=[Gamma]", "data.rotations=[90]", "data.augment=strokes",
        f"data.augment_params.strokes=[{tmp_path / 'strokes.zip'}]", "data.augment_params.p=0",
        "train.objective=triplet", "train.loss=triplet", "train.classes_per_batch=3",
        "train.samples_per_class=2", "train.steps=2", "train.checkpoint_every=2",
        "model.backbone=conv4_nopool", "model.dim=8", "model.distance=l2", "train.threads=1",
        "eval.n_way=2", "eval.episodes=5", "eval.pairs=10",
    ]  # fmt: skip
    plain = Trainer(resolve_config(None, overrides), tmp_path / "plain", progress=False)
    assert plain.objective.auxiliary is None
    config = resolve_config(None, [*overrides, "data.augment_params.auxiliary=1.0"])
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert trainer.objective.auxiliary is not None
    # The same step costs more with the auxiliary term, by exactly the head's loss.
    torch.manual_seed(0)
    with_aux, _ = trainer.step_loss(0)
    items = list(trainer.objective._auxiliary_items)
    assert len(items) == 6 and all(not i.startswith("Gamma/") for i in items)
    base, _ = trainer.objective.loss(trainer.model, 0)
    torch.testing.assert_close(with_aux - base, trainer.objective.auxiliary.loss(items))
    trainer.run()
    state = trainer.snapshot()  # what every checkpoint of the run holds
    assert any(key.startswith("auxiliary.conv") for key in state["objective"])
    assert not any("auxiliary" in key for key in state["model"])
