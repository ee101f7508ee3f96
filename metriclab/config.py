"""Typed run configuration: dataclasses, YAML files, ``key=value`` overrides and validation."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from metriclab.atomic import write_text
from metriclab.data.augment import AUGMENTATIONS, TTA_VIEWS, check_augment_params
from metriclab.data.registry import DATA_SETS, check_params
from metriclab.data.streaming import STORAGES
from metriclab.distances import DISTANCES
from metriclab.evaluation.episodes import SCORERS
from metriclab.models.backbones import check_backbone_name
from metriclab.models.comparators import COMPARATORS
from metriclab.models.whitening import WHITEN_SOURCES, WHITENINGS
from metriclab.optim import OPTIMIZERS, SCHEDULES
from metriclab.precision import check_precision
from metriclab.registry import Registry


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message names it and the fix."""


#: Why ``data.rotations`` / ``data.mirror`` and images streamed from disk do not mix, and the fix.
DISK_COPIES = (
    "data.rotations and data.mirror copy the decoded training images as new classes, but "
    "{storage} streams them from disk; set data.storage=memory (or a larger "
    "data.memory_budget), or drop data.rotations and data.mirror"
)


@dataclass
class DataConfig:
    """Which images, and which of their classes stay unseen until evaluation.

    ``name`` is a registered data set (``digits``, ``omniglot``, ``image_folder``, ``csv``:
    :data:`metriclab.data.DATA_SETS`); ``path`` one or more files or folders (a comma-separated
    string on the command line); ``params`` the data set's own options, e.g. omniglot's
    ``alphabets`` (``data.params.alphabets=[Latin,Greek]``). The test classes are
    ``test_groups`` (e.g. alphabets) when given, else ``test_classes``, else a seeded
    ``test_fraction`` of the classes. ``val_fraction`` of the training classes (or ``val_groups``)
    is carved off for validation and early stopping. ``rotations`` (angles among 90, 180, 270)
    and ``mirror`` add rotated and mirrored copies of the training classes as new classes.
    ``storage``: ``memory`` (decode every image up front), ``disk`` (keep paths and labels, decode
    each batch when it is drawn; ``image_folder`` and ``csv``) or ``auto`` (memory while the
    decoded images fit ``memory_budget`` GiB, else disk; it says which it chose). ``skip_bad``
    leaves out files that cannot be decoded (``image_folder`` and ``csv``; each file is decoded
    once to check), says so in one line and lists them in the run folder's ``skipped.txt``;
    off, a bad file stops loading or training with its name.
    """

    name: str = "digits"
    path: list[str] | None = None
    size: int = 16
    channels: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    test_fraction: float = 0.5
    test_classes: list[str] | None = None
    test_groups: list[str] | None = None
    val_fraction: float = 0.0
    val_groups: list[str] | None = None
    split_seed: int = 0
    rotations: list[int] | None = None
    mirror: bool = False
    augment: str = "none"
    augment_params: dict[str, Any] = field(default_factory=dict)
    storage: str = "memory"
    memory_budget: float = 4.0
    skip_bad: bool = False


