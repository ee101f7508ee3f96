"""Training objectives: each draws its own batch for a step and returns the loss.

Every objective derives its randomness from ``(seed, step)`` alone, so step ``t`` sees the same
batch whether the run was interrupted or not: resuming from a checkpoint continues exactly.
Under DistributedDataParallel every rank draws the same global batch and embeds only its shard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metriclab.config import Config, ConfigError
from metriclab.data import ClassTable, LabeledImages, PairSampler, to_float
from metriclab.data.samplers import ClassDraw
from metriclab.distances import Distance
from metriclab.losses import ContrastiveLoss, TripletLoss
from metriclab.losses.registry import build_loss, build_miner, loss_parameters
from metriclab.models import SiameseNet
from metriclab.training.distributed import World

#: uint8 batch ``(B, C, H, W)`` and a generator → augmented uint8 batch of the same shape.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

OBJECTIVES = ("siamese", "triplet", "episodic", "classifier")


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of one training step: a pure function of the seed and the step."""
    return np.random.default_rng([seed, step])


@dataclass(frozen=True)
class Setup:
    """What every objective is built from: the training images, the config, the per-sample
    augmentation, this process's place among the ranks and the model's distance."""

    data: LabeledImages
    config: Config
    augment: Augment | None
    world: World
    distance: Distance


class Objective(nn.Module):
    """Base: holds the training images and turns positions into network inputs."""

    def __init__(self, setup: Setup) -> None:
        super().__init__()
        self.data = setup.data
        self.seed = setup.config.train.seed
        self.device = torch.device(setup.config.train.device)
        self.augment = setup.augment
        self.world = setup.world

    def embed(
        self, model: SiameseNet, positions: np.ndarray, rng: np.random.Generator
    ) -> torch.Tensor:
        """Embeddings ``(B, D)`` of the global batch ``positions``, in order.

        Augmentation is drawn for the whole batch (so every rank, and a single process, sees
        the same images); this rank embeds its shard and gathers the rest.
        """
        batch = self.data.images[torch.from_numpy(positions)]
        if self.augment is not None:
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            batch = self.augment(batch, generator)
        local = torch.from_numpy(self.world.shard(np.arange(len(positions))))
        inputs = to_float(batch[local]).to(self.device, non_blocking=True)
        return self.world.gather(model.embedding_net(inputs))

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        """Undo DDP's gradient averaging: each rank's backward covers only its own shard."""
        return loss * self.world.size if self.world.size > 1 else loss

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        """The loss of ``step`` and the number of images it consumed."""
        raise NotImplementedError


class SiameseObjective(Objective):
    """Balanced same/different pairs; Koch's verification loss on SiameseNet logits.

    ``train.loss``: ``verification`` (BCE on ``b − d``) or a loss taking ``(e1, e2, same)``
    such as ``contrastive`` (Hadsell et al. 2006).
    """

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        data, config, distance = setup.data, setup.config, setup.distance
        self.pairs = PairSampler(
            data.labels,
            config.train.batch_size,
            batches=1,
            seed=self.seed,
            groups=data.groups if config.train.within_group else None,
            group_names=data.group_names,
        )
        self.batch_size = config.train.batch_size
        self.criterion = build_criterion(config, distance)
        self.on_logits = config.train.loss == "verification"

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        rng = step_rng(self.seed, step)
        first, second, same = self.pairs.draw(rng, self.batch_size)
        embeddings = self.embed(model, np.concatenate([first, second]), rng)
        e1, e2 = embeddings.split(len(first))
        target = torch.from_numpy(same).to(self.device)
        if self.on_logits:
            loss = self.criterion(model.logits(e1, e2), target)
        else:
            loss = self.criterion(e1, e2, target)
        return self.scaled(loss), 2 * len(first)


class EpisodicObjective(Objective):
    """Prototypical loss over one N-way K-shot episode per step (Snell et al. 2017).

    Logits are ``−d(query, prototype)`` with the model's distance (squared L2 in the paper);
    the loss is cross-entropy over the N classes of the episode.
    """

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        data, config = setup.data, setup.config
        self.n_way, self.k_shot, self.n_query = (
            config.train.n_way,
            config.train.k_shot,
            config.train.n_query,
        )
        # Built (and validated, naming short classes) once; each step then draws one episode,
        # from a single group (alphabet) when train.within_group is set.
        self.draw = ClassDraw.build(
            data.labels,
            self.n_way,
            self.k_shot + self.n_query,
            ("train.n_way", "train.k_shot + train.n_query"),
            groups=data.groups if config.train.within_group else None,
            class_names=data.class_names,
            group_names=data.group_names,
        )

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        rng = step_rng(self.seed, step)
        _, items = self.draw.draw(rng, 1)  # (1, N, K + Q)
        support, query = items[0, :, : self.k_shot], items[0, :, self.k_shot :]
        positions = np.concatenate([support.ravel(), query.ravel()])
        embeddings = self.embed(model, positions, rng)
        n_support = self.n_way * self.k_shot
        prototypes = embeddings[:n_support].unflatten(0, (self.n_way, self.k_shot)).mean(1)
        logits = -model.distance.matrix(embeddings[n_support:], prototypes)
        target = torch.arange(self.n_way, device=logits.device).repeat_interleave(self.n_query)
        return self.scaled(F.cross_entropy(logits, target)), len(positions)


