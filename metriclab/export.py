"""Deployable bundles: a TorchScript embedder, its preprocessing, the distance and a threshold.

``export_bundle(run_dir, out_dir)`` writes::

    out_dir/embedder.pt     TorchScript: uint8 (B, C, H, W) → float32 (B, D)
    out_dir/embedder.onnx   the same graph in ONNX, when the onnx package is installed
    out_dir/bundle.json     preprocessing, distance (with learned weights), bias and threshold

A pair is scored as the Siamese logit ``bias − d(f(a), f(b))``; it shows one class when the score
is at least the calibrated threshold. :class:`Bundle` loads all of it back without metriclab's
training code, and :func:`Bundle.verify` is what ``metriclab verify`` runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metriclab import __version__
from metriclab.atomic import atomic_write, write_text
from metriclab.data import PairSampler
from metriclab.data.decode import decode_one
from metriclab.distances import Distance, distance_from_dict
from metriclab.evaluation import embed, verification_metrics
from metriclab.training import open_run, split_validation

MANIFEST = "bundle.json"
TORCHSCRIPT = "embedder.pt"
ONNX = "embedder.onnx"
FORMAT = 1


class _Uint8Embedder(nn.Module):
    """uint8 images in, embeddings out: the preprocessing travels with the weights."""

    def __init__(self, embedding_net: nn.Module) -> None:
        super().__init__()
        self.embedding_net = embedding_net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embedding_net(images.to(torch.float32) / 255.0)


def _threshold(scores: np.ndarray, same: np.ndarray, target_far: float | None) -> dict[str, Any]:
    result = verification_metrics(scores, same)
    if target_far is None:
        return {"value": result.eer_threshold, "rule": "equal error rate", "eer": result.eer}
    allowed = result.fpr <= target_far
    best = int(np.flatnonzero(allowed)[-1])  # the loosest threshold still within the FAR
    value = (
        float(result.thresholds[best])
        if np.isfinite(result.thresholds[best])
        else float(scores.max())
    )
    return {
        "value": value,
        "rule": f"false accept rate ≤ {target_far:g}",
        "tar": float(result.tpr[best]),
    }


def export_bundle(
    run_dir: Path, out_dir: Path, target_far: float | None = None, progress: bool = False
) -> dict[str, Any]:
    """Export a trained run as a bundle; return the manifest.

    The threshold is calibrated on seeded pairs of the validation classes when the run has them,
    else of the unseen test classes (the manifest says which): the EER threshold, or the one
    whose false accept rate is at most ``target_far``.
    """
    if target_far is not None and not 0.0 < target_far < 1.0:
        raise ValueError(f"target_far must lie in (0, 1), got {target_far}")
    config, model, (train, test) = open_run(run_dir)
    _, val = split_validation(train, config)
    calibration, calibrated_on = (
        (val, "validation classes") if val is not None else (test, "unseen test classes")
    )
    vectors = embed(model.embedding_net, calibration, progress=progress).vectors
    first, second, same = next(
        iter(PairSampler(calibration.labels, config.eval.pairs, 1, seed=config.eval.seed))
    )
    with torch.no_grad():
        scores = model.logits(vectors[first], vectors[second]).numpy()
    channels, size = calibration.channels, calibration.images.shape[-1]
    manifest = {
        "format": FORMAT,
        "metriclab": __version__,
        "run": config.name,
        "config": config.to_dict(),
        "preprocess": {
            "size": size,
            "channels": channels,
            "invert": calibration.preprocess.invert,
        },
        "distance": model.distance.to_dict(),
        "bias": float(model.bias.detach()),
        "threshold": {**_threshold(scores, same, target_far), "calibrated_on": calibrated_on},
        "files": {"torchscript": TORCHSCRIPT},
    }
    embedder = _Uint8Embedder(model.embedding_net).eval()
    example = calibration.images[:2]
    with torch.no_grad():
        traced = torch.jit.trace(embedder, example)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / TORCHSCRIPT, binary=True) as handle:
        torch.jit.save(traced, handle)
    manifest["files"]["onnx"] = _export_onnx(embedder, example, out_dir)
    write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _export_onnx(embedder: nn.Module, example: torch.Tensor, out_dir: Path) -> str | None:
    """Write ONNX when the exporter's dependencies are installed; None otherwise."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return None
    try:
        with atomic_write(out_dir / ONNX, binary=True) as handle:
            torch.onnx.export(
                embedder,
                (example,),
                handle,
                input_names=["images"],
                output_names=["embeddings"],
                dynamic_axes={"images": {0: "batch"}},
                dynamo=False,
            )
    except Exception:  # an unsupported operator: TorchScript remains the bundle's format
        return None
    return ONNX


@dataclass
class Bundle:
    """A loaded bundle: embed image files and score pairs."""

    folder: Path
    config: dict[str, Any]
    embedder: torch.jit.ScriptModule
    distance: Distance
    bias: float
    threshold: float
    size: int
    channels: int
    invert: bool

    @classmethod
    def load(cls, folder: Path) -> Bundle:
        path = folder / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} is not a metriclab bundle (no {MANIFEST}); make one with 'metriclab export'"
            )
        try:
            manifest = json.loads(path.read_text("utf-8"))
            distance = distance_from_dict(manifest["distance"])
            embedder = torch.jit.load(
                str(folder / manifest["files"]["torchscript"]), map_location="cpu"
            )
            preprocess = manifest["preprocess"]
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
            [self.embedder(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        )

    def embed_files(self, paths: list[Path]) -> torch.Tensor:
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
