"""Input normalisation declared by a data set is applied by the network, so every path agrees.

A data set's ``mean``/``std`` (its :class:`DataSetSpec`) are built into the ``EmbeddingNet`` by
``assemble.build_model``; training, ``evaluation.embed``, the exported TorchScript embedder and the
bundle runtime all then feed the network ``x / 255`` and get the same normalised input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.assemble import build_model
from metriclab.bundle import Bundle
from metriclab.config import resolve_config
from metriclab.data import DATA_SETS, LabeledImages, image_folder
from metriclab.data.registry import DataSetSpec, LoadRequest
from metriclab.export import export_bundle
from metriclab.models import EmbeddingNet, backbone
from metriclab.training import train
from tests.data.photos import write_photos

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _load_photos(request: LoadRequest) -> LabeledImages:
    (path,) = request.paths
    data = image_folder(path, size=request.size, channels=3, cache=False, progress=False)
    return dataclasses.replace(data, preprocess=PHOTOS.preprocess(request.size, 3))


PHOTOS = DataSetSpec(
    loader=_load_photos, paths="one", size=16, channels=3, mean=MEAN, std=STD, help="toy photos"
)


@pytest.fixture
def toy_photos() -> Iterator[None]:
    DATA_SETS.register("toy_photos", PHOTOS)
    try:
        yield
    finally:
        DATA_SETS.unregister("toy_photos")


def _naive_normalise(images: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """``(x / 255 − mean_c) / std_c``, one channel at a time, from uint8 ``(B, C, H, W)``."""
    out = torch.empty(images.shape, dtype=torch.float32)
    for c in range(images.shape[1]):
        out[:, c] = (images[:, c].float() / 255.0 - mean[c]) / std[c]
    return out


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.floats(-1, 1), min_size=3, max_size=3),
    st.lists(st.floats(0.05, 2), min_size=3, max_size=3),
    st.integers(0, 2**31 - 1),
)
def test_normalising_net_equals_plain_net_on_normalised_input(
    mean: list[float], std: list[float], seed: int
) -> None:
    torch.manual_seed(seed)
    plain = EmbeddingNet(backbone("conv4", 3, width=0.25), dim=5, in_channels=3, image_size=16)
    normalising = EmbeddingNet(
        backbone("conv4", 3, width=0.25), dim=5, in_channels=3, image_size=16, mean=mean, std=std
    )
    normalising.load_state_dict(
        {
            **plain.state_dict(),
            **{k: v for k, v in normalising.state_dict().items() if "input_" in k},
        }
    )
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    plain.eval(), normalising.eval()
    with torch.no_grad():
        expected = plain(_naive_normalise(images, tuple(mean), tuple(std)))
        got = normalising(images.float() / 255)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_no_statistics_no_buffers_and_bad_statistics_refused() -> None:
    config = resolve_config(None, [])  # digits-siamese: plain x / 255
    keys = build_model(config, 1).state_dict().keys()
    assert not [k for k in keys if "input_" in k]
    with pytest.raises(ValueError, match="one value per input channel"):
        EmbeddingNet(backbone("conv4", 1), dim=4, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="give both or neither"):
        EmbeddingNet(backbone("conv4", 1), dim=4, mean=(0.5,))
    with pytest.raises(ValueError, match="std positive"):
        EmbeddingNet(backbone("conv4", 1), dim=4, mean=(0.5,), std=(0.0,))


def test_normalised_data_set_trains_and_bundle_embeds_as_trained(
    toy_photos: None, tmp_path: Path
) -> None:
    root = write_photos(tmp_path / "photos", classes=6, per_class=4)
    config = resolve_config(
        None,
        [
            "data.name=toy_photos", f"data.path={root}", "data.test_fraction=0.5",
            "model.dim=8", "model.width=0.25", "train.objective=triplet", "train.loss=triplet",
            "train.classes_per_batch=3", "train.samples_per_class=2", "train.steps=3",
            "train.checkpoint_every=3", "eval.n_way=2", "eval.n_query=2", "eval.episodes=10",
            "eval.pairs=20",
        ],
    )  # fmt: skip
    run = tmp_path / "run"
    model = train(config, run, progress=False).eval()
    net = model.embedding_net
    torch.testing.assert_close(net.input_mean.flatten(), torch.tensor(MEAN))
    torch.testing.assert_close(net.input_std.flatten(), torch.tensor(STD))

    export_bundle(run, tmp_path / "bundle")
    bundle = Bundle.load(tmp_path / "bundle")
    files = sorted((root / "c0").glob("*"))[:2]
    data = PHOTOS.loader(LoadRequest((root,), 16, 3, False, {}, cache=False))
    rows = [data.item_ids.index(f"c0/{f.name}") for f in files]
    images = data.images[rows]
    # Reference: the same weights without the buffers, fed the data record's normalisation.
    plain = EmbeddingNet(
        backbone("conv4", 3, width=0.25), dim=8, in_channels=3, image_size=16
    ).eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if "input_" not in k})
    with torch.no_grad():
        expected = plain(_naive_normalise(images, MEAN, STD))
        trained = net(images.float() / 255)
    torch.testing.assert_close(trained, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bundle.embed_files(files), expected, rtol=1e-4, atol=1e-5)
