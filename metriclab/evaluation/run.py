"""Evaluate a trained run on the unseen classes its run folder records.

Opens the run with :func:`metriclab.runs.open_run` (never training code), scores seeded episodes,
episode files, kNN / retrieval and verification, and writes ``results.json`` with the class split
it was scored on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from metriclab.atomic import write_text
from metriclab.config import Config, ConfigError, apply_threads
from metriclab.data import TTA_VIEWS, EpisodeSet, LabeledImages, load_omniglot_runs
from metriclab.evaluation.embed import embed
from metriclab.evaluation.episodes import (
    SCORERS,
    EpisodeResult,
    Scorer,
    evaluate_episodes,
    scorer_for,
)
from metriclab.evaluation.fewshot import store_train_mean
from metriclab.evaluation.method import ScorerContext
from metriclab.evaluation.report import Report, evaluate_embeddings
from metriclab.models import SiameseNet
from metriclab.runs import Run, open_run

RESULTS = "results.json"


def run_scorer(config: Config, model: SiameseNet, context: ScorerContext | None = None) -> Scorer:
    """The episode scorer ``eval.scorer`` names; ``siamese`` is the model's learned pair head,
    a few-shot method is built from ``context`` (see :func:`scorer_context`) and the model's
    learned comparator, if it has one (``matching``, ``relation``)."""
    comparator = getattr(model, "comparator", None)  # set by build_model for model.comparator
    context = dataclasses.replace(context or ScorerContext(), comparator=comparator)
    return scorer_for(config.eval.scorer, model.logit_matrix, context=context)


def run_pair_head(model: SiameseNet) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """How the run scores an aligned pair ``(N, D)`` × ``(N, D)`` → ``(N,)`` for verification:
    its learned comparator's pair score when it was trained with one (Matching or Relation
    Networks, ``Comparator.pair_scores``), else the Siamese logit ``bias − d(a, b)``. The report
    and an exported bundle both score pairs with it."""
    comparator = getattr(model, "comparator", None)  # set by build_model for model.comparator
    return model.logits if comparator is None else comparator.pair_scores


def scorer_context(run: Run, views: torch.Tensor | None, progress: bool) -> ScorerContext:
    """What the run's scorer needs from the run: for a scorer that centres on the training-class
    mean (SimpleShot), the mean embedding of the classes it trained on, embedded as the test
    images are and stored in the run folder (``train_mean.pt``)."""
    if not SCORERS.get(run.config.eval.scorer).train_mean:
        return ScorerContext()
    fit = embed(run.model.embedding_net, run.data.fit, progress=progress, views=views)
    return ScorerContext(train_mean=store_train_mean(run.folder, fit.vectors))


def run_views(config: Config) -> torch.Tensor | None:
    """The test-time augmentation maps ``(V, 2, 3)`` of ``eval.tta_views`` when ``eval.tta`` is
    on, else None.

    The one definition of a run's embedding: evaluation and export both embed with these views.
    """
    return TTA_VIEWS.get(config.eval.tta_views)(config.data.size) if config.eval.tta else None


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


def results_json(report: Report, split: dict[str, Any]) -> str:
    """``report.to_json()`` with a ``"split"`` entry: the classes the report scored."""
    text = report.to_json().rstrip()
    if not text.endswith("}"):
        raise ValueError("a report's JSON must be one object")
    entry = json.dumps(split, indent=2).replace("\n", "\n  ")
    return f'{text[:-1].rstrip()},\n  "split": {entry}\n}}'


def check_episodes_fit(config: Config, test: LabeledImages, run_dir: Path) -> None:
    """Refuse seeded episodes that the smallest unseen class cannot fill, naming the eval key and
    the largest value that works, as a command to rerun."""
    k_shot, n_query = config.eval.k_shot, config.eval.n_query
    counts = torch.bincount(test.labels, minlength=test.num_classes)
    smallest = int(counts.argmin())
    have = int(counts[smallest])
    if have >= k_shot + n_query:
        return
    name = test.class_names[smallest]
    if have - k_shot >= 1:
        fix = f"rerun as 'metriclab eval {run_dir} eval.n_query={have - k_shot}'"
    elif have >= 2:
        fix = f"rerun as 'metriclab eval {run_dir} eval.k_shot={have - 1} eval.n_query=1'"
    else:
        fix = "one image cannot be both support and query: add images or leave the class out"
    raise ConfigError(
        f"unseen class {name!r} has only {have} image{'s' if have != 1 else ''}, fewer than "
        f"eval.k_shot + eval.n_query = {k_shot} + {n_query}; {fix} "
        "(or eval.episodes=0 to skip the seeded episodes)"
    )


def evaluate_run(
    run_dir: Path,
    json_path: Path | None = None,
    episode_files: list[Path] | None = None,
    overrides: list[str] | None = None,
    plots: bool = True,
    progress: bool = True,
    on_report: Callable[[Report], None] | None = None,
) -> Report:
    """Evaluate a trained run on its unseen classes (the test side of its recorded split).

    Scores seeded episodes drawn with the ``eval.*`` settings, every episode file of
    ``eval.episode_files`` and ``episode_files``, kNN / retrieval and verification; writes
    ``results.json`` (or ``json_path``, with the split under ``"split"``) and, with ``plots``,
    ``roc.png`` and ``embeddings.png``. ``on_report`` (e.g. printing the table) runs before any
    file is written, so an unwritable run folder does not lose the figures just computed.
    """
    run = open_run(run_dir, overrides)
    config, model, test = run.config, run.model, run.data.test
    apply_threads(config)  # the thread count the run trained with: same sums, same figures
    views = run_views(config)
    scorer = run_scorer(config, model, scorer_context(run, views, progress))
    sampled = {}
    if config.eval.episodes:
        check_episodes_fit(config, test, run_dir)
        name = f"{config.eval.n_way}-way {config.eval.k_shot}-shot (seeded)"
        sampled[name] = EpisodeSet.sample(
            test, config.eval.n_way, config.eval.k_shot, config.eval.n_query,
            config.eval.episodes, seed=config.eval.seed, within_group=config.eval.within_group,
        )  # fmt: skip
    files = [Path(f) for f in config.eval.episode_files or []] + list(episode_files or [])
    on_test, separate = _score_files(files, config, model, scorer, test, views)
    embeddings = embed(model.embedding_net, test, progress=progress, views=views)
    report = evaluate_embeddings(
        embeddings, model.distance, {**sampled, **on_test}, config.eval.pairs,
        config.eval.seed, scorer=scorer, aligned_head=run_pair_head(model),
    )  # fmt: skip
    report = dataclasses.replace(
        report,
        episodes={**report.episodes, **separate},
        views=1 if views is None else len(views),
    )
    if on_report is not None:
        on_report(report)
    write_text(json_path or run_dir / RESULTS, results_json(report, run.split_record()) + "\n")
    if plots:
        from metriclab.plots import plot_embedding_map, plot_roc  # matplotlib: only when drawing

        v = report.verification
        plot_roc(v.fpr, v.tpr, v.auc, v.eer, run_dir / "roc.png", title=config.name)
        plot_embedding_map(
            embeddings.vectors.numpy(), embeddings.labels.numpy(), test.class_names,
            run_dir / "embeddings.png", seed=config.eval.seed, title=config.name,
        )  # fmt: skip
    return report
