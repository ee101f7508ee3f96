"""metriclab: metric learning and few-shot learning, checked against the papers.

The top level is lazy (PEP 562): ``import metriclab`` loads nothing heavy, ``ml.data``,
``ml.models`` … import their subpackage (and torch) on first use, and ``ml.Bundle`` /
``ml.Gallery`` load only the runtime, so a bundle serves on ONNX Runtime without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = ("data", "distances", "evaluation", "losses", "models")
_RUNTIME = ("Bundle", "Gallery")

__all__ = [
    "Bundle",
    "Gallery",
    "__version__",
    "data",
    "distances",
    "evaluation",
    "losses",
    "models",
]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"metriclab.{name}")
        globals()[name] = module
        return module
    if name in _RUNTIME:
        value = getattr(importlib.import_module("metriclab.bundle"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metriclab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBPACKAGES, *_RUNTIME])
