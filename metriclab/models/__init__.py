"""Models: backbones by name, the embedding network, and the Siamese and triplet wrappers."""

from metriclab.models.backbones import (
    BACKBONES,
    ResidualBlock12,
    backbone,
    check_backbone_name,
    conv4,
    koch,
    output_features,
    resnet12,
)
from metriclab.models.nets import EmbeddingNet, SiameseNet, TripletNet
from metriclab.models.torchvision_backbone import torchvision_backbone, torchvision_names

__all__ = [
    "BACKBONES",
    "EmbeddingNet",
    "ResidualBlock12",
    "SiameseNet",
    "TripletNet",
    "backbone",
    "check_backbone_name",
    "conv4",
    "koch",
    "output_features",
    "resnet12",
    "torchvision_backbone",
    "torchvision_names",
]
