"""Embed a data set once; every metric downstream reads these vectors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from metriclab.data import LabeledImages, to_float, warp
from metriclab.data.streaming import stream


@dataclass(frozen=True)
class Embeddings:
    """Vectors of one data set.

    Attributes:
        vectors: ``(N, D)`` float32.
        labels: ``(N,)`` int64.
        item_ids: the ``N`` item ids of the embedded data, so episode sets can find their items.
    """

    vectors: torch.Tensor
    labels: torch.Tensor
    item_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] == 0 or self.vectors.shape[1] == 0:
            raise ValueError(
                f"embeddings must be a non-empty (N, D) array, got {tuple(self.vectors.shape)}"
            )
        if not torch.isfinite(self.vectors).all():
            raise ValueError("embeddings contain NaN or infinite values; check the model's weights")
        n = self.vectors.shape[0]
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(self.labels.shape)}")
        if len(self.item_ids) != n:
            raise ValueError(
                f"item_ids must have {n} entries, one per vector, got {len(self.item_ids)}"
            )

    def __len__(self) -> int:
        return self.vectors.shape[0]


@torch.no_grad()
def embed(
    embedding_net: nn.Module,
    data: LabeledImages,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = True,
    views: torch.Tensor | None = None,
    workers: int = 2,
) -> Embeddings:
    """Embed every image of ``data`` once, in eval mode, in batches, without gradients.

    ``device`` is where the batches go (default: where ``embedding_net``'s parameters are; the
    network is not moved). The network's train/eval mode is restored afterwards.

    ``views`` ``(V, 2, 3)``, affine maps such as :func:`metriclab.data.tta_views`, turn on
    test-time augmentation: each image's vector is the mean of its V warped copies' embeddings
    (V times the work), re-normalised to unit length when the network normalises its output.

    Returns :class:`Embeddings` with ``(N, D)`` float32 vectors on the CPU, ``(N,)`` labels and
    item ids. Raises ``ValueError`` for an empty data set or NaN / infinite embeddings.

    Images on disk (``data.storage=disk``) are decoded batch by batch in ``workers``
    ``DataLoader`` worker processes (:func:`metriclab.data.streaming.stream`); only one batch of
    pixels is in memory at a time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if len(data) == 0:
        raise ValueError("the data set to embed is empty; check the data path and class split")
    if views is not None and (views.ndim != 3 or views.shape[0] == 0 or views.shape[1:] != (2, 3)):
        raise ValueError(
            f"views must be a non-empty (V, 2, 3) stack of affine maps, got {tuple(views.shape)}"
        )
    if device is None:
        device = next((p.device for p in embedding_net.parameters()), torch.device("cpu"))
    was_training = embedding_net.training
    embedding_net.eval()
    chunks = []
    try:
        for images in tqdm(
            stream(data.images, batch_size, workers),
            total=-(-len(data) // batch_size),
            desc="embed",
            disable=not progress,
            leave=False,
        ):
            if views is None:
                chunks.append(embedding_net(to_float(images).to(device)).float().cpu())
                continue
            mean = sum(
                embedding_net(to_float(warp(images, view.expand(len(images), 2, 3))).to(device))
                .float()
                .cpu()
                for view in views
            ) / len(views)
            if getattr(embedding_net, "normalize", False):
                # A mean of unit vectors is shorter than 1; the model's distances expect unit length.
                mean = torch.nn.functional.normalize(mean, dim=-1)
            chunks.append(mean)
    finally:
        embedding_net.train(was_training)
    return Embeddings(torch.cat(chunks), data.labels.clone(), data.item_ids)
