"""The runtime of a bundle: load it, embed images as the run was evaluated, score and verify pairs.

A bundle folder (written by :func:`metriclab.export.export_bundle`) holds ``bundle.json`` (the
preprocessing, the views, the distance, the bias and the threshold) and ``embedder.pt``
(TorchScript: uint8 ``(B, C, H, W)`` → float32 ``(B, D)``). Nothing here imports training or
export code: a bundle serves with metriclab's data decoding, distances and torch alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metriclab.data.augment import warp
from metriclab.data.decode import decode_one
from metriclab.distances import Distance, distance_from_dict

MANIFEST = "bundle.json"
TORCHSCRIPT = "embedder.pt"
ONNX = "embedder.onnx"
FORMAT = 1


def views_record(views: torch.Tensor | None, renormalize: bool) -> dict[str, Any] | None:
    """How a bundle embeds an image: None for one view, else the ``(V, 2, 3)`` affine maps of
    test-time augmentation (:func:`metriclab.data.tta_views`) and whether the mean is put back
    to unit length."""
    if views is None:
        return None
    return {
        "kind": "tta",
        "count": len(views),
        "matrices": views.to(torch.float64).tolist(),
        "renormalize": renormalize,
    }


@dataclass
class Bundle:
    """A loaded bundle: embed images or image files, score pairs, verify against the threshold.

    ``views`` ``(V, 2, 3)`` (None: one view) are the test-time augmentation maps the run was
    evaluated with: an image's embedding is the mean over its V warped copies, as
    :func:`metriclab.evaluation.embed` computes it, so the bundle's scores equal the report's.
    """

    folder: Path
    config: dict[str, Any]
    embedder: torch.jit.ScriptModule
    distance: Distance
    bias: float
    threshold: float
    size: int
    channels: int
    invert: bool
    views: torch.Tensor | None = None
    renormalize: bool = False
    #: The class split of the run (``split.json``'s record), None in older bundles.
    split: dict[str, Any] | None = None

    @classmethod
    def load(cls, folder: Path) -> Bundle:
        """Read ``folder/bundle.json`` and its TorchScript embedder (on the CPU)."""
        path = folder / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} is not a metriclab bundle (no {MANIFEST}); make one with 'metriclab export'"
            )
        try:
            manifest = json.loads(path.read_text("utf-8"))
            # distance_from_dict also reads format-1 records ({"name", "weights"}).
            distance = distance_from_dict(manifest["distance"])
            embedder = torch.jit.load(
                str(folder / manifest["files"]["torchscript"]), map_location="cpu"
            )
            preprocess = manifest["preprocess"]
            views = manifest.get("views")  # absent in bundles of one view
            return cls(
                folder,
                manifest["config"],
                embedder.eval(),
                distance.eval(),
                float(manifest["bias"]),
                float(manifest["threshold"]["value"]),
                int(preprocess["size"]),
                int(preprocess["channels"]),
                bool(preprocess["invert"]),
                None if views is None else torch.tensor(views["matrices"], dtype=torch.float64),
                False if views is None else bool(views["renormalize"]),
                manifest.get("split"),
            )
        except (KeyError, TypeError, ValueError, RuntimeError, json.JSONDecodeError) as failure:
            raise ValueError(
                f"bundle {folder} is damaged or from another metriclab version ({failure}); export it again"
            ) from None

    def load_images(self, paths: list[Path]) -> torch.Tensor:
        """Decode image files exactly as training decoded its data: uint8 ``(B, C, size, size)``."""
        arrays = []
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"image {path} does not exist")
            arrays.append(
                decode_one(path.read_bytes(), str(path), self.size, self.channels, self.invert)
            )
        return torch.from_numpy(np.stack(arrays))

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Embeddings ``(N, D)`` of uint8 images ``(N, C, size, size)``, in batches."""
        if images.shape[1:] != (self.channels, self.size, self.size):
            raise ValueError(
                f"the bundle embeds ({self.channels}, {self.size}, {self.size}) images, got "
                f"{tuple(images.shape[1:])}; load the data at data.size={self.size}"
            )
        return torch.cat(
            [
                self._embed_batch(images[i : i + batch_size])
                for i in range(0, len(images), batch_size)
            ]
        )

    def _embed_batch(self, images: torch.Tensor) -> torch.Tensor:
        if self.views is None:
            return self.embedder(images)
        # The same arithmetic, in the same order, as metriclab.evaluation.embed with views.
        mean = sum(
            self.embedder(warp(images, view.expand(len(images), 2, 3))) for view in self.views
        )
        mean = mean / len(self.views)
        return torch.nn.functional.normalize(mean, dim=-1) if self.renormalize else mean

    def embed_files(self, paths: list[Path]) -> torch.Tensor:
        """Embeddings ``(N, D)`` of image files, decoded as :meth:`load_images` does."""
        return self.embed_images(self.load_images(paths))

    @torch.no_grad()
    def score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scores ``bias − d(a, b)`` of aligned embeddings ``(N, D)`` → ``(N,)``."""
        return self.bias - self.distance(a, b)

    def verify(self, first: Path, second: Path) -> tuple[float, bool]:
        """The score of two image files and whether it reaches the threshold (same class)."""
        vectors = self.embed_files([first, second])
        value = float(self.score(vectors[:1], vectors[1:])[0])
        return value, value >= self.threshold
