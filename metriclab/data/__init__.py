"""Data: labelled images in memory, loaders, class-disjoint splits, samplers and episode sets."""

from metriclab.data.digits import digits
from metriclab.data.episodes import EpisodeSet
from metriclab.data.images import LabeledImages
from metriclab.data.omniglot_runs import load_omniglot_runs
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
    "TripletSampler",
    "digits",
    "load_omniglot_runs",
    "sample_episodes",
    "split_episode",
    "to_float",
]
