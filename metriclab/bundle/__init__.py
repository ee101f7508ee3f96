"""The runtime: load a bundle written by ``metriclab export``, embed, score and verify.

Imports no training or export code, so a service that only serves a bundle loads neither.
"""

from metriclab.bundle.runtime import (
    FORMAT,
    MANIFEST,
    ONNX,
    TORCHSCRIPT,
    Bundle,
    views_record,
)

__all__ = [
    "FORMAT",
    "MANIFEST",
    "ONNX",
    "TORCHSCRIPT",
    "Bundle",
    "views_record",
]