@dataclass
class ModelConfig:
    """The embedding network and the distance between embeddings.

    ``width`` scales the built-in backbones' channel counts; ``sigmoid`` ends the embedding with
    a sigmoid, as Koch et al.'s 4096-unit layer does. ``distance_init`` is the initial weight of
    ``weighted_l1`` (default ``1 / dim``; use 1.0 with ``sigmoid``, see :class:`WeightedL1`).
    ``weights``: ``none``, a state-dict file, or a torchvision weight name (``IMAGENET1K_V2``,
    ``DEFAULT``) from the torch hub cache, loaded when training starts. ``freeze_bn`` keeps the
    backbone's batch-norm layers on their (pretrained) running statistics.
    """

    backbone: str = "conv4"
    width: float = 1.0
    dim: int = 64
    distance: str = "weighted_l1"
    distance_init: float | None = None
    normalize: bool = False
    sigmoid: bool = False
    weights: str = "none"
    freeze_bn: bool = False
    #: A learned episode comparator on the embeddings (``matching``, ``relation``; ``none``) and
    #: its parameters, trained by the objective of that name: :mod:`metriclab.models.comparators`.
    comparator: str = "none"
    comparator_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """The optimisation: objective, loss, batches, optimiser, schedule and checkpoints.

    Batches: ``siamese`` draws ``batch_size`` pairs, ``classifier`` ``batch_size`` images,
    ``triplet`` ``classes_per_batch`` × ``samples_per_class`` images, ``episodic`` one
    ``n_way``-way ``k_shot``-shot episode with ``n_query`` queries per class.

    ``precision``: ``fp32``, ``bf16`` (autocast, CPU or CUDA) or ``fp16`` (autocast and a
    gradient scaler, CUDA only): :mod:`metriclab.precision`. ``amp`` is its deprecated
    old spelling (true meant fp16 on CUDA and nothing on the CPU); it is read into
    ``precision`` and saved as null. ``accumulate``: each optimiser step sums the gradients of
    that many batches (drawn as consecutive batches, each loss divided by ``accumulate``).
    ``warmup``: the learning rate rises linearly over the first ``warmup`` steps
    (``lr · t / warmup`` at step ``t``, Goyal et al. 2017), on top of ``schedule``.

    ``threads`` is torch's CPU thread count for training and evaluation (0: torch's default, one
    per core). Float sums are ordered by thread, so a fixed count makes figures reproduce on any
    machine; the digits default fixes 1.

    ``head_lr_scale`` multiplies ``lr`` for everything but the backbone (the embedding head, loss
    proxies and class weights, a learned distance); ``freeze_backbone_steps`` leaves the backbone
    unchanged for the first steps, so a new head settles on pretrained features first.

    ``whiten`` (``none``, ``center``, ``wccn``, ``lda``, ``pca``: :mod:`metriclab.models.whitening`)
    fits a fixed linear map on the training classes' vectors once training ends and appends it
    to the embedder in the evaluated checkpoint, so evaluation, indexes, export and bundles use
    it unchanged; ``whiten_shrinkage`` (in [0, 1]) shrinks its covariance toward the identity;
    ``whiten_from`` reads the ``embedding`` or the ``backbone`` features (the head then goes
    unused and the output has ``whiten_dim`` entries, 0 meaning all of the backbone's);
    ``whiten_layers`` (with ``whiten_from=backbone``) makes the map read the flattened outputs
    of those modules of the backbone, concatenated, instead of its last output: names as in
    ``backbone.named_modules()``, quoted in YAML (Conv-4: ``"2"`` is its third block, ``"3.2"``
    its last block's ReLU, before the last max pool).

    ``extra_loss`` (``none`` by default) adds a second loss over the same batch, weighted by
    ``extra_loss_weight`` and built from ``extra_loss_params``: one that takes a labelled batch
    of embeddings (``triplet``, ``contrastive``, ``pml:<Name>``) or owns class weights
    (``camri``, ``pml:ArcFaceLoss``), e.g. a pair term beside a margin classifier
    (:mod:`metriclab.training.extra_loss`). It reads the embeddings and labels of whatever batch
    ``objective`` draws, so any objective can carry it.
    """

    objective: str = "siamese"
    loss: str = "verification"
    loss_params: dict[str, Any] = field(default_factory=dict)
    miner: str | None = None
    miner_params: dict[str, Any] = field(default_factory=dict)
    steps: int = 600
    batch_size: int = 128
    classes_per_batch: int = 8
    samples_per_class: int = 4
    n_way: int = 5
    k_shot: int = 1
    n_query: int = 5
    within_group: bool = False
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "none"
    step_size: int = 1000
    gamma: float = 0.5
    clip_grad: float | None = None
    precision: str = "fp32"
    amp: bool | None = None
    accumulate: int = 1
    warmup: int = 0
    head_lr_scale: float = 1.0
    freeze_backbone_steps: int = 0
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 200
    keep_last: int = 2
    validate_every: int = 0
    val_episodes: int = 200
    patience: int = 0
    log_every: int = 10
    threads: int = 0
    whiten: str = "none"
    whiten_shrinkage: float = 0.5
    whiten_from: str = "embedding"
    whiten_dim: int = 0
    whiten_layers: list[str] | None = None
    extra_loss: str = "none"
    extra_loss_params: dict[str, Any] = field(default_factory=dict)
    extra_loss_weight: float = 1.0


