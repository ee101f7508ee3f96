"""Losses and miners by name, so that a config can name any metriclab or PML loss.

``build_loss("triplet", {"margin": 0.2, "mining": "batch_hard", "distance": "l2"})`` builds a
metriclab loss; ``build_loss("pml:TripletMarginLoss", {"margin": 0.1})`` a
pytorch-metric-learning one and ``build_miner("pml:BatchHardMiner", {})`` a PML miner. Parameters
are checked against the constructor's signature before anything is built.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from metriclab.distances import Distance, build_distance, to_pml
from metriclab.losses.classification import OHEM, ComplementCrossEntropy, CosineLoss
from metriclab.losses.hard_mining import BinaryHardMiningLoss, HardMiningLoss
from metriclab.losses.margin import CAMRILoss
from metriclab.losses.pair import ContrastiveLoss, VerificationLoss
from metriclab.losses.triplet import TripletLoss

PML_PREFIX = "pml:"

LOSSES: dict[str, type[nn.Module]] = {
    "verification": VerificationLoss,
    "cross_entropy": nn.CrossEntropyLoss,
    "contrastive": ContrastiveLoss,
    "triplet": TripletLoss,
    "camri": CAMRILoss,
    "cosine": CosineLoss,
    "ohem": OHEM,
    "hard_mining": HardMiningLoss,
    "binary_hard_mining": BinaryHardMiningLoss,
    "complement_cross_entropy": ComplementCrossEntropy,
}


def build_loss(name: str, params: Mapping[str, Any] | None = None) -> nn.Module:
    """The loss ``name`` (a key of :data:`LOSSES` or ``pml:<Name>``) built from ``params``.

    ``params["distance"]`` may be a distance name (``"l2"``), a mapping
    ``{"name": "weighted_l1", "dim": 64}``, or a metriclab ``Distance``; PML losses receive it
    converted with :func:`~metriclab.distances.to_pml`.
    """
    if name.startswith(PML_PREFIX):
        from pytorch_metric_learning import losses as pml_losses

        cls = _pml_class(pml_losses, name, "loss", pml_losses.BaseMetricLossFunction)
        return _construct(cls, name, params or {}, pml=True, kind="loss")
    if name not in LOSSES:
        raise ValueError(
            f"unknown loss {name!r}{_suggest(name, LOSSES)}; choose one of "
            f"{', '.join(LOSSES)} or {PML_PREFIX}<Name> for a pytorch-metric-learning loss"
        )
    return _construct(LOSSES[name], name, params or {}, pml=False, kind="loss")


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


def loss_parameters(name: str) -> set[str]:
    """The constructor parameters of the loss ``name`` (empty for an unknown name)."""
    if name.startswith(PML_PREFIX):
        from pytorch_metric_learning import losses as pml_losses

        cls = getattr(pml_losses, name.removeprefix(PML_PREFIX), None)
    else:
        cls = LOSSES.get(name)
    return _signature(cls)[0] if isinstance(cls, type) else set()


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
    accepted, required = _signature(cls)
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


def _signature(cls: type) -> tuple[set[str], set[str]]:
    """Named constructor parameters (following ``**kwargs`` up the MRO, as PML passes them on)
    and the required ones."""
    accepted: set[str] = set()
    required: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass in (nn.Module, object):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        named = [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        accepted |= {p.name for p in named}
        required |= {p.name for p in named if p.default is p.empty and klass is cls}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return accepted, required


def _inner_loss(spec: Mapping[str, Any]) -> nn.Module:
    """OHEM's wrapped loss from ``{"name": ..., "params": {...}}``, per sample (reduction none)."""
    if set(spec) - {"name", "params"} or "name" not in spec:
        raise ValueError(
            f"ohem's loss must be a mapping {{'name': ..., 'params': {{...}}}}, got {dict(spec)!r}"
        )
    params = {"reduction": "none", **dict(spec.get("params") or {})}
    return build_loss(spec["name"], params)


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
