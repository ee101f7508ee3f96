"""Backbones: convolutional feature extractors, looked up by name through one registry.

Every backbone maps ``(B, C, H, W)`` float images to ``(B, F)`` features (or a map that flattens
to it); :class:`~metriclab.models.EmbeddingNet` adds the projection to the embedding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from metriclab.models.timm_backbone import TIMM_PREFIX, timm_backbone
from metriclab.models.torchvision_backbone import TORCHVISION_PREFIX, torchvision_backbone
from metriclab.models.weights import apply_weights
from metriclab.registry import Registry


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 conv → batch norm → ReLU → 2×2 max pool: one block of Conv-4."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def conv4(in_channels: int = 1, hidden: int = 64, pool_last: bool = True) -> nn.Module:
    """Conv-4 of Vinyals et al. 2016 / Snell et al. 2017: four conv blocks, then flatten.

    ``(B, C, H, W)`` → ``(B, hidden · ⌊H/16⌋ · ⌊W/16⌋)``; 28×28 inputs give 64 features.
    ``pool_last=False`` drops the last block's max pool, so the features keep the ``⌊H/8⌋ ×
    ⌊W/8⌋`` map (3 × 3 × 64 = 576 at 28 px) and with it where each stroke is, at the same
    convolution cost. On the Omniglot validation alphabets this raised 20-way within-alphabet
    one-shot accuracy from 86.6 % to 88.1 % (BENCHMARKS.md, model selection).
    """
    last = conv_block(hidden, hidden)
    return nn.Sequential(
        conv_block(in_channels, hidden),
        conv_block(hidden, hidden),
        conv_block(hidden, hidden),
        last if pool_last else last[:-1],
        nn.Flatten(),
    )


def koch(in_channels: int = 1, widths: Sequence[int] = (64, 128, 128, 256)) -> nn.Module:
    """The convolutional tower of Koch et al. 2015 (Siamese networks for one-shot recognition, Fig. 4).

    conv 10×10 → ReLU → max pool → conv 7×7 → ReLU → max pool → conv 4×4 → ReLU → max pool →
    conv 4×4 → ReLU → flatten, with 64-128-128-256 filters (valid convolutions, no batch norm).
    ``(B, C, 105, 105)`` → ``(B, 256·6·6 = 9216)``.

    Koch's next layer, the 4096-unit fully connected layer with a sigmoid, *is the embedding*: the
    weighted L1 distance is taken between its outputs. It is therefore the head of
    :class:`~metriclab.models.EmbeddingNet`, not part of this backbone: the head is the one place
    that sets the embedding dimension, so a backbone that ended in its own 4096-unit layer would be
    followed by a second, redundant projection. Koch's exact network is
    ``EmbeddingNet(koch(1), dim=4096, image_size=105, sigmoid=True)``.
    """
    c1, c2, c3, c4 = _four_widths(widths)
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, kernel_size=10),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, kernel_size=7),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(c2, c3, kernel_size=4),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(c3, c4, kernel_size=4),
        nn.ReLU(inplace=True),
        nn.Flatten(),
    )


class ResidualBlock12(nn.Module):
    """One ResNet-12 block: three 3×3 conv-BN layers (LeakyReLU 0.1 between), a 1×1 conv-BN
    shortcut, LeakyReLU 0.1 after the sum, then 2×2 max pool. ``(B, Cin, H, W)`` →
    ``(B, Cout, ⌊H/2⌋, ⌊W/2⌋)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()

        def conv_bn(cin: int) -> list[nn.Module]:
            conv = nn.Conv2d(cin, out_channels, kernel_size=3, padding=1, bias=False)
            return [conv, nn.BatchNorm2d(out_channels)]

        self.body = nn.Sequential(
            *conv_bn(in_channels),
            nn.LeakyReLU(0.1),
            *conv_bn(out_channels),
            nn.LeakyReLU(0.1),
            *conv_bn(out_channels),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.activation = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.body(x) + self.shortcut(x)))


