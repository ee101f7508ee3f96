"""The ONNX path: embeddings equal TorchScript's, and a bundle embeds, verifies and identifies in a
process where torch cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from metriclab.bundle import Bundle, Gallery
from tests.bundle.conftest import write_class_folders


def test_onnx_embeddings_equal_torchscript(bundle_dir: Path, test_digits) -> None:
    images = test_digits[0][:50]
    scripted = Bundle.load(bundle_dir, "torchscript")
    served = Bundle.load(bundle_dir, "onnx")
    assert scripted.engine.name == "torchscript" and served.engine.name == "onnx"
    np.testing.assert_allclose(served.embed(images), scripted.embed(images), rtol=0, atol=1e-5)


_PROGRAM = """
import json, sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError
from pathlib import Path
import metriclab
from metriclab.bundle import Bundle, Gallery
bundle_dir, enrol, probe, out = (Path(a) for a in sys.argv[1:5])
bundle = Bundle.load(bundle_dir)  # auto: no torch, so ONNX
gallery = Gallery.create(bundle, enrol)
gallery.save(out)
gallery = Gallery.load(out)
files = sorted(probe.glob("*/*.png"))
answers = gallery.identify(files, rule="vote", k=3, threshold="bundle")
score, same = bundle.verify(files[0], files[1])
print(json.dumps({
    "engine": bundle.engine.name,
    "answers": [[a.label, a.candidate, a.distance] for a in answers],
    "verify": [score, same],
    "torch_modules": sorted(m for m in sys.modules if m.split(".")[0] == "torch" and sys.modules[m] is not None),
}))
"""


def test_bundle_serves_without_torch(bundle_dir: Path, test_digits, tmp_path: Path) -> None:
    images, labels, names = test_digits
    enrol = write_class_folders(tmp_path / "enrol", images, labels, names, 2, classes=[0, 1, 2])
    probe = write_class_folders(tmp_path / "probe", images, labels, names, 2, start=5)
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(bundle_dir), str(enrol), str(probe), str(tmp_path / "g")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["engine"] == "onnx" and result["torch_modules"] == []
    # The same answers with torch: TorchScript engine, same gallery folder content.
    bundle = Bundle.load(bundle_dir, "torchscript")
    gallery = Gallery.create(bundle, enrol)
    files = sorted(probe.glob("*/*.png"))
    expected = gallery.identify(files, rule="vote", k=3, threshold="bundle")
    assert [a[0] for a in result["answers"]] == [e.label for e in expected]
    np.testing.assert_allclose(
        [a[2] for a in result["answers"]], [e.distance for e in expected], atol=1e-4
    )
    score, same = bundle.verify(files[0], files[1])
    assert abs(result["verify"][0] - score) < 1e-4 and result["verify"][1] == same
