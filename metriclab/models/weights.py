"""Pretrained weights for backbones, offline: state-dict files and torchvision's hub cache.

``model.weights`` is ``none``, a state-dict file (loaded with ``weights_only=True``) or, for a
``torchvision:<model>`` backbone, a torchvision weight name (``IMAGENET1K_V2``, ``DEFAULT``) read
from the user's torch hub cache. Nothing here downloads: a missing cache file is one error naming
the path and the file to place there.

Keys are matched strictly, with one report of what is missing and what is unexpected: a missing
backbone key means the file does not fit the network and is an error; unexpected keys (the
ImageNet classifier ``fc.*`` that the backbone dropped) are reported and ignored. A grey
(1-channel) network takes RGB weights by summing the three filters of the first convolution, which
is exact for a grey image repeated on three channels (``Σ_c W_c * x = (Σ_c W_c) * x``), so the
pretrained features survive instead of being re-initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

#: The values of ``model.weights`` that mean "random initialisation".
NO_WEIGHTS = ("none", "")

_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")


@dataclass(frozen=True)
class WeightReport:
    """What loading a state dict did: the keys it lacked, ignored and adapted."""

    source: str
    loaded: tuple[str, ...]
    unexpected: tuple[str, ...]
    adapted: tuple[str, ...]

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        if self.unexpected:
            parts.append(f"ignored {len(self.unexpected)} unexpected ({_few(self.unexpected)})")
        if self.adapted:
            parts.append(f"summed RGB filters to 1 channel in {_few(self.adapted)}")
        return "; ".join(parts)


def _few(keys: tuple[str, ...] | list[str], n: int = 4) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", … ({len(keys) - n} more)" if len(keys) > n else "")


def is_weight_file(weights: str) -> bool:
    """Whether ``weights`` names a file (an existing path, or one written like a path)."""
    return (
        os.sep in weights
        or "/" in weights
        or weights.lower().endswith(_FILE_SUFFIXES)
        or Path(weights).is_file()
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file, loaded with ``weights_only=True`` on the CPU.

    A file holding ``{"state_dict": ...}`` or ``{"model": ...}`` (common checkpoint shapes) gives
    the inner mapping; a ``module.`` prefix left by DataParallel is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.weights file {path} does not exist; check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as failure:  # pickle and zip errors vary; one message for all
        raise ValueError(
            f"model.weights file {path} is not a state dict torch can load with weights_only=True "
            f"({type(failure).__name__}: {failure}); save it with torch.save(model.state_dict())"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"model.weights file {path} holds no mapping of names to tensors; save it with "
            "torch.save(model.state_dict())"
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def adapt_channels(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """``value`` (``(O, 3, k, k)`` RGB filters) summed to ``target``'s ``(O, 1, k, k)``, or None
    when the shapes differ in any other way."""
    if value.ndim != 4 or target.ndim != 4:
        return None
    same_filters = value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]
    if same_filters and value.shape[1] == 3 and target.shape[1] == 1:
        return value.sum(dim=1, keepdim=True)
    return None


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> WeightReport:
    """Copy ``state`` into ``module``; raise naming the missing keys or a shape that cannot fit.

    Every parameter and buffer of ``module`` must be in ``state`` (with its shape, or RGB filters
    where ``module`` takes 1 channel); keys ``module`` lacks are returned as unexpected.
    """
    own = module.state_dict()
    missing = [key for key in own if key not in state]
    if missing:
        raise ValueError(
            f"model.weights {source} lacks {len(missing)} of the backbone's {len(own)} tensors "
            f"({_few(missing)}); it was saved from another architecture than this backbone"
        )
    matched: dict[str, torch.Tensor] = {}
    adapted = []
    for key, target in own.items():
        value = state[key]
        if value.shape != target.shape:
            summed = adapt_channels(value, target)
            if summed is None:
                raise ValueError(
                    f"model.weights {source}: {key} has shape {tuple(value.shape)} but the backbone "
                    f"needs {tuple(target.shape)}; use weights saved from this architecture"
                )
            value = summed
            adapted.append(key)
        matched[key] = value.to(target.dtype)
    module.load_state_dict(matched, strict=True)
    unexpected = tuple(key for key in state if key not in own)
    return WeightReport(source, tuple(matched), unexpected, tuple(adapted))


def hub_checkpoint_dir() -> Path:
    """Where torch keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints`` (``torch.hub``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_weights_file(model: str, weights: str) -> Path:
    """The hub-cache file of torchvision weights ``weights`` (e.g. ``IMAGENET1K_V2``, ``DEFAULT``)
    for ``model``; one error naming the cache path and the file to place there when absent."""
    from torchvision import models

    try:
        enum = models.get_model_weights(model)
    except (ValueError, KeyError):
        raise ValueError(f"torchvision model {model!r} has no pretrained weights") from None
    names = [member.name for member in enum]
    try:
        entry = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    except KeyError:
        raise ValueError(
            f"model.weights={weights!r} is not a file nor a weight name of torchvision model "
            f"{model!r}; choose DEFAULT, {', '.join(names)}, a state-dict file or none"
        ) from None
    file = hub_checkpoint_dir() / Path(entry.url).name
    if not file.is_file():
        raise FileNotFoundError(
            f"torchvision weights {model}.{entry.name} are not in the torch hub cache and "
            f"metriclab never downloads; place {Path(entry.url).name} (from {entry.url}) in "
            f"{file.parent}, or set model.weights to a state-dict file"
        )
    return file


def apply_weights(
    module: nn.Module, weights: str | None, torchvision_model: str | None = None
) -> WeightReport | None:
    """Load ``weights`` (``none``, a file, or for torchvision models a weight name) into
    ``module``; ``torchvision_model`` is the torchvision name when ``module`` is one. Returns the
    key report (None when ``weights`` is none)."""
    if weights is None or weights.strip().lower() in NO_WEIGHTS:
        return None
    if is_weight_file(weights):
        file = Path(weights).expanduser()
    elif torchvision_model is not None:
        file = torchvision_weights_file(torchvision_model, weights)
    else:
        raise ValueError(
            f"model.weights={weights!r} is not a file; this backbone takes a state-dict file or "
            "none (weight names such as IMAGENET1K_V2 apply to torchvision:<model> backbones)"
        )
    return load_weights(module, read_state_dict(file), str(file))
