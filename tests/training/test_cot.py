"""COT (Chen et al. 2019) as the loop runs it, against a hand-written loop: per batch one SGD
step on cross-entropy, then one on the negative complement entropy of the same images."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metriclab.config import ConfigError, resolve_config
from metriclab.data import to_float
from metriclab.training import Trainer

OVERRIDES = [
    "train.objective=cot",
    "train.loss=cross_entropy",
    "train.optimizer=sgd",
    "train.momentum=0",
    "train.weight_decay=0",
    "train.lr=0.05",
    "train.batch_size=24",
    "train.steps=3",
    "train.amp=false",
    "train.log_every=1",
]


def complement_entropy_by_hand(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Chen et al. 2019, Eq. 3 with the reference code's 1/(N·K): mean over the batch of
    −Σ_{j≠g} P̂_j log P̂_j / K with P̂_j = ŷ_j / (1 − ŷ_g)."""
    total = logits.new_zeros(())
    for row, g in zip(logits.softmax(dim=1), labels.tolist(), strict=True):
        for j, p in enumerate(row):
            if j != g:
                q = p / (1 - row[g])
                total = total - q * torch.log(q)
    return total / (len(labels) * logits.shape[1])


def test_cot_takes_a_cross_entropy_step_then_a_complement_step(tmp_path) -> None:
    config = resolve_config(None, OVERRIDES)
    trainer = Trainer(config, tmp_path / "run", progress=False)
    net = copy.deepcopy(trainer.model.embedding_net)
    head = copy.deepcopy(trainer.objective.head)
    data = trainer.train_data
    optimizer = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=0.05)
    net.train()
    for step in range(1, 4):
        rng = np.random.default_rng([config.train.seed, step])
        positions = rng.choice(len(data), size=24, replace=False)
        images = to_float(data.images[torch.from_numpy(positions)])
        labels = data.labels[torch.from_numpy(positions)]
        for loss_of in (F.cross_entropy, lambda z, y: -complement_entropy_by_hand(z, y)):
            loss = loss_of(head(net(images)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    trainer.run()
    for ours, theirs in zip(
        trainer.model.embedding_net.parameters(), net.parameters(), strict=True
    ):
        torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(trainer.objective.head.weight, head.weight, atol=2e-5, rtol=1e-4)


def test_cot_without_the_complement_step_differs(tmp_path) -> None:
    """The complement step changes the weights (it is not a no-op)."""
    cot = Trainer(resolve_config(None, OVERRIDES), tmp_path / "a", progress=False).run()
    plain = [o.replace("train.objective=cot", "train.objective=classifier") for o in OVERRIDES]
    classifier = Trainer(resolve_config(None, plain), tmp_path / "b", progress=False).run()
    differences = [
        (a - b).abs().max().item()
        for a, b in zip(
            cot.embedding_net.parameters(), classifier.embedding_net.parameters(), strict=True
        )
    ]
    assert max(differences) > 1e-4


def test_cot_refuses_a_loss_with_its_own_class_weights(tmp_path) -> None:
    overrides = [*OVERRIDES, "train.loss=camri", "train.loss_params.margins={0: 0.3}"]
    with pytest.raises(ConfigError, match="train.objective=cot"):
        Trainer(resolve_config(None, overrides), tmp_path / "run", progress=False)
