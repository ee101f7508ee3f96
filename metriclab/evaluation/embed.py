"""Embed a data set once; every metric downstream reads these vectors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from metriclab.data import LabeledImages, to_float


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
        if self.vectors.ndim != 2 or self.vectors.shape[0] == 0:
            raise ValueError(
                f"embeddings must be a non-empty (N, D) array, got {tuple(self.vectors.shape)}"
            )
        if not torch.isfinite(self.vectors).all():
            raise ValueError("embeddings contain NaN or infinite values; check the model's weights")


@torch.no_grad()
def embed(
    embedding_net: nn.Module,
    data: LabeledImages,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Embeddings:
    """Embed every image of ``data`` in eval mode, in batches, without gradients.

    Returns :class:`Embeddings` with ``(N, D)`` float32 vectors on the CPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    was_training = embedding_net.training
    embedding_net.eval()
    chunks = []
    try:
        for start in tqdm(
            range(0, len(data), batch_size), desc="embed", disable=not progress, leave=False
        ):
            batch = to_float(data.images[start : start + batch_size]).to(device)
            chunks.append(embedding_net(batch).float().cpu())
    finally:
        embedding_net.train(was_training)
    return Embeddings(torch.cat(chunks), data.labels.clone(), data.item_ids)
