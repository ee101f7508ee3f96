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
