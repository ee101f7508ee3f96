"""Models: backbones by name, the embedding network, and the Siamese and triplet wrappers."""

from metriclab.models.backbones import (
    BACKBONES,
    ResidualBlock12,
    backbone,
    check_backbone_name,
    conv4,
    freeze_batch_norm,
    koch,
    output_features,
    resnet12,
)
from metriclab.models.comparators import (
    COMPARATORS,
    Comparator,
    MatchingComparator,
    RelationComparator,
    build_comparator,
)
from metriclab.models.nets import EmbeddingNet, SiameseNet, TripletNet
from metriclab.models.timm_backbone import timm_backbone
from metriclab.models.torchvision_backbone import torchvision_backbone, torchvision_names
from metriclab.models.weights import (
    WeightReport,
    apply_weights,
    load_weights,
    read_state_dict,
    torchvision_weights_file,
)

__all__ = [
    "BACKBONES",
    "COMPARATORS",
    "Comparator",
    "EmbeddingNet",
    "MatchingComparator",
    "RelationComparator",
    "ResidualBlock12",
    "SiameseNet",
    "TripletNet",
    "WeightReport",
    "apply_weights",
    "backbone",
    "build_comparator",
    "check_backbone_name",
    "conv4",
    "freeze_batch_norm",
    "koch",
    "load_weights",
    "output_features",
    "read_state_dict",
    "resnet12",
    "timm_backbone",
    "torchvision_backbone",
    "torchvision_names",
    "torchvision_weights_file",
]
