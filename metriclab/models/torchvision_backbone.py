"""Any torchvision classification model as a backbone: random weights, no classifier, any channels."""

from __future__ import annotations

import difflib

from torch import nn

TORCHVISION_PREFIX = "torchvision:"

# Built with this many classes, the classifier is the one layer with exactly this many outputs:
# a prime that no torchvision model uses as a hidden width (checked for all 80 models).
_SENTINEL_CLASSES = 7919

# These two return auxiliary logits in training mode unless told not to.
_NO_AUX_LOGITS = {"googlenet", "inception_v3"}


def torchvision_names() -> list[str]:
    """The classification models torchvision provides, sorted."""
    from torchvision import models

    return sorted(models.list_models(module=models))


def torchvision_backbone(name: str, in_channels: int) -> nn.Module:
    """``torchvision.models.<name>`` with ``weights=None``, its classifier replaced by ``nn.Identity``
    and its first convolution rebuilt for ``in_channels`` (kept if it already takes that many).

    No weights are downloaded. The output is whatever fed the classifier: ``(B, 512)`` for
    ``resnet18``, ``(B, 576)`` for ``mobilenet_v3_small``. ViT models need 224×224 inputs.
    """
    from torchvision import models

    names = torchvision_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3) or ["resnet18", "mobilenet_v3_small"]
        raise ValueError(
            f"unknown torchvision model {name!r}; did you mean "
            f"{' or '.join(TORCHVISION_PREFIX + c for c in close)}? ({len(names)} models exist, "
            "listed by torchvision.models.list_models())"
        )
    options = {"aux_logits": False, "init_weights": True} if name in _NO_AUX_LOGITS else {}
    model = models.get_model(name, weights=None, num_classes=_SENTINEL_CLASSES, **options)
    _replace(model, _classifier_name(model, name), nn.Identity())
    first_name, first = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    if first.in_channels != in_channels:
        _replace(model, first_name, _with_in_channels(first, in_channels))
    return model


def _classifier_name(model: nn.Module, name: str) -> str:
    hits = [
        module_name
        for module_name, module in model.named_modules()
        if getattr(module, "out_features", getattr(module, "out_channels", None))
        == _SENTINEL_CLASSES
    ]
    if len(hits) != 1:
        raise ValueError(f"cannot find the classifier of torchvision model {name!r}")
    return hits[0]


def _with_in_channels(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A freshly initialised copy of ``conv`` that takes ``in_channels`` channels."""
    if conv.groups != 1:
        raise ValueError("the first convolution is grouped; cannot change its input channels")
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )


def _replace(model: nn.Module, dotted_name: str, new: nn.Module) -> None:
    parent_name, _, child = dotted_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
