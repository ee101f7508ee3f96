"""Models: backbones by name, the embedding network, and the Siamese and triplet wrappers."""

from metriclab.models.backbones import BACKBONES, backbone, conv4, output_features
from metriclab.models.nets import EmbeddingNet, SiameseNet, TripletNet

__all__ = [
    "BACKBONES",
    "EmbeddingNet",
    "SiameseNet",
    "TripletNet",
    "backbone",
    "conv4",
    "output_features",
]
