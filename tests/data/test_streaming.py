"""Images streamed from disk decode, split, sample and embed exactly as images in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.data import image_folder
from metriclab.data.decode import decode_one
from metriclab.data.registry import load_dataset
from metriclab.data.streaming import DiskImages, choose_storage, pixels, stream
from metriclab.evaluation import embed
from metriclab.models import EmbeddingNet, backbone
from tests.data.photos import write_photos


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos") / "set")


def _both(root: Path, channels: int = 3) -> tuple:
    memory = image_folder(root, size=24, channels=channels, cache=False, progress=False)
    disk = image_folder(root, size=24, channels=channels, progress=False, storage="disk")
    return memory, disk


@pytest.mark.parametrize("channels", [1, 3])
def test_disk_decodes_every_file_as_memory_does(photos: Path, channels: int) -> None:
    memory, disk = _both(photos, channels)
    assert isinstance(disk.images, DiskImages)
    assert disk.images.shape == memory.images.shape == (24, channels, 24, 24)
    assert torch.equal(pixels(disk.images), memory.images)
    assert torch.equal(disk.labels, memory.labels) and disk.item_ids == memory.item_ids
    # The independent reference: PIL on each file, one by one (mixed grey/RGB → channels).
    for position, item in enumerate(disk.item_ids):
        data = (photos / item).read_bytes()
        expected = decode_one(data, item, 24, channels, False)
        assert np.array_equal(disk.images.decode(position), expected)


def test_splits_stay_on_disk_and_keep_their_pixels(photos: Path) -> None:
    memory, disk = _both(photos)
    for (m_train, m_test), (d_train, d_test) in [
        (memory.split_classes(0.5, seed=3), disk.split_classes(0.5, seed=3)),
    ]:
        for m, d in ((m_train, d_train), (m_test, d_test)):
            assert isinstance(d.images, DiskImages)
            assert torch.equal(pixels(d.images), m.images)
            assert d.item_ids == m.item_ids


@pytest.fixture(scope="module")
def pair(photos: Path) -> tuple:
    return _both(photos)


@settings(max_examples=25, deadline=None)
@given(positions=st.lists(st.integers(0, 23), min_size=1, max_size=12))
def test_indexing_by_positions_matches_the_tensor(pair: tuple, positions: list[int]) -> None:
    memory, disk = pair
    index = torch.tensor(positions)
    assert torch.equal(pixels(disk.images[index]), memory.images[index])
    assert torch.equal(pixels(disk.images[np.array(positions)]), memory.images[index])


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_yields_the_batches_in_order(photos: Path, workers: int) -> None:
    memory, disk = _both(photos)
    batches = list(stream(disk.images, batch_size=5, workers=workers))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 4]
    assert torch.equal(torch.cat(batches), memory.images)


def test_streamed_embedding_equals_the_in_memory_one(photos: Path) -> None:
    memory, disk = _both(photos)
    torch.manual_seed(0)
    net = EmbeddingNet(backbone("conv4", 3, width=0.25), dim=8, in_channels=3, image_size=24)
    a = embed(net, memory, batch_size=7, progress=False)
    b = embed(net, disk, batch_size=7, progress=False, workers=2)
    assert torch.equal(a.vectors, b.vectors) and a.item_ids == b.item_ids


def test_a_bad_file_names_itself_in_a_batch_and_in_a_worker(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "set", classes=2, per_class=3)
    bad = root / "c1" / "001.jpg"
    bad.write_bytes(b"not a jpeg at all")
    disk = image_folder(root, size=16, progress=False, storage="disk")  # listing is lazy: no error
    with pytest.raises(ValueError, match=r"cannot decode image .*c1/001\.jpg.*replace or remove"):
        pixels(disk.images)
    with pytest.raises(ValueError, match=r"^cannot decode image .*c1/001\.jpg"):
        list(stream(disk.images, batch_size=2, workers=2))


def test_auto_picks_by_the_budget_and_says_which(
    photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 24 images × 3 × 24 × 24 bytes = 41,472 bytes ≈ 3.9e-5 GiB.
    small = image_folder(photos, size=24, progress=False, storage="auto", memory_budget=1e-4)
    assert isinstance(small.images, torch.Tensor)
    assert "within data.memory_budget" in capsys.readouterr().err
    large = image_folder(photos, size=24, progress=False, storage="auto", memory_budget=1e-5)
    assert isinstance(large.images, DiskImages)
    assert "streamed from disk" in capsys.readouterr().err
    assert choose_storage("memory", 10**9, 3, 224, 1.0, "x") == "memory"


def test_storage_disk_is_refused_for_a_data_set_held_in_memory() -> None:
    with pytest.raises(ValueError, match=r"'digits' is always held in memory.*image_folder"):
        load_dataset("digits", storage="disk")


def test_disk_needs_a_size(photos: Path) -> None:
    with pytest.raises(ValueError, match="need a positive data.size"):
        image_folder(photos, progress=False, storage="disk")
