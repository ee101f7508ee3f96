"""metriclab: metric learning and few-shot learning, checked against the papers."""

import torch  # noqa: F401  (torch before faiss: both bundle OpenMP runtimes)

from metriclab import data, distances, evaluation, losses, models

__version__ = "0.1.0"

# The runtime (imports no training code); after __version__, which bundles record.
from metriclab.bundle import Bundle

__all__ = ["Bundle", "__version__", "data", "distances", "evaluation", "losses", "models"]
