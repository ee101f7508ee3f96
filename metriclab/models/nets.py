"""The embedding network and the Siamese and triplet wrappers that share it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from metriclab.distances import Distance
from metriclab.models.backbones import output_features
from metriclab.models.whitening import WHITEN_SOURCES, Whitening


class EmbeddingNet(nn.Module):
    """Backbone → linear projection to ``dim`` → optional sigmoid → optional L2 normalisation.

    Args:
        backbone: maps ``(B, C, H, W)`` float images to ``(B, F)`` (or a map that flattens to it).
        dim: embedding dimension D.
        in_channels, image_size: the input shape, used once to size the projection.
        normalize: L2-normalise the embeddings (off by default: nothing hidden).
        sigmoid: apply a sigmoid after the projection, as Koch et al. 2015 do in their 4096-unit
            embedding layer (off by default).
        mean, std: per-channel input normalisation ``(x − mean) / std`` applied first in
            ``forward`` (e.g. the ImageNet statistics a pretrained backbone was trained with,
            Krizhevsky et al. 2012); both or neither. Kept as buffers so every path that feeds
            this net (training, embedding, TorchScript/ONNX export, the bundle runtime) normalises
            alike; without them no buffer exists and state dicts are as before.

    :meth:`attach_whitening` appends a fixed linear map fitted after training
    (:mod:`metriclab.models.whitening`): once fitted, ``forward`` returns the map of the
    embedding (or of the backbone's features, bypassing the head), re-normalised when
    ``normalize`` is on; until then it changes nothing. A map of the backbone may read the
    outputs of chosen modules of the backbone instead of its last output (``layers``;
    :meth:`whitening_features`).

    ``forward``: ``(B, C, H, W)`` float in [0, 1] → ``(B, D)``, with ``H = W = image_size``: a
    backbone that pools globally would accept other sizes, but its features would then describe
    strokes at another scale than it was trained on, so a mismatch is refused, not resized.
    """

    def __init__(
        self,
        backbone: nn.Module,
        dim: int,
        in_channels: int = 1,
        image_size: int = 28,
        normalize: bool = False,
        sigmoid: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.input_mean: torch.Tensor | None
        self.input_std: torch.Tensor | None
        if mean is None and std is None:
            self.input_mean = self.input_std = None
        else:
            scale = _channel_stats(mean, std, in_channels)
            self.register_buffer("input_mean", scale[0])
            self.register_buffer("input_std", scale[1])
        self.backbone = backbone
        self.in_channels = in_channels
        self.image_size = image_size
        self.dim = dim
        self.normalize = normalize
        self.sigmoid = sigmoid
        self.feature_size = output_features(backbone, in_channels, image_size)
        self.head = nn.Linear(self.feature_size, dim)
        self.whitening: Whitening | None = None
        self.whiten_from = "embedding"
        self.whiten_layers: tuple[str, ...] = ()

    def attach_whitening(
        self, source: str = "embedding", out_features: int = 0, layers: Sequence[str] = ()
    ) -> Whitening:
        """Append an (inactive) :class:`Whitening` reading ``source`` (``embedding``: the
        ``(B, D)`` embedding; ``backbone``: the ``(B, F)`` backbone features, or with ``layers``
        the outputs of those modules of the backbone, :meth:`whitening_features`) and giving
        ``out_features`` outputs (0: as many as it reads); returns it for fitting."""
        if source not in WHITEN_SOURCES:
            raise ValueError(
                f"unknown whitening source {source!r}; choose one of {', '.join(WHITEN_SOURCES)}"
            )
        if layers and source != "backbone":
            raise ValueError(
                f"whitening layers {tuple(layers)} are read from the backbone; attach the map "
                "with source='backbone' (train.whiten_from=backbone)"
            )
        self.whiten_layers = _check_layers(self.backbone, layers)
        if source == "embedding":
            size = self.dim
        elif not self.whiten_layers:
            size = self.feature_size
        else:
            was_training = self.training
            self.eval()  # batch norm on one zero image: running statistics, not batch ones
            try:
                with torch.no_grad():
                    probe = torch.zeros(1, self.in_channels, self.image_size, self.image_size)
                    size = int(self.whitening_features(probe).shape[1])
            finally:
                self.train(was_training)
        self.whitening = Whitening(size, out_features or size)
        self.whiten_from = source
        return self.whitening

    def whitening_features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → the ``(B, F)`` vectors a backbone map reads: the backbone's output
        (:meth:`backbone_features`), or with :attr:`whiten_layers` the flattened outputs of those
        modules of the backbone (names as in ``backbone.named_modules()``), concatenated in order.

        Earlier layers keep where things are (at 48 px Conv-4's third block and its last block
        before pooling give 6 × 6 maps, its output 3 × 3) and have been shaped less by the few
        training classes, as hypercolumns (Hariharan et al. 2015) and retrieval descriptors
        from inner layers (Babenko & Lempitsky 2015) exploit.
        """
        if not self.whiten_layers:
            return self.backbone_features(images)
        images = self._standardised(images)
        captured: dict[str, list[torch.Tensor]] = {name: [] for name in self.whiten_layers}
        modules = dict(self.backbone.named_modules())
        handles = [
            modules[name].register_forward_hook(_keep_output(captured[name]))
            for name in self.whiten_layers
        ]
        try:
            self.backbone(images)
        finally:
            for handle in handles:
                handle.remove()
        for name, outputs in captured.items():
            if len(outputs) != 1:
                raise ValueError(
                    f"backbone module {name!r} ran {len(outputs)} times in one forward pass, so "
                    "its output is ambiguous; name a module that runs once in train.whiten_layers"
                )
        return torch.cat([captured[name][0] for name in self.whiten_layers], dim=1)

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → the ``(B, F)`` flattened backbone output the head reads."""
        return self.backbone(self._standardised(images)).flatten(1)

    def _standardised(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` in the input statistics the backbone was built for (a pretrained
        backbone's mean and std), unchanged when it declares none; every backbone pass uses it."""
        if self.input_mean is not None and self.input_std is not None:
            return (images - self.input_mean) / self.input_std
        return images

    def check_images(self, images: torch.Tensor) -> None:
        """Raise naming the fix when ``images`` are not what this net was built for."""
        if not isinstance(images, torch.Tensor):
            raise TypeError(
                f"EmbeddingNet takes a torch tensor, got {type(images).__name__}; "
                "wrap it with torch.from_numpy(images)"
            )
        if not images.is_floating_point():
            raise TypeError(
                f"EmbeddingNet takes float images in [0, 1], got {images.dtype}; convert uint8 "
                "images with metriclab.data.to_float(images)"
            )
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(images.shape)}"
            )
        size = self.image_size
        if tuple(images.shape[2:]) != (size, size):
            height, width = images.shape[2:]
            raise ValueError(
                f"this EmbeddingNet was built for {size}×{size} images (image_size={size}), got "
                f"{height}×{width}; resize the images to {size} px (data size={size}) or build "
                f"the net with image_size={height}"
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing():  # a trace (export) records shapes, not Python checks
            self.check_images(images)
        whitening = self.whitening if self.whitening is not None and self.whitening.active else None
        if whitening is not None and self.whiten_from == "backbone":
            embeddings = whitening(self.whitening_features(images))
            return F.normalize(embeddings, dim=-1) if self.normalize else embeddings
        embeddings = self.head(self.backbone_features(images))
        if self.sigmoid:
            embeddings = torch.sigmoid(embeddings)
        if self.normalize:
            embeddings = F.normalize(embeddings, dim=-1)
        if whitening is None:
            return embeddings
        # The map is fitted on what the trained net gave (unit vectors when it normalises);
        # its output is re-normalised so cosine distances stay what the run's distance expects.
        embeddings = whitening(embeddings)
        return F.normalize(embeddings, dim=-1) if self.normalize else embeddings


def _check_layers(backbone: nn.Module, layers: Sequence[str]) -> tuple[str, ...]:
    """``layers`` as a tuple of module names after checking each names a distinct submodule of
    ``backbone`` (as in ``backbone.named_modules()``); ``()`` passes for any backbone."""
    chosen = tuple(str(name) for name in layers)
    names = [name for name, _ in backbone.named_modules() if name]
    for name in chosen:
        if name not in names:
            shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
            raise ValueError(
                f"whitening layer {name!r} is not a module of the backbone; fix "
                f"train.whiten_layers with names from backbone.named_modules(): {shown}"
            )
    if len(set(chosen)) != len(chosen):
        raise ValueError(
            f"train.whiten_layers names a module twice: {list(chosen)}; list each once"
        )
    return chosen


def _keep_output(store: list[torch.Tensor]) -> Callable[[nn.Module, object, torch.Tensor], None]:
    """A forward hook appending the module's flattened ``(B, F)`` output to ``store``: a copy,
    since a later in-place module (``ReLU(inplace=True)`` after a batch norm) would change it."""

    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        store.append(output.flatten(1).clone())

    return hook


def _channel_stats(
    mean: Sequence[float] | None, std: Sequence[float] | None, channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` as ``(C, 1, 1)`` float32 tensors, checked: one value per channel,
    both given, every std positive and finite."""
    if mean is None or std is None:
        raise ValueError("EmbeddingNet mean and std go together: give both or neither")
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"EmbeddingNet mean and std need one value per input channel ({channels}), got "
            f"{len(mean)} and {len(std)}"
        )
    mean_t = torch.tensor([float(m) for m in mean], dtype=torch.float32)
    std_t = torch.tensor([float(s) for s in std], dtype=torch.float32)
    if not bool(torch.isfinite(mean_t).all()) or not bool(
        (torch.isfinite(std_t) & (std_t > 0)).all()
    ):
        raise ValueError(
            f"EmbeddingNet mean must be finite and std positive and finite, got "
            f"{mean_t.tolist()} and {std_t.tolist()}"
        )
    return mean_t[:, None, None], std_t[:, None, None]


class SiameseNet(nn.Module):
    """Two towers with shared weights and a distance head (Koch et al. 2015).

    ``forward(x1, x2)``: two ``(B, C, H, W)`` batches → ``(B,)`` verification logits
    ``b − d(f(x1), f(x2))``; ``σ(logit)`` is the probability that the pair shows one class.
    With ``WeightedL1`` this is Koch's ``σ(Σ_j α_j |h1_j − h2_j| + b)`` with ``α = −w ≤ 0``.
    """

    def __init__(self, embedding_net: EmbeddingNet, distance: Distance) -> None:
        super().__init__()
        self.embedding_net = embedding_net
        self.distance = distance
        self.bias = nn.Parameter(torch.ones(()))

    def logits(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """Logits of aligned embedding pairs ``(…, N, D)`` → ``(…, N)``."""
        return self.bias - self.distance(e1, e2)

    def logit_matrix(self, queries: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """Logits of every query × support pair: ``(…, Nq, D)`` × ``(…, Ns, D)`` → ``(…, Nq, Ns)``."""
        return self.bias - self.distance.matrix(queries, support)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        embeddings = self.embedding_net(torch.cat([x1, x2]))
        e1, e2 = embeddings.split([x1.shape[0], x2.shape[0]])
        return self.logits(e1, e2)


class TripletNet(nn.Module):
    """Three towers with shared weights: ``forward(a, p, n)`` → three ``(B, D)`` embeddings."""

    def __init__(self, embedding_net: EmbeddingNet) -> None:
        super().__init__()
        self.embedding_net = embedding_net

    def forward(
        self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        embeddings = self.embedding_net(torch.cat([anchor, positive, negative]))
        a, p, n = embeddings.split([anchor.shape[0], positive.shape[0], negative.shape[0]])
        return a, p, n
