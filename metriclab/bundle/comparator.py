"""A bundle's learned pair scorer: the comparator a run was trained with, as its verification score.

A run trained with ``train.objective=matching`` or ``relation`` carries a learned comparator
(Matching Networks, Vinyals et al. 2016; Relation Networks, Sung et al. 2018). Exported, its pair
score (``Comparator.pair_scores``: aligned ``(N, D)`` × ``(N, D)`` → ``(N,)``, higher = more
alike) travels as two graphs, ``pair_scorer.pt`` (TorchScript) and ``pair_scorer.onnx`` (ONNX),
and ``bundle.json`` records it under ``"comparator"``::

    {"name": "relation", "score": "...", "files": {"torchscript": ..., "onnx": ...}}

The bundle then verifies pairs with it instead of ``bias − distance``, and galleries rank
matches with it: a comparator gives no FAISS form, so FAISS shortlists each query's nearest items
under the embedding's distance and the comparator re-scores them (:mod:`metriclab.bundle.identify`).
As with the embedder, torch is imported only for the TorchScript engine, so ONNX serves without
torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

#: File names of the exported pair scorer.
PAIR_TORCHSCRIPT = "pair_scorer.pt"
PAIR_ONNX = "pair_scorer.onnx"


class PairScorer(Protocol):
    """float32 ``(N, D)`` × ``(N, D)`` → float32 ``(N,)``, higher = more alike."""

    name: str

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray: ...


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


class TorchScriptPairScorer:
    """The comparator's pair score as a TorchScript module."""

    name = "torchscript"

    def __init__(self, file: Path) -> None:
        import torch

        self.module = torch.jit.load(str(file), map_location="cpu").eval()

    def tensor(self, first: Any, second: Any) -> Any:
        """Scores as a torch tensor ``(N,)`` of torch embeddings ``(N, D)``."""
        import torch

        with torch.no_grad():
            return self.module(first.float(), second.float())

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        import torch

        return self.tensor(torch.from_numpy(_f32(first)), torch.from_numpy(_f32(second))).numpy()


class OnnxPairScorer:
    """The comparator's pair score on ONNX Runtime's CPU provider (no torch)."""

    name = "onnx"

    def __init__(self, file: Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise RuntimeError(
                "the ONNX pair scorer needs onnxruntime; pip install 'metriclab[export]'"
            ) from None
        self.session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        feed = dict(zip(self.inputs, (_f32(first), _f32(second)), strict=True))
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32).reshape(len(first))


def pair_scorer(folder: Path, record: Mapping[str, Any], engine: str) -> PairScorer:
    """The pair scorer a ``bundle.json`` comparator record describes, on the embedder's engine
    (``"torchscript"`` or ``"onnx"``), so a bundle served without torch scores without it too."""
    files = record["files"]
    if engine == "torchscript":
        return TorchScriptPairScorer(folder / files["torchscript"])
    if not files.get("onnx"):
        raise RuntimeError(
            f"bundle {folder} has no ONNX pair scorer for its {record['name']!r} comparator; "
            "install the export extra (pip install 'metriclab[export]') and export the run "
            "again, or install torch"
        )
    return OnnxPairScorer(folder / files["onnx"])
