"""Write a deployable bundle from a trained run: a TorchScript embedder, its preprocessing, the
views it embeds with, the distance and a calibrated threshold.

``export_bundle(run_dir, out_dir)`` writes::

    out_dir/embedder.pt     TorchScript: uint8 (B, C, H, W) → float32 (B, D)
    out_dir/embedder.onnx   the same graph in ONNX (the ``export`` extra: onnx), which the
                            runtime serves with onnxruntime and no torch
    out_dir/bundle.json     preprocessing, views, distance (with learned weights), bias, threshold,
                            open-set threshold and the class split of the run
    out_dir/pair_scorer.pt  (and .onnx) for a run trained with a learned comparator (Matching or
                            Relation Networks): its pair score, recorded under "comparator"

A pair is scored as the Siamese logit ``bias − d(f(a), f(b))``, or by the run's learned comparator
when it has one (``Comparator.pair_scores``); it shows one class when the score is at least the
calibrated threshold. The run is opened by :mod:`metriclab.runs`, embedded as its
evaluation embeds (test-time augmentation included) and its calibration pairs scored by the
report's own :func:`~metriclab.evaluation.score_pairs`. The open-set threshold (the distance
beyond which :class:`~metriclab.bundle.Gallery` answers ``unknown``) is calibrated on the same
classes, leave-one-class-out, at the target false-alarm rate, and the bundle records DIR@FAR on
the unseen test classes with half of them not enrolled (:mod:`metriclab.evaluation.openset`). :class:`~metriclab.bundle.Bundle` (the
runtime, also importable from here) loads it all back without training or export code.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metriclab import __version__
from metriclab.atomic import atomic_write, write_text
from metriclab.bundle import (
    FORMAT,
    MANIFEST,
    ONNX,
    PAIR_ONNX,
    PAIR_TORCHSCRIPT,
    TORCHSCRIPT,
    Bundle,
    leave_one_class_out,
    numpy_distance,
    threshold_at_far,
    views_record,
)
from metriclab.bundle.comparator import PairScorer
from metriclab.bundle.identify import SHORTLIST, nearest_of, pair_distances
from metriclab.data import PairSampler, pixels
from metriclab.evaluation import embed, score_pairs, verification_metrics
from metriclab.evaluation.openset import evaluate_open_set
from metriclab.evaluation.run import run_pair_head, run_views
from metriclab.runs import open_run

__all__ = ["FORMAT", "MANIFEST", "ONNX", "OPEN_SET_FAR", "TORCHSCRIPT", "Bundle", "export_bundle"]

#: The open-set false-alarm rate calibrated when ``target_far`` is not given.
OPEN_SET_FAR = 0.01
#: At most this many seeded calibration items probe the leave-one-class-out calibration.
OPEN_SET_PROBES = 2000


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


def _open_set(
    distance: dict[str, Any], vectors: np.ndarray, labels: np.ndarray, far: float, seed: int,
    comparator: PairScorer | None,
) -> dict[str, Any]:  # fmt: skip
    """The open-set distance threshold at false-alarm rate ``far``, leave-one-class-out on the
    calibration embeddings ``(N, D)`` with labels ``(N,)``, scored by the runtime's own numpy
    distance (or ranked by the learned ``comparator`` as a gallery ranks, ``−score`` as the
    distance) so the runtime rejects exactly as calibrated."""
    scorer = numpy_distance(distance)

    def nearest(ids: np.ndarray, other: bool) -> np.ndarray:
        return nearest_of(scorer, vectors, labels, ids, other, comparator, SHORTLIST)

    impostor, genuine = leave_one_class_out(
        labels, lambda ids: nearest(ids, True), lambda ids: nearest(ids, False),
        OPEN_SET_PROBES, seed,
    )  # fmt: skip
    value = threshold_at_far(impostor, far)
    return {
        "distance": value,
        "ranked_by": "distance" if comparator is None else "comparator",
        **({"shortlist": SHORTLIST} if comparator is not None else {}),
        "rule": f"false-alarm rate ≤ {far:g}, leave-one-class-out",
        "probes": len(impostor),
        "accepted_genuine": float((genuine <= value).mean()) if len(genuine) else None,
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
    run = open_run(run_dir)
    config, model, val, test = run.config, run.model, run.data.validation, run.data.test
    calibration, calibrated_on = (
        (val, "validation classes") if val is not None else (test, "unseen test classes")
    )
    views = run_views(config)
    vectors = embed(model.embedding_net, calibration, progress=progress, views=views).vectors
    first, second, same = next(
        iter(PairSampler(calibration.labels, config.eval.pairs, 1, seed=config.eval.seed))
    )
    head = run_pair_head(model)  # the report's pair score: the comparator's, if it has one
    with torch.no_grad():
        scores = score_pairs(head, vectors, torch.as_tensor(first), torch.as_tensor(second))
    scores = scores.numpy()
    far = OPEN_SET_FAR if target_far is None else target_far
    comparator = getattr(model, "comparator", None)
    # The comparator ranks gallery matches as the runtime's pair scorer will (−score).
    ranker = None if comparator is None else _TorchPairScorer(comparator)
    open_set = {
        **_open_set(
            model.distance.to_dict(),
            vectors.numpy(),
            calibration.labels.numpy(),
            far,
            config.eval.seed,
            ranker,
        ),
        "calibrated_on": calibrated_on,
    }
    test_vectors = (
        vectors
        if val is None
        else embed(model.embedding_net, test, progress=progress, views=views).vectors
    )
    open_set["test"] = {
        "protocol": "half the unseen test classes enrolled with one item each; seeded",
        **evaluate_open_set(
            test_vectors.numpy(), test.labels.numpy(),
            numpy_distance(model.distance.to_dict()).matrix if ranker is None
            else partial(pair_distances, ranker),
            seed=config.eval.seed,
        ).to_dict(),
    }  # fmt: skip
    channels, size = calibration.channels, calibration.images.shape[-1]
    manifest = {
        "format": 1,  # raised to FORMAT below when a comparator needs it
        "metriclab": __version__,
        "run": config.name,
        "config": config.to_dict(),
        "preprocess": {
            "size": size,
            "channels": channels,
            "invert": calibration.preprocess.invert,
        },
        "views": views_record(views, bool(getattr(model.embedding_net, "normalize", False))),
        "distance": model.distance.to_dict(),
        "bias": float(model.bias.detach()),
        "threshold": {**_threshold(scores, same, target_far), "calibrated_on": calibrated_on},
        "open_set": open_set,
        "files": {"torchscript": TORCHSCRIPT},
        "split": run.split_record(),
    }
    embedder = _Uint8Embedder(model.embedding_net).eval()
    example = pixels(calibration.images[:2])  # decoded, also when the run streams from disk
    with torch.no_grad():
        traced = torch.jit.trace(embedder, example)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / TORCHSCRIPT, binary=True) as handle:
        torch.jit.save(traced, handle)
    # uint8 (B, C, H, W) images with a dynamic batch → (B, D) embeddings.
    manifest["files"]["onnx"] = _export_onnx(
        embedder, (example,), (["images"], ["embeddings"]), {"images": {0: "batch"}}, out_dir / ONNX
    )
    if comparator is not None:
        manifest["comparator"] = _export_comparator(
            comparator, config.model.comparator, vectors[:2], out_dir
        )
        manifest["format"] = FORMAT  # runtimes reading only format 1 cannot score it
    write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


class _PairHead(nn.Module):
    """A comparator's verification score alone: aligned ``(N, D)`` × ``(N, D)`` → ``(N,)``."""

    def __init__(self, comparator: nn.Module) -> None:
        super().__init__()
        self.comparator = comparator

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.comparator.pair_scores(first, second)