@dataclass
class EvalConfig:
    """Seeded episodes and verification pairs on the unseen classes, plus published episode files.

    ``scorer``: ``nearest`` (1-NN over the support under the model's distance), ``prototype``
    (nearest class mean) or ``siamese`` (the learned Siamese head scores query × support).
    ``within_group`` draws each seeded episode from one group (alphabet); ``episodes = 0`` skips
    the seeded set. ``episode_files`` are fixed episode sets (``episodes/*.jsonl``) scored too.
    ``tta`` embeds every test image as the mean of its embeddings over the fixed views that
    ``tta_views`` names (:data:`metriclab.data.TTA_VIEWS`): ``affine``, nine small shifts,
    rotations and scalings (:func:`metriclab.data.tta_views`, for characters); ``flip``, the
    image and its mirror image (for faces and other mirror-symmetric classes); ``affine_flip``,
    both (18 views). Each view costs one more embedding pass.
    """

    n_way: int = 5
    k_shot: int = 1
    n_query: int = 15
    episodes: int = 1000
    pairs: int = 2000
    seed: int = 0
    scorer: str = "nearest"
    within_group: bool = False
    episode_files: list[str] | None = None
    tta: bool = False
    tta_views: str = "affine"


@dataclass
class Config:
    """A whole run: ``metriclab train`` resolves one and saves it as ``config.yaml``."""

    name: str = "digits-siamese"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _check_precision(self) -> None:
        _precision_from_amp(self.train)
        problem = check_precision(self.train.precision, self.train.device)
        if problem:
            raise ConfigError(problem)

    def validate(self) -> Config:
        """Check value ranges; raise :class:`ConfigError` naming the first bad key."""
        at_least_one = {
            "data.size": self.data.size,
            "model.dim": self.model.dim,
            "train.steps": self.train.steps,
            "train.classes_per_batch": self.train.classes_per_batch,
            "train.samples_per_class": self.train.samples_per_class,
            "train.k_shot": self.train.k_shot,
            "train.n_query": self.train.n_query,
            "train.checkpoint_every": self.train.checkpoint_every,
            "train.keep_last": self.train.keep_last,
            "train.val_episodes": self.train.val_episodes,
            "train.log_every": self.train.log_every,
            "train.step_size": self.train.step_size,
            "eval.k_shot": self.eval.k_shot,
            "eval.n_query": self.eval.n_query,
            "eval.pairs": self.eval.pairs,
        }
        at_least_two = {
            "train.batch_size": self.train.batch_size,
            "train.n_way": self.train.n_way,
            "eval.n_way": self.eval.n_way,
        }
        for key, value in at_least_one.items():
            if value < 1:
                raise ConfigError(f"{key} must be at least 1, got {value}")
        for key, value in at_least_two.items():
            if value < 2:
                raise ConfigError(f"{key} must be at least 2, got {value}")
        for key, value in {
            "eval.episodes": self.eval.episodes,
            "train.validate_every": self.train.validate_every,
            "train.patience": self.train.patience,
            "train.threads": self.train.threads,
        }.items():
            if value < 0:
                raise ConfigError(f"{key} must be 0 (off) or positive, got {value}")
        if not 0.0 < self.data.test_fraction < 1.0:
            raise ConfigError(
                f"data.test_fraction must lie in (0, 1), got {self.data.test_fraction}"
            )
        if not 0.0 <= self.data.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must lie in [0, 1), got {self.data.val_fraction}")
        init = self.model.distance_init
        if init is not None and not init > 0:
            raise ConfigError(f"model.distance_init must be positive or null, got {init}")
        if self.model.width <= 0:
            raise ConfigError(f"model.width must be positive, got {self.model.width}")
        if self.train.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.train.lr}")
        self._check_precision()
        if self.data.storage not in STORAGES:
            raise _unknown_choice("data.storage", self.data.storage, STORAGES)
        if self.data.storage == "disk" and (self.data.rotations or self.data.mirror):
            raise ConfigError(DISK_COPIES.format(storage="data.storage=disk"))
        if not self.data.memory_budget > 0:
            raise ConfigError(
                f"data.memory_budget must be a positive number of GiB, got {self.data.memory_budget}"
            )
        if self.train.accumulate < 1:
            raise ConfigError(f"train.accumulate must be at least 1, got {self.train.accumulate}")
        if self.train.warmup < 0:
            raise ConfigError(f"train.warmup must be 0 (off) or positive, got {self.train.warmup}")
        if self.train.head_lr_scale <= 0:
            raise ConfigError(
                f"train.head_lr_scale must be positive, got {self.train.head_lr_scale}"
            )
        if self.train.freeze_backbone_steps < 0:
            raise ConfigError(
                "train.freeze_backbone_steps must be 0 (off) or positive, got "
                f"{self.train.freeze_backbone_steps}"
            )
        if self.train.clip_grad is not None and self.train.clip_grad <= 0:
            raise ConfigError(
                f"train.clip_grad must be positive or null, got {self.train.clip_grad}"
            )
        choices: dict[str, tuple[str, Registry[Any] | Iterable[str]]] = {
            "data.name": (self.data.name, DATA_SETS),
            "data.augment": (self.data.augment, AUGMENTATIONS),
            "model.distance": (self.model.distance, DISTANCES),
            "train.optimizer": (self.train.optimizer, OPTIMIZERS),
            "train.schedule": (self.train.schedule, SCHEDULES),
            "eval.scorer": (self.eval.scorer, SCORERS),
            "eval.tta_views": (self.eval.tta_views, TTA_VIEWS),
            "model.comparator": (self.model.comparator, ["none", *COMPARATORS.names()]),
            "train.whiten": (self.train.whiten, ["none", *WHITENINGS.names()]),
            "train.whiten_from": (self.train.whiten_from, WHITEN_SOURCES),
        }
        for key, (value, names) in choices.items():
            if value not in names:
                raise _unknown_choice(key, value, names)
        self._check_whitening()
        self._check_extra_loss()
        if init is not None and not DISTANCES.get(self.model.distance).learned:
            learned = ", ".join(name for name, cls in DISTANCES.items() if cls.learned)
            raise ConfigError(
                f"model.distance_init applies only to a learned model.distance ({learned}), not "
                f"{self.model.distance!r}; drop it"
            )
        try:
            check_backbone_name(self.model.backbone)
        except ValueError as failure:
            raise ConfigError(str(failure)) from None
        self.data.params = _data_params(self.data.name, self.data.params)
        try:
            check_augment_params(self.data.augment, self.data.augment_params)
        except ValueError as failure:
            raise ConfigError(str(failure)) from None
        return self

    def _check_extra_loss(self) -> None:
        train = self.train
        if train.extra_loss == "none":
            if train.extra_loss_params:
                raise ConfigError(
                    "train.extra_loss_params is set but train.extra_loss is none; name the loss "
                    "(e.g. train.extra_loss=triplet) or drop the parameters"
                )
            return
        if not (math.isfinite(train.extra_loss_weight) and train.extra_loss_weight > 0):
            raise ConfigError(
                "train.extra_loss_weight must be a positive number, got "
                f"{train.extra_loss_weight}; use train.extra_loss=none to drop the term"
            )

    def _check_whitening(self) -> None:
        train = self.train
        if not 0.0 <= train.whiten_shrinkage <= 1.0:
            raise ConfigError(
                f"train.whiten_shrinkage must lie in [0, 1], got {train.whiten_shrinkage}"
            )
        if train.whiten_dim < 0:
            raise ConfigError(
                f"train.whiten_dim must be 0 (all) or positive, got {train.whiten_dim}"
            )
        if train.whiten_from == "embedding" and train.whiten_dim not in (0, self.model.dim):
            raise ConfigError(
                f"train.whiten_dim={train.whiten_dim} applies to train.whiten_from=backbone; a map "
                f"of the embedding keeps model.dim={self.model.dim} outputs: drop train.whiten_dim"
            )
        if train.whiten_layers and (train.whiten == "none" or train.whiten_from != "backbone"):
            raise ConfigError(
                f"train.whiten_layers={train.whiten_layers} names backbone modules for the map to "
                "read; set train.whiten (e.g. pca) and train.whiten_from=backbone, or drop it"
            )
        if train.whiten == "none" or train.whiten_from != "backbone":
            return
        if DISTANCES.get(self.model.distance).learned or self.model.comparator != "none":
            raise ConfigError(
                "train.whiten_from=backbone changes the embedding size, which a learned "
                f"model.distance ({self.model.distance}) or model.comparator is built for; "
                "use train.whiten_from=embedding"
            )


