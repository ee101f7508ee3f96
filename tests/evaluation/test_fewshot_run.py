"""A trained run evaluated with few-shot methods by name: SimpleShot's training-class mean is
stored with the run, and results.json says inductive or transductive."""

import json

import torch

from metriclab.cli import main
from metriclab.data import EpisodeSet
from metriclab.evaluation import embed, evaluate_episodes
from metriclab.evaluation.fewshot import TRAIN_MEAN, SimpleShot, load_train_mean
from metriclab.evaluation.run import evaluate_run
from metriclab.runs import open_run


def test_eval_run_with_simpleshot_and_tim(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    overrides = ["train.steps=5", "train.batch_size=16", "eval.episodes=20", "eval.pairs=50"]
    assert main(["train", "--no-progress", "--run-dir", str(run), *overrides]) == 0
    report = evaluate_run(run, overrides=["eval.scorer=simpleshot"], plots=False, progress=False)
    results = json.loads((run / "results.json").read_text())
    seeded = results["episodes"]["5-way 1-shot (seeded)"]
    assert seeded["inference"] == "inductive" and seeded["scorer"].startswith("simpleshot")
    # the stored mean is the mean embedding of the classes the run trained on
    opened = open_run(run)
    fit = embed(opened.model.embedding_net, opened.data.fit, progress=False)
    mean = load_train_mean(run)
    assert (run / TRAIN_MEAN).is_file() and mean is not None
    torch.testing.assert_close(mean, fit.vectors.mean(0), atol=1e-5, rtol=1e-5)
    # and the reported accuracy is SimpleShot's around exactly that mean
    episodes = EpisodeSet.sample(opened.data.test, 5, 1, 15, 20, seed=0)
    test = embed(opened.model.embedding_net, opened.data.test, progress=False)
    direct = evaluate_episodes(test, episodes, SimpleShot(mean))
    assert report.episodes["5-way 1-shot (seeded)"].mean == direct.mean
    assert main(["eval", str(run), "--no-progress", "--no-plots", "eval.scorer=tim"]) == 0
    assert "(transductive)" in capsys.readouterr().out
    results = json.loads((run / "results.json").read_text())
    assert results["episodes"]["5-way 1-shot (seeded)"]["inference"] == "transductive"