class _TorchPairScorer:
    """A comparator's torch pair score as the runtime's numpy :class:`PairScorer`
    (``(N, D)`` × ``(N, D)`` → ``(N,)``), for calibrating before the graphs are written."""

    name = "torch"

    def __init__(self, comparator: nn.Module) -> None:
        self.comparator = comparator

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            pair = (torch.from_numpy(np.ascontiguousarray(x, np.float32)) for x in (first, second))
            return self.comparator.pair_scores(*pair).numpy()


def _export_comparator(
    comparator: nn.Module, name: str, example: torch.Tensor, out_dir: Path
) -> dict[str, Any]:
    """Write the comparator's pair score as TorchScript and (with the export extra) ONNX, and
    return its ``bundle.json`` record: the bundle verifies pairs with it (see
    :mod:`metriclab.bundle.comparator`)."""
    head = _PairHead(comparator).eval()
    pair = (example[:1].contiguous(), example[1:2].contiguous())
    with torch.no_grad():
        traced = torch.jit.trace(head, pair)
    with atomic_write(out_dir / PAIR_TORCHSCRIPT, binary=True) as handle:
        torch.jit.save(traced, handle)
    # Aligned (N, D) × (N, D) embeddings with a dynamic pair count → (N,) scores.
    pairs = {"first": {0: "pairs"}, "second": {0: "pairs"}, "scores": {0: "pairs"}}
    onnx_file = _export_onnx(
        head, pair, (["first", "second"], ["scores"]), pairs, out_dir / PAIR_ONNX
    )
    doc = (type(comparator).pair_scores.__doc__ or "").split("\n\n")[0]
    return {
        "name": name,
        "score": " ".join(doc.split()),
        "files": {"torchscript": PAIR_TORCHSCRIPT, "onnx": onnx_file},
    }


def _export_onnx(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    names: tuple[list[str], list[str]],
    batch: dict[str, dict[int, str]],
    path: Path,
) -> str | None:
    """Write ``module`` as ONNX to ``path`` (input and output ``names``, ``batch`` the dynamic
    axes) when the exporter's dependencies are installed (the ``export`` extra); returns the file
    name, or None without those dependencies or for an operator ONNX lacks."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return None
    try:
        with atomic_write(path, binary=True) as handle:
            torch.onnx.export(
                module,
                inputs,
                handle,
                input_names=names[0],
                output_names=names[1],
                dynamic_axes=batch,
                dynamo=False,
            )
    except Exception:  # an unsupported operator: TorchScript remains the bundle's format
        return None
    return path.name
