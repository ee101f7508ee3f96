"""CONTRIBUTING.md, shown: a loss, a distance and a data set added from this test module alone.

Nothing in the package is edited. Each component is one class plus one registration, and the
config then trains, evaluates and exports with them, exactly as with the built-in ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
import torch
from PIL import Image

from metriclab.bundle import Bundle
from metriclab.config import resolve_config
from metriclab.data import DATA_SETS, LabeledImages, image_folder
from metriclab.data.registry import DataSetSpec, LoadRequest
from metriclab.distances import DISTANCES, Distance
from metriclab.evaluation import FaissIndex
from metriclab.evaluation.run import evaluate_run
from metriclab.export import export_bundle
from metriclab.losses import LOSSES, Loss, LossInput, TrainerValue
from metriclab.training import train


class Chebyshev(Distance):
    """``max_j |a_j − b_j|``; FAISS searches it exactly with ``METRIC_Linf``."""

    name = "toy_chebyshev"
    faiss_metric = "linf"

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().amax(-1)

    def all_pairs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.unsqueeze(-2) - b.unsqueeze(-3)).abs().amax(-1)


class PullToMean(Loss):
    """Per sample: ``relu(d(x, own class mean) − min d(x, other class mean) + margin)``."""

    consumes = frozenset({LossInput.LABELED_BATCH})
    fills = MappingProxyType({"distance": TrainerValue.DISTANCE})

    def __init__(self, distance: Distance, margin: float = 0.5, reduction: str = "mean") -> None:
        super().__init__(reduction)  # type: ignore[arg-type]
        self.distance = distance
        self.margin = margin

    def per_sample(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        classes, index = labels.unique(return_inverse=True)
        sums = torch.zeros(len(classes), embeddings.shape[1]).index_add_(0, index, embeddings)
        means = sums / torch.bincount(index).unsqueeze(1)
        d = self.distance.matrix(embeddings, means)  # (B, C)
        own = d.gather(1, index.unsqueeze(1)).squeeze(1)
        other = d.masked_fill(torch.nn.functional.one_hot(index, len(classes)).bool(), torch.inf)
        return torch.relu(own - other.amin(1) + self.margin)


def _load_ink(request: LoadRequest) -> LabeledImages:
    (path,) = request.paths
    return image_folder(
        path, size=request.size, channels=1, cache=False, progress=False, invert=request.invert
    )


INK = DataSetSpec(
    loader=_load_ink,
    paths="one",
    path_help="a folder of class folders of black-on-white drawings",
    size=16,
    channels=1,
    invert=True,  # black ink on white files become white ink on black, as Omniglot's
    help="toy: class folders of dark-ink drawings",
)


def _write_ink_folder(root: Path, classes: int = 6, per_class: int = 4) -> None:
    """Black-ink PNGs on white: each class a bar at its own angle, each drawing jittered."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(16), np.arange(16), indexing="ij"), -1) - 7.5
    for c in range(classes):
        angle = np.pi * c / classes
        direction = np.array([np.cos(angle), np.sin(angle)])
        for i in range(per_class):
            off = grid @ np.array([-direction[1], direction[0]]) + rng.normal(0, 0.5)
            ink = np.abs(off) < 1.5
            folder = root / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.where(ink, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")


@pytest.fixture
def toy_components() -> Iterator[None]:
    DISTANCES.register(Chebyshev.name, Chebyshev)
    LOSSES.register("toy_pull", PullToMean)
    DATA_SETS.register("toy_ink", INK)
    try:
        yield
    finally:
        DISTANCES.unregister(Chebyshev.name)
        LOSSES.unregister("toy_pull")
        DATA_SETS.unregister("toy_ink")


def test_toy_components_train_evaluate_and_export_through_the_config(
    toy_components: None, tmp_path: Path
) -> None:
    _write_ink_folder(tmp_path / "ink")
    config = resolve_config(
        None,
        [
            "data.name=toy_ink", f"data.path={tmp_path / 'ink'}", "data.test_fraction=0.5",
            "model.distance=toy_chebyshev", "model.dim=8",
            "train.objective=triplet", "train.loss=toy_pull", "train.loss_params.margin=0.3",
            "train.classes_per_batch=3", "train.samples_per_class=2", "train.steps=4",
            "train.checkpoint_every=4", "eval.n_way=2", "eval.n_query=2", "eval.episodes=20",
            "eval.pairs=40",
        ],
    )  # fmt: skip
    run = tmp_path / "run"
    model = train(config, run, progress=False)
    assert isinstance(model.distance, Chebyshev)

    report = evaluate_run(run, plots=False, progress=False)
    (episodes,) = report.episodes.values()
    assert 0.0 <= episodes.mean <= 1.0 and len(episodes.per_episode) == 20
    split = json.loads((run / "results.json").read_text())["split"]
    assert len(split["test"]) == 3 and not set(split["test"]) & set(split["train"])

    # kNN search under the toy distance is exact: FAISS's Linf equals the distance's matrix.
    vectors = torch.randn(10, 8)
    distances, _ = FaissIndex.build(vectors, model.distance).search(vectors[:3], k=10)
    expected = model.distance.matrix(vectors[:3], vectors).sort(-1)
    np.testing.assert_allclose(distances, expected.values.numpy(), rtol=1e-5, atol=1e-6)

    # The bundle reads its preprocessing from the data set's declaration: inverted ink.
    manifest = export_bundle(run, tmp_path / "bundle")
    assert manifest["preprocess"]["invert"] is True
    assert manifest["distance"] == {"name": "toy_chebyshev"}
    bundle = Bundle.load(tmp_path / "bundle")
    files = sorted((tmp_path / "ink" / "class0").glob("*.png"))[:2]
    assert bundle.load_images(files).float().mean() < 128  # white ink on black, as trained
    trained_on = INK.loader(LoadRequest((tmp_path / "ink",), 16, 1, True, {}, cache=False))
    first = trained_on.item_ids.index(f"class0/{files[0].name}")
    with torch.no_grad():
        expected_vector = model.eval().embedding_net(
            trained_on.images[first : first + 1].float() / 255
        )
    torch.testing.assert_close(bundle.embed_files(files[:1]), expected_vector, rtol=1e-4, atol=1e-5)
