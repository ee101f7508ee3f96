"""Episodic training of Matching and Relation Networks: the step's loss against a hand-computed
one from the paper, the loss falls on digits, and the CLI trains and evaluates with each."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from metriclab.cli import main
from metriclab.config import ConfigError, resolve_config
from metriclab.data import EpisodeSet, to_float
from metriclab.evaluation import embed, evaluate_episodes
from metriclab.evaluation.fewshot import ComparatorScorer
from metriclab.runs import open_run
from metriclab.training import Trainer

COMMON = ["train.n_way=5", "train.k_shot=1", "train.n_query=3", "train.log_every=1"]
KINDS = {
    "matching": ["train.objective=matching", "model.comparator=matching"],
    "matching_fce": [
        "train.objective=matching",
        "model.comparator=matching",
        "model.comparator_params.fce=true",
    ],
    "relation": ["train.objective=relation", "model.comparator=relation"],
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_step_loss_is_the_papers_loss_on_the_drawn_episode(kind: str, tmp_path) -> None:
    config = resolve_config(None, [*KINDS[kind], *COMMON, "train.steps=1"])
    trainer = Trainer(config, tmp_path / "run", progress=False)
    model, objective = trainer.model.eval(), trainer.objective
    loss, used = objective.loss(model, 1)
    rng = np.random.default_rng([config.train.seed, 1])
    _, items = objective.draw.draw(rng, 1)
    positions = torch.from_numpy(np.concatenate([items[0, :, :1].ravel(), items[0, :, 1:].ravel()]))
    with torch.no_grad():
        vectors = model.embedding_net(to_float(trainer.train_data.images[positions]))
        scores = model.comparator(vectors[:5].view(1, 5, 1, -1), vectors[5:].unsqueeze(0))[0]
    assert used == 20
    expected = 0.0
    for j in range(15):  # queries are class-major: query j belongs to class j // 3
        truth = j // 3
        if kind == "relation":  # Sung et al. Eq. 3: Σ (r − 1[y = n])², here averaged
            expected += sum((scores[j, n] - float(n == truth)) ** 2 for n in range(5)) / 75
        else:  # Vinyals et al.: −log P(y | x̂, S)
            expected -= scores[j, truth] / 15
    torch.testing.assert_close(
        loss.detach(), torch.as_tensor(expected).float(), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("kind", ["matching", "relation"])
def test_training_lowers_the_loss_on_digits(kind: str, tmp_path) -> None:
    Trainer(resolve_config(None, [*KINDS[kind], *COMMON, "train.steps=30"]), tmp_path / "r").run()
    losses = np.loadtxt(tmp_path / "r" / "metrics.csv", delimiter=",", skiprows=1, usecols=1)
    assert losses[-10:].mean() < 0.7 * losses[:10].mean()
    if kind == "relation":  # below 0.16, the MSE of query-blind scores 1/N (N = 5)
        assert losses[-10:].mean() < 0.16


def test_objectives_refuse_a_loss_or_a_missing_comparator(tmp_path) -> None:
    with pytest.raises(ConfigError, match="set model.comparator=relation"):
        Trainer(resolve_config(None, ["train.objective=relation"]), tmp_path / "a")
    overrides = [*KINDS["matching"], "train.loss=contrastive"]
    with pytest.raises(ConfigError, match="drop train.loss=contrastive"):
        Trainer(resolve_config(None, overrides), tmp_path / "b")
    with pytest.raises(ConfigError, match="model.comparator"):
        resolve_config(None, ["model.comparator=matchin"])


@pytest.mark.parametrize("kind", ["matching_fce", "relation"])
def test_cli_trains_and_evaluates_with_the_comparator(kind: str, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    scorer = "eval.scorer=" + kind.removesuffix("_fce")
    small = ["train.steps=5", "eval.episodes=20", "eval.pairs=50", scorer]
    assert main(["train", "--no-progress", "--run-dir", str(run), *KINDS[kind], *small]) == 0
    assert main(["eval", str(run), "--no-progress", "--no-plots"]) == 0
    seeded = json.loads((run / "results.json").read_text())["episodes"]["5-way 1-shot (seeded)"]
    assert seeded["inference"] == "inductive" and "networks" in seeded["scorer"]
    # the reported accuracy is the reopened run's comparator on the same episodes
    opened = open_run(run)
    test = embed(opened.model.embedding_net, opened.data.test, progress=False)
    episodes = EpisodeSet.sample(opened.data.test, 5, 1, 15, 20, seed=0)
    direct = evaluate_episodes(test, episodes, ComparatorScorer(opened.model.comparator))
    assert seeded["accuracy"] == pytest.approx(direct.mean)
    capsys.readouterr()
    other = "eval.scorer=relation" if kind != "relation" else "eval.scorer=matching"
    assert main(["eval", str(run), "--no-progress", "--no-plots", other]) == 2
    assert "error: scorer" in capsys.readouterr().err
