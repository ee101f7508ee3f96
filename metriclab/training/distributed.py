"""Multi-process training under ``torchrun``: process group, sharding and gathering.

Every rank draws the same global batch (the objectives are seeded by the step), embeds its own
contiguous shard, and gathers the other ranks' embeddings, so losses that mine within the batch
(triplet, episodic) see the whole batch, and every rank computes the same full-batch loss.

Why the gradients come out exact: DDP averages every gradient over the ranks. A parameter after
the gather (the Siamese bias, WeightedL1 weights, class weights of CAMRI or a classifier head)
already gets the full-batch gradient on every rank, and the average of equal values is that
value. The embedding network gets, on each rank, only its shard's share of the full-batch
gradient (the other ranks' embeddings are gathered without gradient); the gather multiplies the
gradient into the local shard by the world size, so the average over ranks is the sum of the
shares, the full-batch gradient. Scaling the loss instead (as before) doubled, under two ranks,
every parameter outside the embedding network and the logged loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``factor``."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (``size == 1`` without torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, positions: np.ndarray) -> np.ndarray:
        """This rank's contiguous slice of a global batch (equal slices on every rank)."""
        if len(positions) % self.size:
            raise ValueError(
                f"a batch of {len(positions)} images cannot be split evenly over {self.size} "
                "ranks; choose a batch size divisible by the number of processes"
            )
        per_rank = len(positions) // self.size
        return positions[self.rank * per_rank : (self.rank + 1) * per_rank]

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """The whole batch ``(size · B, …)`` in rank order; gradients flow into ``local`` only,
        times ``size`` so that DDP's average over ranks is their sum (see the module note)."""
        if self.size == 1:
            return local
        parts = [torch.empty_like(local) for _ in range(self.size)]
        dist.all_gather(parts, local.detach().contiguous())
        parts[self.rank] = _ScaleGradient.apply(local, float(self.size))
        return torch.cat(parts)

    def all_agree(self, flag: bool) -> bool:
        """True if ``flag`` is true on any rank (used so every rank stops together)."""
        if self.size == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def init_from_environment(device: str) -> World:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); otherwise a single rank."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return World(rank=dist.get_rank(), size=dist.get_world_size())


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
