"""The runtime: load a bundle written by ``metriclab export``; embed, score, verify; enrol your own
classes in a :class:`Gallery` and identify new images, with ``unknown`` beyond the open-set
threshold.

Imports no training or export code, and no torch at module level: with ``backend="onnx"`` it
runs on onnxruntime, numpy, PIL and faiss alone.
"""

from metriclab.bundle.comparator import PAIR_ONNX, PAIR_TORCHSCRIPT, pair_scorer
from metriclab.bundle.embedders import BACKENDS
from metriclab.bundle.gallery import RULES, UNKNOWN, Gallery, Identification
from metriclab.bundle.openset import leave_one_class_out, threshold_at_far
from metriclab.bundle.runtime import (
    FORMAT,
    MANIFEST,
    ONNX,
    TORCHSCRIPT,
    Bundle,
    views_record,
)
from metriclab.bundle.scoring import NUMPY_DISTANCES, NumpyDistance, numpy_distance

__all__ = [
    "BACKENDS",
    "FORMAT",
    "MANIFEST",
    "NUMPY_DISTANCES",
    "ONNX",
    "PAIR_ONNX",
    "PAIR_TORCHSCRIPT",
    "RULES",
    "TORCHSCRIPT",
    "UNKNOWN",
    "Bundle",
    "Gallery",
    "Identification",
    "NumpyDistance",
    "leave_one_class_out",
    "numpy_distance",
    "pair_scorer",
    "threshold_at_far",
    "views_record",
]
