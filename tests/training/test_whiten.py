"""train.whiten: fitted at the end of training on the training classes, folded into the embedder."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from metriclab.assemble import build_model
from metriclab.bundle import Bundle
from metriclab.config import ConfigError, resolve_config
from metriclab.evaluation import embed
from metriclab.export import export_bundle
from metriclab.models.whitening import fit_whitening
from metriclab.runs import open_run
from metriclab.training import checkpoints, train
from metriclab.training.whiten import WHITENING

RUN = [
    "train.batch_size=16",
    "eval.episodes=20",
    "eval.pairs=100",
    "train.steps=4",
    "train.checkpoint_every=2",
    "train.objective=classifier",
    "train.loss=cross_entropy",
    "model.distance=cosine",
    "model.normalize=true",
    "model.dim=8",
]


@pytest.fixture(scope="module")
def whitened_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("whiten") / "run"
    config = resolve_config(None, [*RUN, "train.whiten=pca", "train.whiten_shrinkage=0.2"])
    train(config, run_dir, progress=False)
    return run_dir


def test_the_evaluated_checkpoint_embeds_through_the_map_fitted_on_the_training_classes(
    whitened_run: Path,
) -> None:
    run = open_run(whitened_run)
    net = run.model.embedding_net
    layer = net.whitening
    assert layer is not None and layer.active
    record = json.loads((whitened_run / WHITENING).read_text())
    assert record["kind"] == "pca" and record["classes"] == run.data.train.num_classes
    assert record["checkpoint"] == "checkpoints/step-0000004.pt"
    fitted = embed(net, run.data.test, progress=False).vectors
    mean, matrix = layer.mean.clone(), layer.matrix.clone()
    layer.reset()  # the plain trained embedder
    plain_train = embed(net, run.data.train, progress=False)
    plain_test = embed(net, run.data.test, progress=False).vectors
    expected_mean, expected_matrix = fit_whitening(
        plain_train.vectors, plain_train.labels, "pca", 0.2, 8
    )
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(matrix, expected_matrix)
    torch.testing.assert_close(fitted, F.normalize((plain_test - mean) @ matrix, dim=-1))
    # Earlier checkpoints keep the inactive map: only the evaluated one was refitted.
    older = checkpoints.load(whitened_run / "checkpoints" / "step-0000002.pt")["model"]
    assert not bool(older["embedding_net.whitening.fitted"])


def test_the_exported_bundle_embeds_through_the_map(whitened_run: Path, tmp_path: Path) -> None:
    manifest = export_bundle(whitened_run, tmp_path / "bundle")
    run = open_run(whitened_run)
    expected = embed(run.model.embedding_net, run.data.test, progress=False).vectors
    backends = ["torchscript"] + (["onnx"] if manifest["files"].get("onnx") else [])
    for backend in backends:  # ONNX: the torch-free runtime
        bundle = Bundle.load(tmp_path / "bundle", backend=backend)
        served = bundle.embed_images(run.data.test.images)
        torch.testing.assert_close(served, expected, atol=1e-5, rtol=0)
    run.model.embedding_net.whitening.reset()  # without the map the vectors differ: can fail
    plain = embed(run.model.embedding_net, run.data.test, progress=False).vectors
    assert (plain - expected).abs().max() > 1e-2


def test_a_resumed_run_trains_without_the_old_map_and_refits(whitened_run: Path, tmp_path) -> None:
    copy = tmp_path / "run"
    copy.mkdir()
    for path in whitened_run.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(whitened_run)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    model = train(None, copy, resume=True, progress=False, overrides=["train.steps=6"])
    assert model.embedding_net.whitening is not None and model.embedding_net.whitening.active
    state = checkpoints.load(copy / "checkpoints" / "step-0000006.pt")["model"]
    assert bool(state["embedding_net.whitening.fitted"])
    assert json.loads((copy / WHITENING).read_text())["checkpoint"] == "checkpoints/step-0000006.pt"


LAYERED = ["train.whiten=pca", "train.whiten_from=backbone", 'train.whiten_layers=["2"]']


@pytest.fixture(scope="module")
def layered_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("whiten-layers") / "run"
    train(resolve_config(None, [*RUN, *LAYERED]), run_dir, progress=False)
    return run_dir


def test_a_map_of_backbone_layers_is_fitted_on_those_layers_and_exported(
    layered_run: Path, tmp_path: Path
) -> None:
    run = open_run(layered_run)  # rebuilt from the config: the map reads Conv-4's third block
    net = run.model.embedding_net
    assert net.whiten_layers == ("2",) and json.loads((layered_run / WHITENING).read_text())[
        "layers"
    ] == ["2"]
    fitted = embed(net, run.data.test, progress=False).vectors
    with torch.no_grad():  # the 16 px digits: (N, 64 · 2 · 2) third-block maps
        train_maps = net.backbone[:3](run.data.train.images.float() / 255).flatten(1)
        test_maps = net.backbone[:3](run.data.test.images.float() / 255).flatten(1)
    mean, matrix = fit_whitening(train_maps, run.data.train.labels, "pca", 0.5, 64 * 2 * 2)
    torch.testing.assert_close(net.whitening.mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net.whitening.matrix, matrix, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        fitted, F.normalize((test_maps - mean) @ matrix, dim=-1), atol=1e-5, rtol=0
    )
    manifest = export_bundle(layered_run, tmp_path / "bundle")
    backends = ["torchscript"] + (["onnx"] if manifest["files"].get("onnx") else [])
    for backend in backends:
        bundle = Bundle.load(tmp_path / "bundle", backend=backend)
        served = bundle.embed_images(run.data.test.images)
        torch.testing.assert_close(served, fitted, atol=1e-5, rtol=0)


def test_whitening_layers_the_backbone_lacks_are_one_config_error() -> None:
    config = resolve_config(None, [*RUN, *LAYERED[:2], 'train.whiten_layers=["2", "9"]'])
    with pytest.raises(ConfigError, match="'9' is not a module of the backbone"):
        build_model(config, in_channels=1)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["train.whiten=zca"], "unknown train.whiten 'zca'"),
        (["train.whiten=pca", "train.whiten_shrinkage=-0.1"], r"whiten_shrinkage must lie in"),
        (["train.whiten=pca", "train.whiten_from=head"], "unknown train.whiten_from 'head'"),
        (["train.whiten=pca", "train.whiten_dim=4"], "applies to train.whiten_from=backbone"),
        (
            ["train.whiten=pca", "train.whiten_from=backbone", "model.distance=weighted_l1"],
            "use train.whiten_from=embedding",
        ),
        (
            ["train.whiten=pca", 'train.whiten_layers=["2"]'],
            "set train.whiten .*train.whiten_from=backbone",
        ),
        (["train.whiten_from=backbone", 'train.whiten_layers=["2"]'], "names backbone modules"),
    ],
)
def test_bad_whitening_settings_are_one_config_error(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve_config(None, [*RUN, *overrides])
