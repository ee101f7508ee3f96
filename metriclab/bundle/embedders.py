"""The two engines a bundle embeds with: TorchScript (torch) and ONNX Runtime (no torch).

Both map uint8 images ``(B, C, H, W)`` (numpy) to float32 embeddings ``(B, D)`` (numpy). torch is
imported only when the TorchScript engine is built, so the ONNX engine serves in a process
without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

#: The engines :meth:`metriclab.bundle.Bundle.load` accepts; ``auto`` is TorchScript when torch
#: imports, else ONNX.
BACKENDS = ("auto", "torchscript", "onnx")


class Embedder(Protocol):
    """uint8 ``(B, C, H, W)`` → float32 ``(B, D)``."""

    name: str

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


def torch_available() -> bool:
    """Whether torch imports here (a blocked or missing torch is ``False``)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class TorchScriptEmbedder:
    """The bundle's TorchScript module, with its test-time views (see ``views_record``)."""

    name = "torchscript"

    def __init__(self, file: Path, views: list[Any] | None, renormalize: bool) -> None:
        import torch

        self.module = torch.jit.load(str(file), map_location="cpu").eval()
        self.views = None if views is None else torch.tensor(views, dtype=torch.float64)
        self.renormalize = renormalize

    def tensor(self, images: Any) -> Any:
        """Embeddings as a torch tensor ``(B, D)`` of uint8 torch ``images``."""
        import torch

        with torch.no_grad():
            if self.views is None:
                return self.module(images)
            from metriclab.data.augment import warp

            # The same arithmetic, in the same order, as metriclab.evaluation.embed with views.
            mean = sum(
                self.module(warp(images, view.expand(len(images), 2, 3))) for view in self.views
            )
            mean = mean / len(self.views)
            return torch.nn.functional.normalize(mean, dim=-1) if self.renormalize else mean

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        return self.tensor(torch.from_numpy(np.ascontiguousarray(images))).numpy()


class OnnxEmbedder:
    """The bundle's ONNX graph on ONNX Runtime's CPU provider."""

    name = "onnx"

    def __init__(self, file: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise RuntimeError(
                "the ONNX engine needs onnxruntime; pip install 'metriclab[export]'"
            ) from None
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(file), options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        feed = {self.input: np.ascontiguousarray(images, dtype=np.uint8)}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)
