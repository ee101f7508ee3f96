"""Any ``timm`` model as a backbone (``timm:<name>``): optional, imported only when asked for.

timm (Wightman, "PyTorch Image Models") is an optional extra (``pip install metriclab[timm]``).
Models are built with ``pretrained=False`` (nothing is downloaded); pretrained weights come from a
local state-dict file through ``model.weights``, as for every backbone.
"""

from __future__ import annotations

from torch import nn

TIMM_PREFIX = "timm:"


def timm_backbone(name: str, in_channels: int) -> nn.Module:
    """``timm.create_model(name)`` without its classifier: ``(B, C, H, W)`` → ``(B, F)`` pooled
    features (``F = model.num_features``, e.g. 512 for ``resnet18``), taking ``in_channels``."""
    try:
        import timm
    except ImportError:
        # A ValueError: the config names a backbone this installation lacks (CLI: error, exit 2).
        raise ValueError(
            f"model.backbone={TIMM_PREFIX}{name} needs timm; install it with "
            "pip install 'metriclab[timm]'"
        ) from None
    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:3] or ["resnet18", "efficientnet_b0"]
        raise ValueError(
            f"unknown timm model {name!r}; did you mean "
            f"{' or '.join(TIMM_PREFIX + c for c in close)}? (timm.list_models() lists them)"
        )
    return timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels)
