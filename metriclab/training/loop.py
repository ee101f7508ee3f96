"""The training loop shared by every objective."""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from metriclab import checkpoints
from metriclab.atomic import write_text
from metriclab.config import (
    Config,
    ConfigError,
    apply_overrides,
    apply_threads,
    config_from_dict,
    save_config,
)
from metriclab.data import EpisodeSet, LabeledImages
from metriclab.data.augment import with_new_classes
from metriclab.evaluation import embed, evaluate_episodes
from metriclab.evaluation.episodes import SCORERS
from metriclab.models import SiameseNet
from metriclab.optim import length_is_fixed
from metriclab.plots import plot_curves
from metriclab.precision import autocast, grad_scaler
from metriclab.runs import SPLIT, RecordedSplit, split_data
from metriclab.training.auxiliary import auxiliary_head
from metriclab.training.builders import (
    build_augment,
    build_model,
    build_optimizer,
    build_scheduler,
    load_data,
    training_classes,
)
from metriclab.training.distributed import World, init_from_environment, shutdown
from metriclab.training.metrics_log import MetricsLog, read_metrics
from metriclab.training.objectives import Objective, build_objective
from metriclab.training.warmup import warmed_up, warmup_factor
from metriclab.training.whiten import whiten_run

CONFIG = "config.yaml"
#: The files ``data.skip_bad`` left out, one path a line, in the run folder.
SKIPPED = "skipped.txt"
#: The keys ``metriclab train --resume RUN key=value`` may change: how long to train, and how
#: often to log, checkpoint and validate. Everything else decides the weights of every step
#: already taken, so changing it means a new run.
RESUMABLE = (
    "train.steps",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_last",
    "train.validate_every",
    "train.patience",
)


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Progress:
    """Early-stopping state, saved in every checkpoint."""

    best_accuracy: float = -1.0
    best_step: int = 0
    bad_validations: int = 0


def _config_differences(
    saved: dict[str, Any], wanted: dict[str, Any], prefix: str = ""
) -> list[str]:
    differences = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if (
            isinstance(a, dict)
            and isinstance(b, dict)
            and key not in ("loss_params", "miner_params")
        ):
            differences += _config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            differences.append(f"{prefix}{key}: {a!r} → {b!r}")
    return differences


def resume_config(
    run_dir: Path, wanted: Config | None, overrides: list[str] | None = None
) -> Config:
    """The config of the run being resumed, with ``overrides`` (keys of :data:`RESUMABLE` only)
    applied on top of it; ``wanted`` (if given) must equal the saved config."""
    path = run_dir / CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"cannot resume {run_dir}: it has no {CONFIG}; is it a metriclab run folder?"
        )
    import yaml

    values = yaml.safe_load(path.read_text("utf-8"))
    saved = config_from_dict(values)
    if wanted is not None and wanted != saved:
        changes = _config_differences(saved.to_dict(), wanted.to_dict())
        raise ConfigError(
            f"cannot resume {run_dir} with a changed config ({'; '.join(changes)}); "
            "resume without --config/overrides or start a new --run-dir"
        )
    for override in overrides or []:
        key = override.partition("=")[0]
        if key not in RESUMABLE:
            raise ConfigError(
                f"{key} cannot change when resuming {run_dir} (only {', '.join(RESUMABLE)} "
                "can); start a new --run-dir to change it"
            )
    resumed = config_from_dict(apply_overrides(values, overrides or []))
    schedule = saved.train.schedule
    if resumed.train.steps != saved.train.steps and length_is_fixed(schedule):
        raise ConfigError(
            f"train.steps cannot change when resuming {run_dir}: its {schedule} schedule anneals "
            f"the learning rate over train.steps={saved.train.steps}; start a new --run-dir with "
            f"train.steps={resumed.train.steps}, or train with train.schedule=none or step, "
            "which can be extended"
        )
    return resumed


class StepLoss(nn.Module):
    """Model and objective as one module, so DDP sees every trainable parameter in forward."""

    def __init__(self, model: SiameseNet, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, step: int, phase: int = 0) -> tuple[torch.Tensor, int]:
        if phase:
            return self.objective.phase_loss(self.model, step, phase)
        loss, images = self.objective.loss(self.model, step)
        return loss + self.objective.auxiliary_loss() + self.objective.extra_loss(), images


