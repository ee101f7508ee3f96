"""Data: labelled images in memory, loaders, class-disjoint splits, samplers and episode sets."""

from metriclab.data.digits import digits
from metriclab.data.episodes import EpisodeSet
from metriclab.data.images import LabeledImages
from metriclab.data.omniglot_runs import load_omniglot_runs
from metriclab.data.preprocess import Preprocess
from metriclab.data.samplers import (
    ClassBalancedSampler,
    ClassTable,
    Episode,
    EpisodeSampler,
    PairSampler,
    TripletSampler,
    sample_episodes,
    split_episode,
)
from metriclab.data.transforms import to_float

__all__ = [
    "ClassBalancedSampler",
    "ClassTable",
    "Episode",
    "EpisodeSampler",
    "EpisodeSet",
    "LabeledImages",
    "PairSampler",
    "Preprocess",
    "TripletSampler",
    "digits",
    "load_omniglot_runs",
    "sample_episodes",
    "split_episode",
    "to_float",
]

# isort: off
# Loaders, decoding cache, class augmentation and the data set registry (issue 6).
from metriclab.data.augment import (
    AUGMENTATIONS,
    TTA_VIEWS,
    Augmentation,
    KochAffine,
    affine_flip_views,
    affine_matrices,
    flip_views,
    mirrors_as_classes,
    rotations_as_classes,
    tta_views,
    warp,
)
from metriclab.data.images import require_min_per_class

# Each loader registers its data set on import; this order is the order listings show.
from metriclab.data.omniglot import omniglot
from metriclab.data.folders import IMAGE_EXTENSIONS, from_csv, image_folder
from metriclab.data.dml import query_gallery
from metriclab.data.faces import faces_orl
from metriclab.data.registry import (
    DATA_SETS,
    DataParam,
    DataSetSpec,
    LoadRequest,
    check_params,
    load_dataset,
)

# Streaming from disk and photo augmentations (issue 14); photo_transforms registers its
# augmentations in AUGMENTATIONS on import.
from metriclab.data.streaming import DiskImages, pixels, stream
from metriclab.data.photo_transforms import PhotoAugment

# Pen strokes (issue 18): loading, rendering, stroke-level augmentation (registers "strokes").
from metriclab.data.strokes import (
    Drawing,
    StrokeRecord,
    omniglot_strokes,
    read_stroke_records,
    write_stroke_records,
)
from metriclab.data.render import PackedStrokes, render_drawings
from metriclab.data.stroke_augment import StrokeAugmentation, StrokeBank, StrokeJitter
from metriclab.data.stroke_sets import render_records

__all__ += [
    "AUGMENTATIONS",
    "DATA_SETS",
    "IMAGE_EXTENSIONS",
    "TTA_VIEWS",
    "Augmentation",
    "DataParam",
    "DataSetSpec",
    "DiskImages",
    "Drawing",
    "KochAffine",
    "LoadRequest",
    "PackedStrokes",
    "PhotoAugment",
    "StrokeAugmentation",
    "StrokeBank",
    "StrokeJitter",
    "StrokeRecord",
    "affine_flip_views",
    "affine_matrices",
    "check_params",
    "faces_orl",
    "flip_views",
    "from_csv",
    "image_folder",
    "load_dataset",
    "mirrors_as_classes",
    "omniglot",
    "omniglot_strokes",
    "pixels",
    "query_gallery",
    "read_stroke_records",
    "render_drawings",
    "render_records",
    "require_min_per_class",
    "rotations_as_classes",
    "stream",
    "tta_views",
    "warp",
    "write_stroke_records",
]
# isort: on
