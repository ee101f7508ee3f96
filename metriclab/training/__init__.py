"""Training: objectives over one shared loop, checkpoints that survive crashes, run folders."""

from metriclab.training.builders import (
    build_data,
    build_model,
    load_data,
    split_validation,
)
from metriclab.training.loop import CONFIG, NonFiniteLoss, Trainer, train
from metriclab.training.objectives import OBJECTIVES, build_objective
from metriclab.training.runs import RESULTS, evaluate_run, load_run, open_run

__all__ = [
    "CONFIG",
    "OBJECTIVES",
    "RESULTS",
    "NonFiniteLoss",
    "Trainer",
    "build_data",
    "build_model",
    "build_objective",
    "evaluate_run",
    "load_data",
    "load_run",
    "open_run",
    "split_validation",
    "train",
]