def _precision_from_amp(train: TrainConfig) -> None:
    """Read the deprecated ``train.amp`` into ``train.precision`` (what it did: fp16 autocast
    on CUDA, nothing elsewhere) and clear it, so the saved config says what runs."""
    if train.amp is None:
        return
    warnings.warn(
        "config key train.amp is deprecated (it meant fp16 on CUDA and nothing on the CPU); "
        "write train.precision=fp32|bf16|fp16 instead",
        DeprecationWarning,
        stacklevel=4,
    )
    if train.amp and train.precision == "fp32" and train.device.startswith("cuda"):
        train.precision = "fp16"
    train.amp = None


def _unknown_choice(key: str, value: str, names: Registry[Any] | Iterable[str]) -> ConfigError:
    """The registry's own sentence for an unknown name, naming ``key``, a close match, the choices."""
    if isinstance(names, Registry) and names.key == key:
        return ConfigError(str(names.unknown(value)))
    valid = list(names)
    close = difflib.get_close_matches(str(value), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {key} {value!r}{hint}; choose one of {', '.join(valid)}")


def _data_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``data.params`` checked against the options data set ``name`` declares, values typed."""
    try:
        spec = check_params(name, params)
    except ValueError as failure:
        raise ConfigError(str(failure)) from None
    return {
        key: _coerce(f"data.params.{key}", value, spec.params[key].type)
        for key, value in params.items()
    }


#: Old spellings still read: old key → (section, the key under ``<section>.params`` it moved to).
_MOVED_TO_PARAMS = {"data.alphabets": ("data", "alphabets")}


def _move_deprecated(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each old key of :data:`_MOVED_TO_PARAMS` moved under ``params``.

    Saved run configs from before the move hold ``alphabets: null``: that is dropped quietly.
    """
    for old, (section, new) in _MOVED_TO_PARAMS.items():
        part = values.get(section)
        if not isinstance(part, dict) or new not in part:
            continue
        part = dict(part)
        value = part.pop(new)
        params = part.get("params") or {}
        if value is not None:
            if isinstance(params, dict) and new in params:
                raise ConfigError(
                    f"{old} and {section}.params.{new} are both set; keep only "
                    f"{section}.params.{new} ({old} is its deprecated old spelling)"
                )
            warnings.warn(
                f"config key {old} is deprecated; write {section}.params.{new} instead",
                DeprecationWarning,
                stacklevel=3,
            )
            if isinstance(params, dict):  # anything else gets _build's "must be dict" error
                part["params"] = {**params, new: value}
        values = {**values, section: part}
    return values


def _keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of a config dataclass, e.g. ``train.lr``."""
    keys = []
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            keys += _keys(hint, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _mapping_keys() -> set[str]:
    """Dotted keys whose value is a free-form mapping, such as ``train.loss_params``."""
    keys = set()
    for section in dataclasses.fields(Config):
        hint = typing.get_type_hints(Config)[section.name]
        if dataclasses.is_dataclass(hint):
            for f in dataclasses.fields(hint):
                if typing.get_origin(typing.get_type_hints(hint)[f.name]) is dict:
                    keys.add(f"{section.name}.{f.name}")
    return keys


def _unknown_key(key: str, cls: type) -> ConfigError:
    valid = _keys(cls)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
    return ConfigError(f"unknown config key {key!r}; {hint}")


#: A decimal number as people write it: 3, -0.5, .5, 1e-3, 1.5E+2 (no nan, inf or hex).
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the annotation ``hint`` (int, float, str, bool, or X | None)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        origin = typing.get_origin(option)
        if origin is dict and isinstance(value, dict):
            return dict(value)
        if origin is list:
            if isinstance(value, str):  # command line: a,b,c
                value = [part.strip() for part in value.split(",") if part.strip()]
            if isinstance(value, (list, tuple)):
                (item,) = typing.get_args(option)
                return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is float and isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            # YAML 1.1 (PyYAML) reads 1e-3 as a string: it wants a dot, as in 1.0e-3.
            return float(value)
        if option is str and isinstance(value, float):
            # YAML read an unquoted 3.10 as the number 3.1: the text is lost, so ask for quotes.
            raise ConfigError(
                f"config key {key!r} wants text but YAML read the number {value!r}; quote it "
                f'(e.g. "{value}") so that it is kept as written'
            )
        if option is str and isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
    names = " or ".join(
        "null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options
    )
    raise ConfigError(f"config key {key!r} must be {names}, got {value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or 'root'!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            raise _unknown_key(f"{prefix}{key}", Config)
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(f"{prefix}{name}", value, hint)
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> Config:
    """A validated :class:`Config` from nested dicts; missing keys keep their defaults.

    Old spellings (``data.alphabets``) are moved to their new place with a DeprecationWarning.
    """
    return _build(Config, _move_deprecated(values)).validate()


def shipped_configs() -> list[str]:
    """Names of the configs that ship inside the package."""
    folder = resources.files("metriclab") / "configs"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as failure:
        raise ConfigError(f"{source} is not valid YAML: {failure}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{source} must hold a mapping of config sections")
    return values


def load_config(source: str | Path | None = None) -> dict[str, Any]:
    """The raw values of a shipped config name or a YAML file (default: ``digits-siamese``)."""
    source = "digits-siamese" if source is None else str(source)
    shipped = shipped_configs()
    if source in shipped:
        text = (resources.files("metriclab") / "configs" / f"{source}.yaml").read_text("utf-8")
        return _read_yaml(text, f"shipped config {source!r}")
    path = Path(source)
    if not path.is_file():
        raise ConfigError(
            f"config {source!r} is neither a YAML file nor a shipped config ({', '.join(shipped)})"
        )
    return _read_yaml(path.read_text("utf-8"), str(path))


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``values`` with each ``section.key=value`` override set (values parsed as YAML scalars)."""
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} must look like section.key=value")
        parts = key.split(".")
        # Free-form mappings (train.loss_params, …) take nested keys: train.loss_params.margin=0.3
        known = key in _keys(Config) or key in _MOVED_TO_PARAMS
        if not known and ".".join(parts[:2]) not in _mapping_keys():
            raise _unknown_key(key, Config)
        try:
            parsed = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            parsed = raw
        target = values
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = parsed
    return values