class Trainer:
    """One run: builds everything from the config, then steps until done or stopped early."""

    def __init__(
        self,
        config: Config,
        run_dir: Path,
        progress: bool = True,
        world: World | None = None,
        split: RecordedSplit | None = None,
    ) -> None:
        """``split``: train on these classes (a resumed run's record); None draws the split
        from the config, as a new run does."""
        self.config, self.run_dir, self.progress = config, run_dir, progress
        self.world = world or World()
        self.rank = self.world.rank
        #: Files ``data.skip_bad`` left out (``skipped.txt``).
        self.skipped: list[str] = []
        loaded = load_data(config, skipped=self.skipped)
        data = split_data(config, split, str(run_dir / SPLIT), loaded)
        #: The class split this run trains on, written to ``split.json``.
        self.split = data.split
        self.val_data = data.validation
        augment = build_augment(config)
        # An augmentation may add training classes (recombined pen strokes); rotations and
        # mirror images then copy them too.
        self.train_data = training_classes(with_new_classes(augment, data.fit), config)
        torch.manual_seed(config.train.seed)
        self.model = build_model(config, self.train_data.channels).to(config.train.device)
        self.objective = build_objective(
            config, self.train_data, self.model.distance, augment, self.world
        ).to(config.train.device)
        # Registered on the objective, so checkpoints keep it and the model stays images-only.
        self.objective.auxiliary = auxiliary_head(augment, self.model.embedding_net)
        if self.objective.auxiliary is not None:
            self.objective.auxiliary.to(config.train.device)
        self.step_loss: nn.Module = StepLoss(self.model, self.objective)
        # One module's parameters() lists a shared parameter once: a loss may hold the model's
        # own distance (WeightedL1), which must not be stepped twice.
        parameters = list(self.step_loss.parameters())
        if self.world.size > 1:
            # Some parameters sit out some objectives (the Siamese bias under a contrastive
            # loss, for one), hence find_unused_parameters.
            self.step_loss = DistributedDataParallel(self.step_loss, find_unused_parameters=True)
        self.optimizer = build_optimizer(config, parameters, self.model.embedding_net.backbone)
        self.scheduler = build_scheduler(config, self.optimizer)
        self.scaler = grad_scaler(config.train.precision)
        self.state = Progress()
        self.step = 0
        self.val_episodes = self._validation_episodes(self.val_data)

    def _validation_episodes(self, val: LabeledImages | None) -> EpisodeSet | None:
        if val is None or not self.config.train.validate_every:
            return None
        n_way = min(self.config.eval.n_way, val.num_classes)
        return EpisodeSet.sample(
            val,
            n_way,
            self.config.eval.k_shot,
            self.config.eval.n_query,
            self.config.train.val_episodes,
            seed=self.config.eval.seed,
        )

    # -- checkpoints ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "channels": self.train_data.channels,
            "progress": vars(self.state).copy(),
            "config": self.config.to_dict(),
        }

    def restore(self, path: Path) -> None:
        state = checkpoints.load(path)
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        whitening = self.model.embedding_net.whitening
        if whitening is not None:  # a finished run's fitted map: training goes on without it
            whitening.reset()
        self.step = int(state["step"])
        self.state = Progress(**state["progress"])

    def save_step(self) -> Path:
        path = checkpoints.step_path(self.run_dir, self.step)
        checkpoints.save(path, self.snapshot())
        checkpoints.prune(self.run_dir, self.config.train.keep_last)
        return path

    # -- validation ----------------------------------------------------------------------------
    def validate(self) -> float:
        embeddings = embed(
            self.model.embedding_net, self.val_data, progress=False, device=self.config.train.device
        )
        # Validation ranks by the distance even for a pair-head scorer: cheaper, and what
        # early stopping has always selected on.
        scorer = "prototype" if SCORERS.get(self.config.eval.scorer).prototype else "nearest"
        distance = copy.deepcopy(self.model.distance).cpu()  # embeddings live on the CPU
        return evaluate_episodes(embeddings, self.val_episodes, scorer, distance=distance).mean

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> SiameseNet:
        train = self.config.train
        log = MetricsLog(self.run_dir, self.step, enabled=self.rank == 0)
        last_good = checkpoints.latest(self.run_dir)
        bar = tqdm(
            total=train.steps,
            initial=self.step,
            desc=f"train {self.config.name}",
            unit="step",
            disable=not self.progress or self.rank != 0,
            dynamic_ncols=True,
        )
        tick, images, val_accuracy = time.perf_counter(), 0, None
        self.model.train()
        self.objective.train()
        try:
            while self.step < train.steps:
                self.step += 1
                loss, used = self._one_step()
                images += used
                if not torch.isfinite(loss):
                    where = (
                        f"the last good checkpoint is {last_good}"
                        if last_good
                        else "no checkpoint was written yet"
                    )
                    raise NonFiniteLoss(
                        f"the loss became {loss.item()} at step {self.step}; {where}; "
                        "lower train.lr or set train.clip_grad"
                    )
                if self.val_episodes is not None and self.step % train.validate_every == 0:
                    val_accuracy = self._validate_and_keep_best()
                if self.step % train.log_every == 0 or self.step == train.steps:
                    elapsed = time.perf_counter() - tick
                    rate = images / elapsed if elapsed > 0 else 0.0
                    log.write(
                        self.step,
                        {
                            "loss": loss.item(),
                            "lr": self.scheduler.get_last_lr()[0]
                            * warmup_factor(self.step + 1, train.warmup),
                            "images_per_s": rate,
                            "val_accuracy": val_accuracy,
                            "extra_loss": self._extra_loss(),
                        },
                    )
                    bar.set_postfix(
                        loss=f"{loss.item():.4f}",
                        img_s=f"{rate:.0f}",
                        val=f"{val_accuracy:.3f}" if val_accuracy is not None else "-",
                    )
                    tick, images = time.perf_counter(), 0
                bar.update(1)
                stop_early = train.patience and self.state.bad_validations >= train.patience
                due = self.step % train.checkpoint_every == 0 or self.step == train.steps
                if self.rank == 0 and (due or stop_early):
                    last_good = self.save_step()
                if stop_early:
                    bar.write(
                        f"early stop at step {self.step}: no better validation accuracy "
                        f"since step {self.state.best_step}"
                    )
                    break
        finally:
            bar.close()
            log.close()
        return self.model

    def _extra_loss(self) -> float | None:
        """The weighted ``train.extra_loss`` term of the step's last batch (None without one)."""
        extra = self.objective.extra
        return None if extra is None or extra.last is None else float(extra.last)

    def _one_step(self) -> tuple[torch.Tensor, int]:
        """One optimiser step over ``train.accumulate`` batches; their mean loss, images used."""
        train = self.config.train
        self.optimizer.zero_grad(set_to_none=True)
        losses, used = [], 0
        for part in range(train.accumulate):
            # Batch index: step t of a run without accumulation draws batch t, as it always did.
            batch = (self.step - 1) * train.accumulate + part + 1
            last = part == train.accumulate - 1
            try:
                with self._no_sync(not last), autocast(train.precision, train.device):
                    loss, images = self.step_loss(batch)
            except ValueError as failure:
                # A loss refuses NaN / infinite inputs. After an update has been taken, the images
                # are the same data as before, so the embeddings overflowed: the weights diverged
                # (a learning rate far too high). Report it as the non-finite loss, with advice.
                if self.step <= 1 or "NaN" not in str(failure):
                    raise
                return torch.tensor(float("nan")), used
            if not torch.isfinite(loss):
                return loss.detach(), used + images
            scaled = loss / train.accumulate if train.accumulate > 1 else loss
            with self._no_sync(not last):
                self.scaler.scale(scaled).backward()
            losses.append(loss.detach().float())
            used += images
        self._update()
        for phase in range(1, self.objective.phases):  # further steps on this batch (COT)
            self._phase_step(phase, batch)
        self.scheduler.step()
        return torch.stack(losses).mean(), used

    def _update(self) -> None:
        """Clip (if asked), take the optimiser step at the warmed-up rate, update the scaler."""
        train = self.config.train
        if train.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for group in self.optimizer.param_groups for p in group["params"]],
                train.clip_grad,
            )
        with warmed_up(self.optimizer, self.step, train.warmup):
            self.scaler.step(self.optimizer)
        self.scaler.update()

    def _no_sync(self, skip: bool) -> contextlib.AbstractContextManager[None]:
        """DDP's ``no_sync`` while accumulating (gradients are all-reduced on the last batch)."""
        if skip and isinstance(self.step_loss, DistributedDataParallel):
            return self.step_loss.no_sync()
        return contextlib.nullcontext()

    def _phase_step(self, phase: int, batch: int) -> None:
        """One more optimiser step on ``batch`` (the step's last), for an objective with several
        phases, at the run's precision and warm-up."""
        train = self.config.train
        with autocast(train.precision, train.device):
            loss, _ = self.step_loss(batch, phase)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(
                f"the loss of phase {phase} became {loss.item()} at step {self.step}; "
                "lower train.lr or set train.clip_grad"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self._update()

    def _validate_and_keep_best(self) -> float:
        accuracy = self.validate()
        self.model.train()
        if accuracy > self.state.best_accuracy:
            self.state.best_accuracy, self.state.best_step, self.state.bad_validations = (
                accuracy,
                self.step,
                0,
            )
            if self.rank == 0:
                checkpoints.save(
                    self.run_dir / checkpoints.FOLDER / checkpoints.BEST, self.snapshot()
                )
        else:
            self.state.bad_validations += 1
        return accuracy


def train(
    config: Config | None,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    overrides: list[str] | None = None,
) -> SiameseNet:
    """Train ``config`` into ``run_dir`` (or continue the run there with ``resume=True``).

    A new run records its class split in ``split.json``. A resumed run trains on its recorded
    split with its saved config, ``overrides`` (keys of :data:`RESUMABLE`, e.g.
    ``train.steps=2000`` to train longer) applied on top. Under ``torchrun`` every rank trains
    its shard of each batch; only rank 0 writes files. With ``train.whiten`` set, the map is
    fitted on the training classes once training ends and saved into the checkpoint evaluation
    uses (:mod:`metriclab.training.whiten`); the returned model then holds that checkpoint.
    """
    if overrides and not resume:
        raise ValueError("train applies overrides only when resuming; put them in the config")
    if resume:
        config = resume_config(run_dir, config, overrides)
    elif config is None:
        raise ValueError("train needs a config unless it resumes a run")
    elif checkpoints.latest(run_dir) is not None:
        raise ConfigError(
            f"run folder {run_dir} already holds checkpoints; continue it with --resume {run_dir} "
            "or choose another --run-dir"
        )
    apply_threads(config)
    world = init_from_environment(config.train.device)
    try:
        recorded = RecordedSplit.load(run_dir) if resume else None
        trainer = Trainer(config, run_dir, progress=progress, world=world, split=recorded)
        newest = checkpoints.newest_readable(run_dir) if resume else None
        if newest is not None:
            trainer.restore(newest)
            if config.train.steps < trainer.step:
                raise ConfigError(
                    f"train.steps={config.train.steps} is below step {trainer.step}, which "
                    f"{run_dir} has already reached; give train.steps above {trainer.step}"
                )
        if world.is_main and not resume:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as failure:
                raise OSError(
                    f"cannot create run folder {run_dir}: {failure.strerror}; choose another --run-dir"
                ) from None
            save_config(config, run_dir / CONFIG)
            trainer.split.save(run_dir)
        elif world.is_main and overrides:
            save_config(config, run_dir / CONFIG)  # what the run now trains to
        if world.is_main and trainer.skipped:
            write_text(run_dir / SKIPPED, "".join(f"{origin}\n" for origin in trainer.skipped))
        model = trainer.run()
        if world.is_main and config.train.whiten != "none":
            whiten_run(model, run_dir, trainer.train_data, config)
        if world.is_main:
            plot_curves(read_metrics(run_dir / "metrics.csv"), run_dir / "curves.png", config.name)
    finally:
        shutdown(world)
    return model
