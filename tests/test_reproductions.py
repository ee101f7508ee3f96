"""The reproduction scripts' shared core (scripts/_classification.py) on toy sizes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import _classification as core

import metriclab as ml


@pytest.fixture(scope="module")
def digits() -> ml.data.LabeledImages:
    return ml.data.digits(size=16)


def test_stratified_take_counts_and_disjointness() -> None:
    labels = np.repeat(np.arange(3), 10)
    counts = np.array([2, 5, 10])
    taken, rest = core.stratified_take(labels, counts, np.random.default_rng(0), np.arange(30))
    assert np.bincount(labels[taken], minlength=3).tolist() == [2, 5, 10]
    assert np.intersect1d(taken, rest).size == 0
    assert sorted(np.concatenate([taken, rest]).tolist()) == list(range(30))
    with pytest.raises(ValueError, match="class 0"):
        core.stratified_take(labels, np.array([11, 0, 0]), np.random.default_rng(0), np.arange(30))


def test_long_tail_counts_follow_cui_profile() -> None:
    # floor(100 · 100^(−c/9)) by hand: 100, 59.9, 35.9, 21.5, 12.9, 7.7, 4.6, 2.8, 1.7, 1.0
    assert core.long_tail_counts(100, 10, 100.0).tolist() == [100, 59, 35, 21, 12, 7, 4, 2, 1, 1]
    assert core.long_tail_counts(100, 10, 10.0).tolist()[::9] == [100, 10]


class _Fixed(nn.Module):
    """A 'network' that returns preset scores, so the predictions are known."""

    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__()
        self.scores = scores

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.scores


def test_evaluate_matches_hand_counted_recall(digits: ml.data.LabeledImages) -> None:
    positions = np.concatenate([np.flatnonzero(digits.labels.numpy() == c)[:4] for c in (0, 1)])
    # class 0: predictions 0, 0, 1, 1 → recall 1/2; class 1: predictions 1, 1, 1, 0 → recall 3/4
    predicted = torch.tensor([0, 0, 1, 1, 1, 1, 1, 0])
    scores = nn.functional.one_hot(predicted, 10).float()
    objective = core.Objective(10, nn.CrossEntropyLoss(), lambda z: z)
    result = core.evaluate(_Fixed(scores), objective, digits, positions)
    assert result.accuracy == pytest.approx(5 / 8)
    assert result.recall[:2] == pytest.approx((0.5, 0.75))
    assert result.balanced_accuracy == pytest.approx(0.625)


@pytest.mark.parametrize("method", list(core.METHODS))
def test_every_method_trains_and_scores(digits: ml.data.LabeledImages, method: str) -> None:
    labels = digits.labels.numpy()
    rng = np.random.default_rng(0)
    train, test = core.stratified_take(labels, np.full(10, 10), rng, np.arange(len(labels)))
    settings = core.Settings(steps=25, batch_size=32, lr=1e-2, width=0.25, embedding_dim=8)
    result = core.run(digits, train, test[::10], method, 0, settings, important=3)
    # Chance is 10 %; every method reached 30-80 % here, an untrained or broken one stays near 10.
    assert 0.2 < result.accuracy <= 1.0 and math.isfinite(result.accuracy)
    assert 0.0 <= result.balanced_accuracy <= 1.0
    assert len(result.recall) == 10
    assert all(0.0 <= r <= 1.0 for r in result.recall)
