"""Typed run configuration: dataclasses, YAML files, ``key=value`` overrides and validation."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from metriclab.atomic import write_text


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message names it and the fix."""


@dataclass
class DataConfig:
    """Which images, and which of their classes stay unseen until evaluation."""

    name: str = "digits"
    path: str | None = None
    size: int = 16
    test_fraction: float = 0.5
    split_seed: int = 0


@dataclass
class ModelConfig:
    """The embedding network and the distance between embeddings."""

    backbone: str = "conv4"
    dim: int = 64
    distance: str = "weighted_l1"
    normalize: bool = False


@dataclass
class TrainConfig:
    """The optimisation: objective, loss, steps and optimiser settings."""

    objective: str = "siamese"
    loss: str = "verification"
    steps: int = 600
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "cpu"


@dataclass
class EvalConfig:
    """Seeded episodes and verification pairs on the unseen classes."""

    n_way: int = 5
    k_shot: int = 1
    n_query: int = 15
    episodes: int = 1000
    pairs: int = 2000
    seed: int = 0


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

    def validate(self) -> Config:
        """Check value ranges; raise :class:`ConfigError` naming the first bad key."""
        positive = {
            "data.size": self.data.size,
            "model.dim": self.model.dim,
            "train.steps": self.train.steps,
            "train.batch_size": self.train.batch_size,
            "eval.n_way": self.eval.n_way,
            "eval.k_shot": self.eval.k_shot,
            "eval.n_query": self.eval.n_query,
            "eval.episodes": self.eval.episodes,
            "eval.pairs": self.eval.pairs,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key} must be at least 1, got {value}")
        if not 0.0 < self.data.test_fraction < 1.0:
            raise ConfigError(
                f"data.test_fraction must lie in (0, 1), got {self.data.test_fraction}"
            )
        if self.train.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.train.lr}")
        if self.eval.n_way < 2:
            raise ConfigError(f"eval.n_way must be at least 2, got {self.eval.n_way}")
        if self.train.batch_size < 2:
            raise ConfigError(f"train.batch_size must be at least 2, got {self.train.batch_size}")
        return self


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


def _unknown_key(key: str, cls: type) -> ConfigError:
    valid = _keys(cls)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
    return ConfigError(f"unknown config key {key!r}; {hint}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the annotation ``hint`` (int, float, str, bool, or X | None)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    names = " or ".join("null" if o is type(None) else o.__name__ for o in options)
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
    """A validated :class:`Config` from nested dicts; missing keys keep their defaults."""
    return _build(Config, values).validate()


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
        if key not in _keys(Config):
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


def resolve_config(source: str | Path | None, overrides: list[str]) -> Config:
    """Load a config by name or path, apply overrides, validate."""
    return config_from_dict(apply_overrides(load_config(source), overrides))


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as YAML, atomically."""
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
