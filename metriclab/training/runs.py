"""Run folders: load a trained model back, and evaluate it on its unseen classes."""

from __future__ import annotations

from pathlib import Path

from metriclab.atomic import write_text
from metriclab.config import Config, config_from_dict
from metriclab.data import EpisodeSet
from metriclab.evaluation import Report, evaluate_model
from metriclab.models import SiameseNet
from metriclab.training import checkpoints
from metriclab.training.builders import build_data, build_model

RESULTS = "results.json"


def load_run(run_dir: Path) -> tuple[Config, SiameseNet]:
    """The config and trained model of a run folder (best checkpoint if any, else the newest)."""
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run folder {run_dir} does not exist; pass a folder made by 'metriclab train'"
        )
    state = checkpoints.load(checkpoints.for_evaluation(run_dir))
    config = config_from_dict(state["config"])
    train_data, _ = build_data(config)
    model = build_model(config, train_data.channels)
    model.load_state_dict(state["model"])
    return config, model.eval()


def evaluate_run(run_dir: Path, json_path: Path | None = None, progress: bool = True) -> Report:
    """Evaluate a trained run on its unseen classes; write ``results.json`` (or ``json_path``)."""
    config, model = load_run(run_dir)
    _, test = build_data(config)
    episode_sets = {
        f"{config.eval.n_way}-way {config.eval.k_shot}-shot": EpisodeSet.sample(
            test,
            config.eval.n_way,
            config.eval.k_shot,
            config.eval.n_query,
            config.eval.episodes,
            seed=config.eval.seed,
        )
    }
    report = evaluate_model(
        model.embedding_net,
        model.distance,
        test,
        episode_sets,
        pairs=config.eval.pairs,
        seed=config.eval.seed,
        aligned_head=model.logits,
        matrix_head=model.logit_matrix,
        progress=progress,
    )
    write_text(json_path or run_dir / RESULTS, report.to_json() + "\n")
    return report
