"""Run folders: load a trained model back, and evaluate it on its unseen classes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from metriclab.atomic import write_text
from metriclab.config import Config, apply_overrides, config_from_dict
from metriclab.data import EpisodeSet, LabeledImages, load_omniglot_runs, tta_views
from metriclab.evaluation import (
    EpisodeResult,
    Report,
    Scorer,
    embed,
    evaluate_embeddings,
    evaluate_episodes,
)
from metriclab.models import SiameseNet
from metriclab.plots import plot_embedding_map, plot_roc
from metriclab.training import checkpoints
from metriclab.training.builders import build_data, build_model

RESULTS = "results.json"


def load_run(run_dir: Path, overrides: list[str] | None = None) -> tuple[Config, SiameseNet]:
    """The config and trained model of a run folder (best checkpoint if any, else the newest).

    ``overrides`` (``data.*`` / ``eval.*`` only) point evaluation at another copy of the data
    or change its episodes without touching the trained model.
    """
    config, model, _ = open_run(run_dir, overrides)
    return config, model


def open_run(
    run_dir: Path, overrides: list[str] | None = None
) -> tuple[Config, SiameseNet, tuple[LabeledImages, LabeledImages]]:
    """The config, the trained model and the (train, test) data of a run, the data loaded once."""
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run folder {run_dir} does not exist; pass a folder made by 'metriclab train'"
        )
    state = checkpoints.load(checkpoints.for_evaluation(run_dir))
    for override in overrides or []:
        if not override.startswith(("data.", "eval.")):
            raise ValueError(
                f"evaluation can only override data.* and eval.* keys, got {override!r}; "
                "train a new run to change the model or training"
            )
    config = config_from_dict(apply_overrides(state["config"], overrides or []))
    data = build_data(config)
    channels, trained = data[0].channels, state.get("channels")
    if trained is not None and trained != channels:
        raise ValueError(
            f"run {run_dir} was trained on {trained}-channel images but the data "
            f"({config.data.name}) has {channels}; evaluate on {trained}-channel data "
            f"(data.channels={trained})"
        )
    model = build_model(config, in_channels=channels)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as failure:
        raise ValueError(
            f"the checkpoint of {run_dir} does not fit the model its config describes "
            f"({str(failure).splitlines()[0]}); was the config edited after training?"
        ) from None
    return config, model.eval(), data


def _scorer(config: Config, model: SiameseNet) -> Scorer:
    return model.logit_matrix if config.eval.scorer == "siamese" else config.eval.scorer


def _views(config: Config) -> torch.Tensor | None:
    """The test-time augmentation maps when ``eval.tta`` is on, else None."""
    return tta_views(config.data.size) if config.eval.tta else None


def _score_files(
    files: list[Path],
    config: Config,
    model: SiameseNet,
    scorer: Scorer,
    test: LabeledImages,
    views: torch.Tensor | None,
) -> tuple[dict[str, EpisodeSet], dict[str, EpisodeResult]]:
    """Episode files on the test data, and Omniglot one-shot runs scored on their own images."""
    on_test: dict[str, EpisodeSet] = {}
    separate: dict[str, EpisodeResult] = {}
    for path in files:
        episodes = EpisodeSet.load(path)
        name = path.stem
        if episodes.meta.get("source") == "omniglot-runs":
            _, images = load_omniglot_runs(Path(episodes.meta["root"]), size=config.data.size)
            vectors = embed(model.embedding_net, images, progress=False, views=views)
            separate[name] = evaluate_episodes(
                vectors,
                episodes,
                scorer,
                distance=model.distance if isinstance(scorer, str) else None,
            )
        else:
            on_test[name] = EpisodeSet.load(path, data=test)
    return on_test, separate


def evaluate_run(
    run_dir: Path,
    json_path: Path | None = None,
    episode_files: list[Path] | None = None,
    overrides: list[str] | None = None,
    plots: bool = True,
    progress: bool = True,
) -> Report:
    """Evaluate a trained run on its unseen classes.

    Scores seeded episodes drawn with the ``eval.*`` settings, every episode file of
    ``eval.episode_files`` and ``episode_files``, kNN / retrieval and verification; writes
    ``results.json`` (or ``json_path``) and, with ``plots``, ``roc.png`` and ``embeddings.png``.
    """
    config, model, (_, test) = open_run(run_dir, overrides)
    scorer = _scorer(config, model)
    sampled = {}
    if config.eval.episodes:
        name = f"{config.eval.n_way}-way {config.eval.k_shot}-shot (seeded)"
        sampled[name] = EpisodeSet.sample(
            test, config.eval.n_way, config.eval.k_shot, config.eval.n_query,
            config.eval.episodes, seed=config.eval.seed, within_group=config.eval.within_group,
        )  # fmt: skip
    files = [Path(f) for f in config.eval.episode_files or []] + list(episode_files or [])
    views = _views(config)
    on_test, separate = _score_files(files, config, model, scorer, test, views)
    embeddings = embed(model.embedding_net, test, progress=progress, views=views)
    report = evaluate_embeddings(
        embeddings, model.distance, {**sampled, **on_test}, config.eval.pairs,
        config.eval.seed, scorer=scorer, aligned_head=model.logits,
    )  # fmt: skip
    report = dataclasses.replace(
        report,
        episodes={**report.episodes, **separate},
        views=1 if views is None else len(views),
    )
    write_text(json_path or run_dir / RESULTS, report.to_json() + "\n")
    if plots:
        v = report.verification
        plot_roc(v.fpr, v.tpr, v.auc, v.eer, run_dir / "roc.png")
        plot_embedding_map(
            embeddings.vectors.numpy(), embeddings.labels.numpy(), test.class_names,
            run_dir / "embeddings.png", seed=config.eval.seed,
        )  # fmt: skip
    return report
