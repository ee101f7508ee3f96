"""The runtime of a bundle: load it, embed images as the run was evaluated, score and verify pairs.

A bundle folder (written by :func:`metriclab.export.export_bundle`) holds ``bundle.json`` (the
preprocessing, the views, the distance, the bias, the verification threshold, the open-set
threshold and, for a run trained with a learned comparator, its pair scorer), ``embedder.pt`` (TorchScript: uint8 ``(B, C, H, W)`` → float32 ``(B, D)``) and
``embedder.onnx`` (the same graph in ONNX). Nothing here imports training or export code, and
nothing imports torch at module level: with ``backend="onnx"`` a bundle embeds, scores, verifies
and identifies (:mod:`metriclab.bundle.gallery`) with onnxruntime, numpy, PIL and faiss alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metriclab.bundle.comparator import PairScorer, pair_scorer
from metriclab.bundle.embedders import (
    BACKENDS,
    Embedder,
    OnnxEmbedder,
    TorchScriptEmbedder,
    torch_available,
)
from metriclab.bundle.scoring import NumpyDistance, numpy_distance
from metriclab.bundle.sources import decode_image

MANIFEST = "bundle.json"
TORCHSCRIPT = "embedder.pt"
ONNX = "embedder.onnx"
FORMAT = 2
"""The newest bundle.json layout this runtime reads. 1: embedder, distance, bias, threshold; 2 adds
a learned comparator's pair scorer (``"comparator"``). Export writes 1 unless a comparator is
present, so that runtimes that read only format 1 keep loading every bundle they can score."""


class _NewerFormat(ValueError):
    """A bundle.json this runtime cannot read because a newer metriclab wrote it."""


def _check_format(path: Path, manifest: Any) -> None:
    """Refuse a manifest whose ``"format"`` is not one this runtime reads (absent means 1)."""
    written = manifest.get("format", 1) if isinstance(manifest, dict) else 1
    if isinstance(written, bool) or not isinstance(written, int) or not 1 <= written <= FORMAT:
        made_by = manifest.get("metriclab", "an unknown version")
        raise _NewerFormat(
            f"{path} has bundle format {written!r} (written by metriclab {made_by}), but this "
            f"metriclab reads formats 1 to {FORMAT}; upgrade metriclab or export the run again"
        )


def views_record(views: Any, renormalize: bool) -> dict[str, Any] | None:
    """How a bundle embeds an image: None for one view, else the ``(V, 2, 3)`` affine maps of
    test-time augmentation (:func:`metriclab.data.tta_views`, a torch tensor) and whether the
    mean is put back to unit length."""
    if views is None:
        return None
    return {
        "kind": "tta",
        "count": len(views),
        "matrices": np.asarray(views, dtype=np.float64).tolist(),
        "renormalize": renormalize,
    }


def _engine(folder: Path, manifest: dict[str, Any], backend: str) -> Embedder:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    files, views = manifest["files"], manifest.get("views")
    if backend == "auto":
        backend = "torchscript" if torch_available() else "onnx"
    if backend == "torchscript":
        if not torch_available():
            raise RuntimeError(
                f"bundle {folder}: the TorchScript engine needs torch; install torch or load "
                "it with backend='onnx'"
            )
        matrices = None if views is None else views["matrices"]
        renormalize = False if views is None else bool(views["renormalize"])
        return TorchScriptEmbedder(folder / files["torchscript"], matrices, renormalize)
    if not files.get("onnx"):
        raise RuntimeError(
            f"bundle {folder} has no ONNX embedder; install the export extra "
            "(pip install 'metriclab[export]') and export the run again, or install torch"
        )
    if views is not None:
        raise RuntimeError(
            f"bundle {folder} embeds with {views['count']} test-time views, which the ONNX "
            "engine cannot warp; serve it with torch installed (backend='torchscript')"
        )
    return OnnxEmbedder(folder / files["onnx"])


class Bundle:
    """A loaded bundle: embed images or files, score pairs, verify against the threshold.

    Attributes:
        folder, manifest: where it was loaded from and its ``bundle.json`` record.
        identity: the first 16 hex digits of SHA-256 of ``bundle.json``; galleries record it.
        engine: what embeds (``engine.name`` is ``"torchscript"`` or ``"onnx"``).
        scorer: the distance in numpy (:mod:`metriclab.bundle.scoring`); ``distance`` is the
            torch module (built on first use, needs torch).
        bias, threshold: a pair scores ``bias − d(a, b)`` and is one class when ≥ ``threshold``.
        comparator: the learned pair scorer of a run trained with a comparator (Matching or
            Relation Networks, :mod:`metriclab.bundle.comparator`), which then gives the pair
            score instead of ``bias − d(a, b)``; None in other bundles.
        open_set: the open-set record (``{"distance": t, ...}``: an identification whose best
            match lies farther than t is ``unknown``), None in bundles made before it.
        size, channels, invert: the preprocessing; split: the run's class split record.
    """

    def __init__(self, folder: Path, backend: str = "auto") -> None:
        path = folder / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} is not a metriclab bundle (no {MANIFEST}); make one with 'metriclab export'"
            )
        raw = path.read_bytes()
        self.folder = folder
        self.identity = hashlib.sha256(raw).hexdigest()[:16]
        try:
            manifest = json.loads(raw.decode("utf-8"))
            self.manifest: dict[str, Any] = manifest
            _check_format(path, manifest)
            self.config: dict[str, Any] = manifest["config"]
            self.scorer: NumpyDistance = numpy_distance(manifest["distance"])
            self.bias = float(manifest["bias"])
            self.threshold = float(manifest["threshold"]["value"])
            self.open_set: dict[str, Any] | None = manifest.get("open_set")
            preprocess = manifest["preprocess"]
            self.size, self.channels = int(preprocess["size"]), int(preprocess["channels"])
            self.invert = bool(preprocess["invert"])
            views = manifest.get("views")  # absent in bundles of one view
            self.renormalize = False if views is None else bool(views["renormalize"])
            self.split: dict[str, Any] | None = manifest.get("split")
            self.engine: Embedder = _engine(folder, manifest, backend)
            comparator = manifest.get("comparator")  # absent in bundles without one
            self.comparator: PairScorer | None = (
                None if comparator is None else pair_scorer(folder, comparator, self.engine.name)
            )
        except _NewerFormat:
            raise
        except (
            KeyError,
            TypeError,
            ValueError,
            json.JSONDecodeError,
            UnicodeDecodeError,
        ) as failure:
            raise ValueError(
                f"bundle {folder} is damaged or from another metriclab version ({failure}); export it again"
            ) from None
        self._distance: Any = None

    @classmethod
    def load(cls, folder: Path, backend: str = "auto") -> Bundle:
        """Read ``folder/bundle.json`` and its embedder: ``backend`` ``"torchscript"``,
        ``"onnx"`` (no torch needed) or ``"auto"`` (TorchScript when torch imports)."""
        return cls(Path(folder), backend)

    @property
    def views(self) -> Any:
        """The ``(V, 2, 3)`` float64 torch tensor of test-time views, None for one view."""
        views = self.manifest.get("views")
        if views is None:
            return None
        import torch

        return torch.tensor(views["matrices"], dtype=torch.float64)

    @property
    def distance(self) -> Any:
        """The torch :class:`~metriclab.distances.Distance` (needs torch; ``scorer`` does not)."""
        if self._distance is None:
            from metriclab.distances import distance_from_dict

            # distance_from_dict also reads format-1 records ({"name", "weights"}). Frozen: a
            # served distance is not trained, and its learned weights (weighted L1) must not
            # make every matrix it returns carry a gradient graph.
            distance = distance_from_dict(self.manifest["distance"])
            self._distance = distance.eval().requires_grad_(False)
        return self._distance

    def decode(self, paths: Sequence[Path]) -> np.ndarray:
        """Image files as uint8 ``(N, C, size, size)``, converted as the bundle's preprocessing
        says (other channels or sizes are converted, not refused)."""
        return np.stack(
            [decode_image(Path(p), self.size, self.channels, self.invert) for p in paths]
        )

    def embed(self, images: np.ndarray | Sequence[Path], batch_size: int = 256) -> np.ndarray:
        """float32 embeddings ``(N, D)`` of uint8 images ``(N, C, size, size)`` or image files."""
        if not isinstance(images, np.ndarray):
            images = self.decode(list(images))
        if images.ndim != 4 or images.shape[1:] != (self.channels, self.size, self.size):
            raise ValueError(
                f"the bundle embeds ({self.channels}, {self.size}, {self.size}) images, got "
                f"{tuple(images.shape[1:])}; decode them with Bundle.decode"
            )
        parts = [self.engine(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def load_images(self, paths: list[Path]) -> Any:
        """Image files as a uint8 torch tensor ``(B, C, size, size)`` (see :meth:`decode`)."""
        import torch

        return torch.from_numpy(self.decode(paths))

    def embed_images(self, images: Any, batch_size: int = 256) -> Any:
        """Embeddings, a torch tensor ``(N, D)``, of uint8 torch images ``(N, C, size, size)``."""
        import torch

        return torch.from_numpy(self.embed(images.numpy(), batch_size))

    def embed_files(self, paths: list[Path]) -> Any:
        """Embeddings, a torch tensor ``(N, D)``, of image files."""
        return self.embed_images(self.load_images(paths))

    def score(self, a: Any, b: Any) -> Any:
        """Scores ``bias − d(a, b)`` of aligned embeddings ``(N, D)`` → ``(N,)``, or the learned
        comparator's pair score when the bundle has one; numpy arrays give numpy scores, torch
        tensors torch scores."""
        if self.comparator is not None:
            if isinstance(a, np.ndarray):
                return self.comparator(a, b)
            import torch

            return torch.from_numpy(self.comparator(a.numpy(), b.numpy()))
        if isinstance(a, np.ndarray):
            return (self.bias - self.scorer.pairwise(a, b)).astype(np.float32)
        import torch

        with torch.no_grad():
            return self.bias - self.distance(a, b)

    def verify(self, first: Path, second: Path) -> tuple[float, bool]:
        """The score of two image files and whether it reaches the threshold (same class)."""
        vectors = self.embed([first, second])
        value = float(self.score(vectors[:1], vectors[1:])[0])
        return value, value >= self.threshold
