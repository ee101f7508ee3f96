"""The training loop, run folders and checkpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from metriclab.atomic import atomic_write, write_text
from metriclab.config import Config, ConfigError, config_from_dict, save_config
from metriclab.data import EpisodeSet, LabeledImages, PairSampler, digits, to_float
from metriclab.distances import build_distance
from metriclab.evaluation import Report, evaluate_model
from metriclab.losses import VerificationLoss
from metriclab.models import EmbeddingNet, SiameseNet, backbone

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.yaml"
RESULTS = "results.json"

DATA_SETS = ("digits",)
OBJECTIVES = ("siamese",)
LOSSES = ("verification",)


def build_data(config: Config) -> tuple[LabeledImages, LabeledImages]:
    """The (train, test) class-disjoint split a config describes."""
    if config.data.name not in DATA_SETS:
        raise ConfigError(
            f"unknown data set {config.data.name!r}; choose one of {', '.join(DATA_SETS)}"
        )
    data = digits(size=config.data.size)
    train, test = data.split_classes(config.data.test_fraction, seed=config.data.split_seed)
    if config.eval.n_way > test.num_classes:
        raise ConfigError(
            f"eval.n_way={config.eval.n_way} exceeds the {test.num_classes} unseen classes; "
            f"choose eval.n_way between 2 and {test.num_classes}"
        )
    return train, test


def build_model(config: Config, in_channels: int) -> SiameseNet:
    """The Siamese network a config describes (embedding net + distance head)."""
    embedding_net = EmbeddingNet(
        backbone(config.model.backbone, in_channels),
        dim=config.model.dim,
        in_channels=in_channels,
        image_size=config.data.size,
        normalize=config.model.normalize,
    )
    return SiameseNet(embedding_net, build_distance(config.model.distance, config.model.dim))


def _check_training_choices(config: Config) -> None:
    if config.train.objective not in OBJECTIVES:
        raise ConfigError(
            f"unknown objective {config.train.objective!r}; choose one of {', '.join(OBJECTIVES)}"
        )
    if config.train.loss not in LOSSES:
        raise ConfigError(f"unknown loss {config.train.loss!r}; choose one of {', '.join(LOSSES)}")


def save_checkpoint(path: Path, model: torch.nn.Module, config: Config, step: int) -> None:
    """Write the model weights, the config and the step atomically."""
    state = {"model": model.state_dict(), "config": config.to_dict(), "step": step}
    with atomic_write(path, binary=True) as handle:
        torch.save(state, handle)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: tensors and plain values, never code."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train a run there first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as failure:  # torch raises several types for bad or unsafe files
        raise ValueError(
            f"cannot load checkpoint {path}: it is truncated, corrupt or holds pickled code "
            f"({type(failure).__name__})"
        ) from None


def default_run_dir(config: Config) -> Path:
    return Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(config: Config, run_dir: Path, progress: bool = True) -> SiameseNet:
    """Train the Siamese verification objective; leave ``config.yaml`` and a checkpoint in ``run_dir``."""
    _check_training_choices(config)
    train_data, _ = build_data(config)
    torch.manual_seed(config.train.seed)
    model = build_model(config, train_data.channels).to(config.train.device)
    loss_fn = VerificationLoss()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
    )
    sampler = PairSampler(
        train_data.labels, config.train.batch_size, config.train.steps, seed=config.train.seed
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / CONFIG)
    model.train()
    bar = tqdm(sampler, desc=f"train {config.name}", disable=not progress, unit="step")
    for step, (first, second, same) in enumerate(bar, start=1):
        x1 = to_float(train_data.images[first]).to(config.train.device)
        x2 = to_float(train_data.images[second]).to(config.train.device)
        loss = loss_fn(model(x1, x2), torch.from_numpy(same).to(config.train.device))
        if not torch.isfinite(loss):
            raise RuntimeError(f"the loss became non-finite at step {step}; lower train.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    save_checkpoint(run_dir / CHECKPOINT, model, config, config.train.steps)
    return model


def load_run(run_dir: Path) -> tuple[Config, SiameseNet]:
    """The config and trained model of a run folder."""
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run folder {run_dir} does not exist; pass a folder made by 'metriclab train'"
        )
    state = load_checkpoint(run_dir / CHECKPOINT)
    config = config_from_dict(state["config"])
    train_data, _ = build_data(config)
    model = build_model(config, train_data.channels)
    model.load_state_dict(state["model"])
    return config, model


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
