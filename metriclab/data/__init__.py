"""Data: labelled images in memory, loaders, class-disjoint splits, samplers and episode sets."""

from metriclab.data.digits import digits
from metriclab.data.episodes import EpisodeSet
from metriclab.data.images import LabeledImages
from metriclab.data.samplers import ClassTable, PairSampler, sample_episodes
from metriclab.data.transforms import to_float

__all__ = [
    "ClassTable",
    "EpisodeSet",
    "LabeledImages",
    "PairSampler",
    "digits",
    "sample_episodes",
    "to_float",
]

# isort: off
# Loaders, decoding cache, class augmentation and the data set registry (issue 6).
from metriclab.data.augment import KochAffine, affine_matrices, rotations_as_classes, warp
from metriclab.data.folders import IMAGE_EXTENSIONS, from_csv, image_folder
from metriclab.data.images import require_min_per_class
from metriclab.data.omniglot import omniglot
from metriclab.data.registry import DATA_SETS, load_dataset

__all__ += [
    "DATA_SETS",
    "IMAGE_EXTENSIONS",
    "KochAffine",
    "affine_matrices",
    "from_csv",
    "image_folder",
    "load_dataset",
    "omniglot",
    "require_min_per_class",
    "rotations_as_classes",
    "warp",
]
# isort: on