class TripletObjective(Objective):
    """P classes × K images per batch; a loss over ``(embeddings, labels)`` with in-batch mining."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        data, config, distance = setup.data, setup.config, setup.distance
        self.table = ClassTable.from_labels(data.labels)
        self.classes_per_batch = config.train.classes_per_batch
        self.samples_per_class = config.train.samples_per_class
        self.eligible = np.flatnonzero(self.table.counts >= self.samples_per_class)
        if len(self.eligible) < self.classes_per_batch:
            raise ConfigError(
                f"train.classes_per_batch={self.classes_per_batch} needs that many classes with "
                f"at least train.samples_per_class={self.samples_per_class} images; "
                f"the training data has {len(self.eligible)}"
            )
        self.criterion = build_criterion(config, distance)
        self.miner = (
            None
            if config.train.miner is None
            else build_miner(config.train.miner, config.train.miner_params)
        )

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        rng = step_rng(self.seed, step)
        classes = rng.choice(self.eligible, size=self.classes_per_batch, replace=False)
        positions = self.table.draw(rng, classes, self.samples_per_class).ravel()
        embeddings = self.embed(model, positions, rng)
        labels = self.data.labels[torch.from_numpy(positions)].to(self.device)
        if isinstance(self.criterion, (TripletLoss, ContrastiveLoss)):
            loss = self.criterion.batch(embeddings, labels)
        elif self.miner is not None:
            loss = self.criterion(embeddings, labels, self.miner(embeddings, labels))
        else:
            loss = self.criterion(embeddings, labels)
        return self.scaled(loss), len(positions)


class ClassifierObjective(Objective):
    """Classification over the training classes; the embedding is taken before the head.

    Losses that own class weights (their constructor takes ``embedding_dim`` or
    ``embedding_size``: ``camri``, ``pml:ArcFaceLoss``…) take the embeddings; the others
    (``cross_entropy``, ``cosine``, ``ohem``, ``hard_mining``, ``complement_cross_entropy``)
    take the logits of a linear head on the embeddings. ``num_classes`` and the embedding size
    are filled in from the data and the model unless the config sets them.
    """

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        data, config = setup.data, setup.config
        self.batch_size = config.train.batch_size
        accepted = loss_parameters(config.train.loss)
        params = dict(config.train.loss_params)
        filled = {"num_classes": data.num_classes}
        filled |= {"embedding_dim": config.model.dim, "embedding_size": config.model.dim}
        for key, value in filled.items():
            if key in accepted:
                params.setdefault(key, value)
        takes_embeddings = bool({"embedding_dim", "embedding_size"} & accepted)
        self.criterion = build_loss(config.train.loss, params)
        self.head = None if takes_embeddings else nn.Linear(config.model.dim, data.num_classes)

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        rng = step_rng(self.seed, step)
        count = min(self.batch_size, len(self.data))
        positions = rng.choice(len(self.data), size=count, replace=False)
        embeddings = self.embed(model, positions, rng)
        labels = self.data.labels[torch.from_numpy(positions)].to(self.device)
        outputs = embeddings if self.head is None else self.head(embeddings)
        return self.scaled(self.criterion(outputs, labels)), len(positions)


def build_criterion(config: Config, distance: Distance) -> nn.Module:
    """``train.loss`` built from ``train.loss_params``; a distance-taking loss defaults to the
    model's distance, so a learned metric (WeightedL1) trains through the loss."""
    params = dict(config.train.loss_params)
    if "distance" in loss_parameters(config.train.loss) and not config.train.loss.startswith(
        "pml:"
    ):
        params.setdefault("distance", distance)
    return build_loss(config.train.loss, params)


def build_objective(
    config: Config,
    data: LabeledImages,
    distance: Distance,
    augment: Augment | None = None,
    world: World | None = None,
) -> Objective:
    """The objective ``train.objective`` names, over the training ``data``."""
    kinds = {
        "siamese": SiameseObjective,
        "triplet": TripletObjective,
        "episodic": EpisodicObjective,
        "classifier": ClassifierObjective,
    }
    if config.train.within_group and data.groups is None:
        raise ConfigError(
            f"train.within_group needs data with groups such as Omniglot's alphabets; "
            f"{data.description or config.data.name} has none"
        )
    if config.train.objective not in kinds:
        raise ConfigError(
            f"unknown objective {config.train.objective!r}; choose one of {', '.join(kinds)}"
        )
    return kinds[config.train.objective](Setup(data, config, augment, world or World(), distance))
