"""Training: objectives over one shared loop, checkpoints that survive crashes, run folders.

Run folders are opened by :mod:`metriclab.runs` and evaluated by :mod:`metriclab.evaluation.run`;
``open_run``, ``load_run``, ``evaluate_run`` and ``checkpoints`` stay importable from here.
"""

import sys

from metriclab import checkpoints
from metriclab.training.builders import (
    build_data,
    build_model,
    load_data,
    split_validation,
)
from metriclab.training.comparators import (  # registers train.objective=matching, relation
    MatchingObjective,
    RelationObjective,
)
from metriclab.training.cot import CotObjective  # registers train.objective=cot
from metriclab.training.loop import CONFIG, RESUMABLE, NonFiniteLoss, Trainer, train
from metriclab.training.objectives import OBJECTIVES, build_objective
from metriclab.training.runs import RESULTS, evaluate_run, load_run, open_run

# ``metriclab.training.checkpoints`` moved to ``metriclab.checkpoints`` (below run folders); the
# old module path stays an alias of the same module.
sys.modules.setdefault("metriclab.training.checkpoints", checkpoints)

__all__ = [
    "CONFIG",
    "OBJECTIVES",
    "RESULTS",
    "RESUMABLE",
    "CotObjective",
    "MatchingObjective",
    "NonFiniteLoss",
    "RelationObjective",
    "Trainer",
    "build_data",
    "build_model",
    "build_objective",
    "checkpoints",
    "evaluate_run",
    "load_data",
    "load_run",
    "open_run",
    "split_validation",
    "train",
]