def resnet12(in_channels: int = 3, widths: Sequence[int] = (64, 160, 320, 640)) -> nn.Module:
    """The few-shot ResNet-12 (Oreshkin et al. 2018, TADAM; Lee et al. 2019, MetaOptNet).

    Four :class:`ResidualBlock12` with widths 64-160-320-640 (Lee et al.; TADAM used
    64-128-256-512), then global average pooling as in TADAM: ``(B, C, H, W)`` →
    ``(B, widths[-1])`` for any ``H, W ≥ 16``. MetaOptNet's DropBlock regulariser and its flattened
    (not pooled) output are not reproduced; pass smaller ``widths`` to train on CPU.
    """
    c1, c2, c3, c4 = _four_widths(widths)
    return nn.Sequential(
        ResidualBlock12(in_channels, c1),
        ResidualBlock12(c1, c2),
        ResidualBlock12(c2, c3),
        ResidualBlock12(c3, c4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def _four_widths(widths: Sequence[int]) -> tuple[int, int, int, int]:
    if len(widths) != 4 or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be four positive channel counts, got {tuple(widths)}")
    c1, c2, c3, c4 = (int(w) for w in widths)
    return c1, c2, c3, c4


def _scaled(widths: Sequence[int], width: float) -> tuple[int, ...]:
    return tuple(max(1, round(w * width)) for w in widths)


#: A backbone builder ``(in_channels, width) -> nn.Module``; ``width`` multiplies every channel count.
BackboneBuilder = Callable[[int, float], nn.Module]

#: The built-in backbones by name; ``torchvision:<model>`` names are resolved by :func:`backbone`.
BACKBONES: Registry[BackboneBuilder] = Registry("backbone", key="model.backbone")
BACKBONES.register("conv4", lambda c, width: conv4(c, hidden=_scaled((64,), width)[0]))
BACKBONES.register(
    "conv4_nopool", lambda c, width: conv4(c, hidden=_scaled((64,), width)[0], pool_last=False)
)
BACKBONES.register("koch", lambda c, width: koch(c, widths=_scaled((64, 128, 128, 256), width)))
BACKBONES.register(
    "resnet12", lambda c, width: resnet12(c, widths=_scaled((64, 160, 320, 640), width))
)

_PREFIXED = (
    f" or {TORCHVISION_PREFIX}<model> (e.g. {TORCHVISION_PREFIX}resnet18)"
    f" or {TIMM_PREFIX}<model> (e.g. {TIMM_PREFIX}resnet18)"
)

#: Prefix → (library, builder ``(model, in_channels) -> nn.Module``): models of other libraries.
_LIBRARIES: dict[str, tuple[str, Callable[[str, int], nn.Module]]] = {
    TORCHVISION_PREFIX: ("torchvision", torchvision_backbone),
    TIMM_PREFIX: ("timm", timm_backbone),
}


def check_backbone_name(name: str) -> None:
    """Raise :class:`~metriclab.registry.UnknownName` unless ``name`` is a registered backbone,
    ``torchvision:<model>`` or ``timm:<model>``; the library's model itself is checked when it is
    built (listing a library's models means importing it, which validation should not pay for)."""
    for prefix, (library, _) in _LIBRARIES.items():
        if isinstance(name, str) and name.startswith(prefix):
            if not name.removeprefix(prefix):
                raise ValueError(
                    f"model.backbone={name!r} names no {library} model; write "
                    f"{prefix}<model>, e.g. {prefix}resnet18"
                )
            return
    if name not in BACKBONES:
        raise BACKBONES.unknown(name, extra=_PREFIXED)


def backbone(
    name: str,
    in_channels: int = 1,
    width: float = 1.0,
    weights: str | None = None,
    freeze_bn: bool = False,
) -> nn.Module:
    """The backbone a config names, for inputs with ``in_channels`` channels.

    ``name`` is a name in :data:`BACKBONES` (``conv4``, ``conv4_nopool``, ``koch``, ``resnet12``),
    ``torchvision:<model>`` (any torchvision classification model, classifier removed, first
    convolution taking ``in_channels``) or ``timm:<model>`` (optional extra). ``width`` scales the
    channel counts of the built-in backbones (e.g. 0.25 for CPU experiments); library models take
    only 1.0. ``weights`` is ``None``/``"none"``, a state-dict file, or a torchvision weight name
    read from the torch hub cache (:func:`metriclab.models.weights.apply_weights`; RGB filters are
    summed for 1-channel input). ``freeze_bn`` keeps every batch-norm layer on its running
    statistics in training too (:func:`freeze_batch_norm`).
    """
    if in_channels < 1:
        raise ValueError(f"in_channels must be at least 1, got {in_channels}")
    if not width > 0:
        raise ValueError(f"width must be positive (1.0 is the published size), got {width}")
    check_backbone_name(name)
    prefix = next((p for p in _LIBRARIES if name.startswith(p)), None)
    if prefix is None:
        module = BACKBONES.get(name)(in_channels, width)
    else:
        if width != 1.0:
            raise ValueError(f"width applies only to {BACKBONES.choices()}; drop it for {name}")
        module = _LIBRARIES[prefix][1](name.removeprefix(prefix), in_channels)
    torchvision_model = name.removeprefix(prefix) if prefix == TORCHVISION_PREFIX else None
    apply_weights(module, weights, torchvision_model)
    return freeze_batch_norm(module) if freeze_bn else module


def _use_running_statistics(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    module.training = False


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with every batch-norm layer normalising by its running statistics, which stay
    as loaded, even in training mode; the affine scale and shift still learn.

    Fine-tuning an ImageNet network on small batches of few classes (8 classes × 4 images in
    the DML protocol) would otherwise replace its well-estimated statistics with noisy ones;
    freezing them is the usual DML practice (Wu et al. 2017; Musgrave et al. 2020). A forward
    pre-hook does it, so ``model.train()`` anywhere cannot undo it and the state dict is unchanged.
    """
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.register_forward_pre_hook(_use_running_statistics)
    return module


@torch.no_grad()
def output_features(module: nn.Module, in_channels: int, image_size: int) -> int:
    """The flat feature count ``module`` produces for one ``(in_channels, image_size, image_size)`` image."""
    was_training = module.training
    module.eval()
    try:
        out = module(torch.zeros(1, in_channels, image_size, image_size))
    except (RuntimeError, AssertionError) as failure:  # torchvision ViTs assert their input size
        raise ValueError(
            f"the backbone cannot take {image_size}×{image_size} inputs with {in_channels} "
            f"channel(s): {failure}; use larger images or another backbone"
        ) from None
    finally:
        module.train(was_training)
    return int(out.flatten(1).shape[1])