#: Keys a config writes for its own data set (its groups, its published episode files): wrong
#: for any other data, with the value that works anywhere.
_DATA_BOUND = {
    "data.test_groups": "null",
    "data.val_groups": "null",
    "train.within_group": "false",
    "eval.within_group": "false",
    "eval.episode_files": "null",
}


def _keys_bound_to_other_data(recipe: dict[str, Any], overrides: list[str]) -> list[str]:
    """``key=value`` overrides a recipe needs once ``data.name`` is overridden to other data:
    its data-bound keys the overrides leave as the recipe set them."""
    given = {o.partition("=")[0] for o in overrides}
    if "data.name" not in given:
        return []
    needed = []
    for key, neutral in _DATA_BOUND.items():
        section, name = key.split(".")
        if key not in given and (recipe.get(section) or {}).get(name):
            needed.append(f"{key}={neutral}")
    bound_files = any(n.startswith("eval.episode_files=") for n in needed)
    only_files = not (recipe.get("eval") or {}).get("episodes", 1)  # its only evaluation
    if bound_files and only_files and "eval.episodes" not in given:
        needed.append(f"eval.episodes={EvalConfig.episodes}")
    return needed


def _name_for_data(config: Config, recipe: dict[str, Any], overrides: list[str]) -> str:
    """The run name: the recipe's, plus the data when overrides point it elsewhere (so run
    folders and plot titles do not say "digits" of someone's own images)."""
    given = {o.partition("=")[0] for o in overrides}
    if "name" in given or not given & {"data.name", "data.path"}:
        return config.name
    data = recipe.get("data") or {}
    if config.data.name == data.get("name") and config.data.path == data.get("path"):
        return config.name
    source = Path(config.data.path[0]).stem if config.data.path else config.data.name
    label = re.sub(r"[^\w.-]+", "_", source).strip("_") or config.data.name
    return config.name if label in config.name else f"{config.name}-{label}"


def resolve_config(source: str | Path | None, overrides: list[str]) -> Config:
    """Load a config by name or path, apply overrides, validate.

    A shipped recipe pointed at other data (``data.name=...``) must also drop what it wrote for
    its own data (groups, within-group episodes, published episode files): the error lists each
    such key with a value that works, rather than failing later on the first one.
    """
    recipe = load_config(source)
    config = config_from_dict(apply_overrides(recipe, overrides))
    config.name = _name_for_data(config, recipe, overrides)
    needed = _keys_bound_to_other_data(recipe, overrides)
    if needed and config.data.name != (recipe.get("data") or {}).get("name"):
        name = "digits-siamese" if source is None else source
        raise ConfigError(
            f"config {name} was written for data.name={recipe['data']['name']}; for "
            f"data.name={config.data.name} also pass {' '.join(needed)} (its groups and "
            "episode files belong to its own data)"
        )
    return config


def apply_threads(config: Config) -> None:
    """Set torch's CPU thread count to ``train.threads`` (0 leaves torch's default)."""
    if config.train.threads:
        import torch

        torch.set_num_threads(config.train.threads)


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as YAML, atomically."""
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
