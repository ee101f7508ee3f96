"""Losses and miners by name, so that a config can name any metriclab or PML loss.

``build_loss("triplet", {"margin": 0.2, "mining": "batch_hard", "distance": "l2"})`` builds a
metriclab loss; ``build_loss("pml:TripletMarginLoss", {"margin": 0.1})`` a
pytorch-metric-learning one and ``build_miner("pml:BatchHardMiner", {})`` a PML miner. Parameters
are checked against the constructor's signature before anything is built.

Each metriclab loss registers itself in :data:`LOSSES` next to its class; what a loss consumes
is its own declaration (:mod:`metriclab.losses.contract`), read with :func:`loss_declaration`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from torch import nn

from metriclab.distances import Distance, build_distance, to_pml

# Importing the loss modules registers their losses (each next to its class).
from metriclab.losses import hard_mining, margin, pair, triplet  # noqa: F401
from metriclab.losses.base import LOSSES, TrainerValue
from metriclab.losses.classification import OHEM
from metriclab.losses.contract import Declaration, declaration_of, signature

PML_PREFIX = "pml:"
PML_CHOICE = f" or {PML_PREFIX}<Name> for a pytorch-metric-learning loss"


def build_loss(name: str, params: Mapping[str, Any] | None = None) -> nn.Module:
    """The loss ``name`` (a key of :data:`LOSSES` or ``pml:<Name>``) built from ``params``.

    ``params["distance"]`` may be a distance name (``"l2"``), a mapping
    ``{"name": "weighted_l1", "dim": 64}``, or a metriclab ``Distance``; PML losses receive it
    converted with :func:`~metriclab.distances.to_pml`.
    """
    return _construct(
        loss_class(name), name, params or {}, pml=name.startswith(PML_PREFIX), kind="loss"
    )


def loss_class(name: str) -> type[nn.Module]:
    """The class ``name`` builds: a :data:`LOSSES` entry or ``pml:<Name>``; one clear error else."""
    if isinstance(name, str) and name.startswith(PML_PREFIX):
        from pytorch_metric_learning import losses as pml_losses

        return _pml_class(pml_losses, name, "loss", pml_losses.BaseMetricLossFunction)
    if name not in LOSSES:
        raise LOSSES.unknown(name, PML_CHOICE)
    return LOSSES.get(name)


def loss_declaration(name: str) -> Declaration:
    """What the loss ``name`` consumes and which constructor parameters the trainer fills.

    Read from the class; an instance may narrow it (:class:`~metriclab.losses.OHEM` consumes
    what its wrapped loss does), so check a built loss with
    :func:`~metriclab.losses.contract.declaration_of`.
    """
    return declaration_of(loss_class(name))


def filled_params(
    name: str, params: Mapping[str, Any], values: Mapping[TrainerValue, Any]
) -> dict[str, Any]:
    """``params`` of the loss ``name`` plus the trainer's ``values`` for the constructor
    parameters it declares in ``fills`` and ``params`` leaves unset (the config wins)."""
    filled = dict(params)
    for parameter, value in loss_declaration(name).fills.items():
        filled.setdefault(parameter, values[value])
    return filled


def build_miner(name: str, params: Mapping[str, Any] | None = None) -> nn.Module:
    """The pytorch-metric-learning miner ``pml:<Name>`` built from ``params``.

    metriclab's own mining lives inside :class:`~metriclab.losses.TripletLoss` (``mining=``).
    """
    if not name.startswith(PML_PREFIX):
        raise ValueError(
            f"unknown miner {name!r}; miners come from pytorch-metric-learning as "
            f"{PML_PREFIX}<Name> (e.g. {PML_PREFIX}BatchHardMiner); metriclab's own mining is "
            "TripletLoss(mining=...)"
        )
    from pytorch_metric_learning import miners as pml_miners

    cls = _pml_class(pml_miners, name, "miner", pml_miners.BaseMiner)
    return _construct(cls, name, params or {}, pml=True, kind="miner")


def _pml_class(module: Any, name: str, kind: str, base: type) -> type[nn.Module]:
    attribute = name.removeprefix(PML_PREFIX)
    available = sorted(
        n for n, obj in vars(module).items() if isinstance(obj, type) and issubclass(obj, base)
    )
    if attribute not in available:
        raise ValueError(
            f"unknown PML {kind} {name!r}{_suggest(attribute, available, PML_PREFIX)}; "
            f"see pytorch_metric_learning.{module.__name__.rsplit('.', 1)[-1]}"
        )
    return getattr(module, attribute)


def _construct(
    cls: type[nn.Module], name: str, params: Mapping[str, Any], pml: bool, kind: str
) -> nn.Module:
    if not isinstance(params, Mapping):
        raise ValueError(f"params for {name!r} must be a mapping, got {type(params).__name__}")
    accepted, required = signature(cls)
    for key in params:
        if key not in accepted:
            raise ValueError(
                f"unknown parameter {key!r} for {kind} {name!r}{_suggest(key, accepted)}; "
                f"valid parameters: {', '.join(sorted(accepted)) or 'none'}"
            )
    missing = sorted(required - set(params))
    if missing:
        raise ValueError(f"{name!r} needs parameter(s) {', '.join(missing)}")
    arguments = dict(params)
    if "distance" in arguments:
        distance = _distance(arguments["distance"])
        arguments["distance"] = to_pml(distance) if pml else distance
    if cls is OHEM and isinstance(arguments.get("loss"), Mapping):
        arguments["loss"] = _inner_loss(arguments["loss"])
    try:
        return cls(**arguments)
    except (TypeError, AssertionError) as failure:  # PML validates with assert
        raise ValueError(f"cannot build {kind} {name!r} from {dict(params)}: {failure}") from None


def _inner_loss(spec: Mapping[str, Any]) -> nn.Module:
    """OHEM's wrapped loss from ``{"name": ..., "params": {...}}``."""
    if set(spec) - {"name", "params"} or "name" not in spec:
        raise ValueError(
            f"ohem's loss must be a mapping {{'name': ..., 'params': {{...}}}}, got {dict(spec)!r}"
        )
    # OHEM asks the loss for per-sample values itself, so the loss keeps its own reduction.
    return build_loss(spec["name"], dict(spec.get("params") or {}))


def _distance(spec: Any) -> Distance:
    if isinstance(spec, Distance):
        return spec
    if isinstance(spec, str):
        return build_distance(spec)
    if isinstance(spec, Mapping) and set(spec) <= {"name", "dim"} and "name" in spec:
        return build_distance(spec["name"], spec.get("dim"))
    raise ValueError(
        f"distance must be a name such as 'l2', a mapping {{'name': ..., 'dim': ...}} or a "
        f"metriclab Distance, got {spec!r}"
    )


def _suggest(word: str, choices: Any, prefix: str = "") -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""
