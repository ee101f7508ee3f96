"""Training objectives: each draws its own batch for a step and returns the loss.

An objective declares the loss inputs it can produce (``produces``, in order of preference); a
loss declares what it consumes (:mod:`metriclab.losses.base`). The objective feeds ``train.loss``
the first input both share, and refuses a loss it cannot feed with one sentence naming the
objectives that can. Nothing here looks at a loss's name or class.

Every objective derives its randomness from ``(seed, step)`` alone, so step ``t`` sees the same
batch whether the run was interrupted or not: resuming from a checkpoint continues exactly.
Under DistributedDataParallel every rank draws the same global batch and embeds only its shard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metriclab.config import Config, ConfigError, TrainConfig
from metriclab.data import ClassTable, LabeledImages, PairSampler, to_float
from metriclab.data.augment import augment_items, prepare_for_items
from metriclab.data.samplers import ClassDraw
from metriclab.data.streaming import pixels
from metriclab.distances import Distance
from metriclab.losses import LossInput, TrainerValue, build_loss, build_miner, declaration_of
from metriclab.losses.base import describe
from metriclab.losses.registry import filled_params, loss_declaration
from metriclab.models import SiameseNet
from metriclab.registry import Registry
from metriclab.training.auxiliary import AuxiliaryHead
from metriclab.training.distributed import World
from metriclab.training.extra_loss import ExtraLoss, build_extra_loss

#: uint8 batch ``(B, C, H, W)`` and a generator → augmented uint8 batch of the same shape.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


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
    """Base: holds the training images and turns positions into network inputs.

    ``produces``: the loss inputs this objective can feed ``train.loss``, preferred first.
    """

    produces: ClassVar[tuple[LossInput, ...]] = ()
    #: Optimiser steps per training step: >1 when the objective takes further steps on the same
    #: batch after the first (COT's complement step); the loop asks :meth:`phase_loss` for them.
    phases: ClassVar[int] = 1

    def __init__(self, setup: Setup) -> None:
        super().__init__()
        self.data = setup.data
        self.seed = setup.config.train.seed
        self.device = torch.device(setup.config.train.device)
        self.augment = setup.augment
        prepare_for_items(self.augment, self.data.item_ids)
        self.world = setup.world
        #: A training-only head on the backbone's feature map (:mod:`metriclab.training.auxiliary`),
        #: set by the trainer when the augmentation offers auxiliary targets; ``None`` otherwise.
        self.auxiliary: AuxiliaryHead | None = None
        self._auxiliary_items: list[str] = []
        #: ``train.extra_loss`` over each step's embedded batch, set by :func:`build_objective`
        #: (after the objective's own loss, so that loss's initial weights stay as they were).
        self.extra: ExtraLoss | None = None

    def embed(
        self, model: SiameseNet, positions: np.ndarray, rng: np.random.Generator
    ) -> torch.Tensor:
        """Embeddings ``(B, D)`` of the global batch ``positions``, in order.

        Augmentation is drawn for the whole batch (so every rank, and a single process, sees
        the same images); this rank embeds its shard and gathers the rest.
        """
        # In memory: rows of one tensor; on disk: those items decoded now (the same arrays).
        batch = pixels(self.data.images[torch.from_numpy(positions)])
        if self.augment is not None:
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            batch = augment_items(
                self.augment, batch, generator, lambda: [self.data.item_ids[p] for p in positions]
            )
        local = torch.from_numpy(self.world.shard(np.arange(len(positions))))
        inputs = to_float(batch[local]).to(self.device, non_blocking=True)
        if self.auxiliary is not None:  # the items whose maps the head's next loss predicts
            self._auxiliary_items = [self.data.item_ids[positions[i]] for i in local.tolist()]
        embeddings = self.world.gather(model.embedding_net(inputs))
        if self.extra is not None:
            labels = self.data.labels[torch.from_numpy(positions)].to(self.device)
            self.extra.keep(embeddings, labels)
        return embeddings

    def auxiliary_loss(self) -> torch.Tensor | float:
        """The auxiliary head's weighted loss on the batch embedded last (0 without a head)."""
        if self.auxiliary is None:
            return 0.0
        return self.auxiliary.loss(self._auxiliary_items)

    def extra_loss(self) -> torch.Tensor | float:
        """``train.extra_loss``, weighted, on the batch embedded last (0 without one)."""
        if self.extra is None:
            return 0.0
        return self.extra()

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` unchanged; kept so objectives written against it still work.

        It used to multiply the loss by the world size, which doubled under two ranks the
        gradient of every parameter outside the embedding network and the logged loss; the
        gather now corrects the embedding network's share alone (:meth:`World.gather`).
        """
        return loss

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        """The loss of ``step`` and the number of images it consumed."""
        raise NotImplementedError

    def phase_loss(self, model: SiameseNet, step: int, phase: int) -> tuple[torch.Tensor, int]:
        """The loss of phase ``phase`` (1 … ``phases − 1``) of ``step``, after phase 0's update."""
        raise NotImplementedError(f"{type(self).__name__} has a single phase")


#: Every training objective a config can name (``train.objective``).
OBJECTIVES: Registry[type[Objective]] = Registry("objective", key="train.objective")


@OBJECTIVES.register("siamese")
class SiameseObjective(Objective):
    """Balanced same/different pairs (Koch et al. 2015).

    Feeds a loss that consumes pair logits (``verification``: BCE on the SiameseNet logits
    ``b − d``; ``binary_hard_mining``) or aligned pairs ``(e1, e2, same)`` (``contrastive``,
    Hadsell et al. 2006).
    """

    produces = (LossInput.PAIR_LOGITS, LossInput.PAIRS)

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        data, config = setup.data, setup.config
        self.pairs = PairSampler(
            data.labels,
            config.train.batch_size,
            batches=1,
            seed=self.seed,
            groups=data.groups if config.train.within_group else None,
            group_names=data.group_names,
        )
        self.batch_size = config.train.batch_size
        self.criterion, self.form = build_fed_loss(setup, self.produces)

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        rng = step_rng(self.seed, step)
        first, second, same = self.pairs.draw(rng, self.batch_size)
        embeddings = self.embed(model, np.concatenate([first, second]), rng)
        e1, e2 = embeddings.split(len(first))
        target = torch.from_numpy(same).to(self.device)
        if self.form is LossInput.PAIR_LOGITS:
            loss = self.criterion(model.logits(e1, e2), target)
        else:
            loss = self.criterion(e1, e2, target)
        return self.scaled(loss), 2 * len(first)


def episode_draw(data: LabeledImages, config: Config) -> ClassDraw:
    """The draw of one ``train.n_way``-way episode of ``train.k_shot + train.n_query`` items per
    class, built (and validated, naming short classes) once; from a single group (alphabet)
    when ``train.within_group`` is set."""
    return ClassDraw.build(
        data.labels,
        config.train.n_way,
        config.train.k_shot + config.train.n_query,
        ("train.n_way", "train.k_shot + train.n_query"),
        groups=data.groups if config.train.within_group else None,
        class_names=data.class_names,
        group_names=data.group_names,
    )


@OBJECTIVES.register("episodic")
class EpisodicObjective(Objective):
    """Prototypical loss over one N-way K-shot episode per step (Snell et al. 2017).

    Logits are ``−d(query, prototype)`` with the model's distance (squared L2 in the paper);
    the loss is cross-entropy over the N classes of the episode. It is the objective's own loss:
    it feeds no ``train.loss`` and refuses one set to anything but the config's default.
    """

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        data, config = setup.data, setup.config
        default = TrainConfig().loss
        if config.train.loss != default:
            name = config.train.loss
            consumes = loss_declaration(name).consumes or consumed_by(configured_loss(setup))
            fix = _able(consumes)
            raise ConfigError(
                f"train.objective={config.train.objective} trains with its own prototypical "
                f"cross-entropy and feeds no train.loss; drop train.loss={name}"
                + (f", or {fix}" if fix else "")
            )
        self.n_way, self.k_shot, self.n_query = (
            config.train.n_way,
            config.train.k_shot,
            config.train.n_query,
        )
        self.draw = episode_draw(data, config)

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


@OBJECTIVES.register("triplet")
class TripletObjective(Objective):
    """P classes × K images per batch; a loss over ``(embeddings, labels)`` with in-batch mining.

    With ``train.miner`` (a pytorch-metric-learning miner) it feeds the miner's tuples too, so
    the loss must consume mined batches; metriclab's losses select their own tuples.
    """

    produces = (LossInput.LABELED_BATCH, LossInput.MINED_BATCH)

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        data, config = setup.data, setup.config
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
        mined = config.train.miner is not None
        form = LossInput.MINED_BATCH if mined else LossInput.LABELED_BATCH
        self.criterion, _ = build_fed_loss(setup, (form,))
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
        if self.miner is not None:
            loss = self.criterion(embeddings, labels, self.miner(embeddings, labels))
        else:
            loss = self.criterion(embeddings, labels)
        return self.scaled(loss), len(positions)


@OBJECTIVES.register("classifier")
class ClassifierObjective(Objective):
    """Classification over the training classes; the embedding is taken before the head.

    A loss that owns class weights (consumes ``CLASS_WEIGHTS``: ``camri``, ``pml:ArcFaceLoss``…)
    takes the embeddings; one that consumes ``CLASS_LOGITS`` (``cross_entropy``, ``cosine``,
    ``ohem``, ``hard_mining``, ``complement_cross_entropy``) takes the logits of a linear head on
    the embeddings. Parameters the loss declares in ``fills`` (the number of classes, the
    embedding size) come from the data and the model unless the config sets them.
    """

    produces = (LossInput.CLASS_WEIGHTS, LossInput.CLASS_LOGITS)

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        data, config = setup.data, setup.config
        self.batch_size = config.train.batch_size
        self.criterion, form = build_fed_loss(setup, self.produces)
        # Built after the loss, as before, so that the global RNG draws stay in the same order.
        self.head = (
            None
            if form is LossInput.CLASS_WEIGHTS
            else nn.Linear(config.model.dim, data.num_classes)
        )

    def loss(self, model: SiameseNet, step: int) -> tuple[torch.Tensor, int]:
        rng = step_rng(self.seed, step)
        count = min(self.batch_size, len(self.data))
        positions = rng.choice(len(self.data), size=count, replace=False)
        embeddings = self.embed(model, positions, rng)
        labels = self.data.labels[torch.from_numpy(positions)].to(self.device)
        outputs = embeddings if self.head is None else self.head(embeddings)
        return self.scaled(self.criterion(outputs, labels)), len(positions)


def build_fed_loss(setup: Setup, forms: tuple[LossInput, ...]) -> tuple[nn.Module, LossInput]:
    """``train.loss`` built (:func:`configured_loss`) and the first of ``forms`` it consumes.

    A loss that consumes none of ``forms`` is refused with one :class:`ConfigError` sentence
    naming the objectives that can feed it.
    """
    name = setup.config.train.loss
    declared = loss_declaration(name).consumes
    if declared:  # refuse before building when the class already tells (OHEM does not)
        _check_fed(name, declared, forms, setup.config)
    criterion = configured_loss(setup)
    return criterion, _check_fed(name, consumed_by(criterion), forms, setup.config)


def configured_loss(setup: Setup) -> nn.Module:
    """``train.loss`` built from ``train.loss_params``.

    Constructor parameters the loss declares in ``fills`` default to the trainer's values: the
    number of training classes, ``model.dim`` and the model's distance (so a learned metric,
    WeightedL1, trains through a distance-taking loss).
    """
    train = setup.config.train
    return build_loss(
        train.loss, filled_params(train.loss, train.loss_params, trainer_values(setup))
    )


def trainer_values(setup: Setup) -> dict[TrainerValue, Any]:
    """What the trainer knows that a loss's constructor may need (:class:`TrainerValue`)."""
    return {
        TrainerValue.NUM_CLASSES: setup.data.num_classes,
        TrainerValue.EMBEDDING_DIM: setup.config.model.dim,
        TrainerValue.DISTANCE: setup.distance,
    }


def consumed_by(loss: nn.Module) -> frozenset[LossInput]:
    """What a built loss consumes (an instance may narrow its class: OHEM)."""
    return declaration_of(loss).consumes


def _check_fed(
    name: str, consumes: frozenset[LossInput], forms: tuple[LossInput, ...], config: Config
) -> LossInput:
    """The first of ``forms`` in ``consumes``; else the one-sentence refusal."""
    for form in forms:
        if form in consumes:
            return form
    objective = config.train.objective
    if forms == (LossInput.MINED_BATCH,) and LossInput.LABELED_BATCH in consumes:
        raise ConfigError(
            f"loss {name!r} selects its own tuples from a labelled batch and takes no miner's; "
            f"drop train.miner={config.train.miner}, or use a pytorch-metric-learning loss "
            "(pml:<Name>) with it"
        )
    fix = _able(consumes) or "no registered objective can feed it"
    raise ConfigError(
        f"loss {name!r} consumes {describe(consumes)}, which train.objective={objective} cannot "
        f"produce; {fix}"
    )


def _able(consumes: frozenset[LossInput]) -> str:
    """``use train.objective=… (objectives that can feed it: …)`` from the registry, or ``""``."""
    able = [name for name, kind in OBJECTIVES.items() if consumes & set(kind.produces)]
    if not able:
        return ""
    return f"use train.objective={able[0]} (objectives that can feed it: {', '.join(able)})"


def build_objective(
    config: Config,
    data: LabeledImages,
    distance: Distance,
    augment: Augment | None = None,
    world: World | None = None,
) -> Objective:
    """The objective ``train.objective`` names, over the training ``data``."""
    if config.train.within_group and data.groups is None:
        raise ConfigError(
            f"train.within_group needs data with groups such as Omniglot's alphabets; "
            f"{data.description or config.data.name} has none"
        )
    kind = OBJECTIVES.get(config.train.objective)
    setup = Setup(data, config, augment, world or World(), distance)
    objective = kind(setup)
    objective.extra = build_extra_loss(config.train, trainer_values(setup))
    return objective
