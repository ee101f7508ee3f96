"""Fit a run's ``train.whiten`` map at the end of training and fold it into its embedder.

The map (:mod:`metriclab.models.whitening`) is fitted on the training classes' vectors from the
checkpoint that evaluation will use, then written back into that checkpoint, so everything that
opens the run (evaluation, export, galleries, bundles) embeds through it without knowing it is
there. ``whitening.json`` in the run folder records what was fitted on what.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metriclab import checkpoints
from metriclab.atomic import write_text
from metriclab.config import Config
from metriclab.data import LabeledImages
from metriclab.evaluation import embed
from metriclab.models import EmbeddingNet, SiameseNet
from metriclab.models.whitening import fit_whitening

#: The record of the fitted map, in the run folder.
WHITENING = "whitening.json"


class _BackboneFeatures(nn.Module):
    """``(B, C, H, W)`` → the ``(B, F)`` backbone features the net's map reads (its backbone's
    output, or the modules ``train.whiten_layers`` names), so :func:`embed` can batch them."""

    def __init__(self, net: EmbeddingNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.whitening_features(images)


def fit_embedder_whitening(
    net: EmbeddingNet, data: LabeledImages, config: Config, device: str = "cpu"
) -> dict[str, Any]:
    """Fit ``net``'s attached whitening on ``data`` (the training classes) and switch it on.

    The vectors are the ones the map will read: ``net``'s embeddings with the map off, or its
    backbone features (``train.whiten_from=backbone``; with ``train.whiten_layers``, those
    modules' outputs). Returns a JSON-ready record.
    """
    whitening = net.whitening
    if whitening is None:
        raise ValueError(
            "this embedding net has no whitening attached; build the model with train.whiten set"
        )
    if data.num_classes < 2:
        raise ValueError(
            f"train.whiten needs at least 2 training classes to fit on, got {data.num_classes}; "
            "set train.whiten=none"
        )
    whitening.reset()  # the vectors to fit on are the trained net's own, without an old map
    source = _BackboneFeatures(net) if net.whiten_from == "backbone" else net
    vectors = embed(source, data, progress=False, device=device)
    train = config.train
    mean, matrix = fit_whitening(
        vectors.vectors,
        vectors.labels,
        train.whiten,
        train.whiten_shrinkage,
        whitening.out_features,
    )
    whitening.set(mean, matrix)
    return {
        "kind": train.whiten,
        "shrinkage": train.whiten_shrinkage,
        "source": net.whiten_from,
        "layers": list(net.whiten_layers),
        "in_features": int(matrix.shape[0]),
        "out_features": int(matrix.shape[1]),
        "classes": data.num_classes,
        "items": len(data),
    }


def whiten_run(model: SiameseNet, run_dir: Path, data: LabeledImages, config: Config) -> Path:
    """Load the checkpoint evaluation uses into ``model``, fit its whitening on ``data``, save
    the checkpoint back and write :data:`WHITENING`; returns the checkpoint's path."""
    path = checkpoints.for_evaluation(run_dir)
    state = checkpoints.load(path)
    model.load_state_dict(state["model"])
    record = fit_embedder_whitening(model.embedding_net, data, config, config.train.device)
    state["model"] = model.state_dict()
    checkpoints.save(path, state)
    record["checkpoint"] = str(path.relative_to(run_dir))
    write_text(run_dir / WHITENING, json.dumps(record, indent=2) + "\n")
    return path
