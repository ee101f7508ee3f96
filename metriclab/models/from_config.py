"""Config → model: the embedding network and distance head a config describes."""

from __future__ import annotations

from metriclab.config import Config
from metriclab.distances import build_distance
from metriclab.models.backbones import backbone
from metriclab.models.nets import EmbeddingNet, SiameseNet


def build_model(config: Config, in_channels: int) -> SiameseNet:
    """The embedding network and distance head a config describes."""
    embedding_net = EmbeddingNet(
        backbone(config.model.backbone, in_channels, width=config.model.width),
        dim=config.model.dim,
        in_channels=in_channels,
        image_size=config.data.size,
        normalize=config.model.normalize,
        sigmoid=config.model.sigmoid,
    )
    distance = build_distance(config.model.distance, config.model.dim, config.model.distance_init)
    return SiameseNet(embedding_net, distance)
