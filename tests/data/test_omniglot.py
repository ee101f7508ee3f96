import importlib
import os
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from metriclab.data import LabeledImages, omniglot
from tests.data.synthetic import ALPHABETS, DRAWERS, expected, item_ids, write_tree, write_zip

# The package exports the function omniglot, which hides the module of the same name.
omniglot_module = importlib.import_module("metriclab.data.omniglot")
N_ITEMS = sum(ALPHABETS.values()) * DRAWERS


def load(path, **options) -> LabeledImages:
    options = {"size": None, "cache": False, "progress": False, **options}
    return omniglot(path, **options)


def assert_matches_files(data: LabeledImages, ids: list[str]) -> None:
    """Every item holds the inverted pixels of its own file, and labels/groups follow the path."""
    assert sorted(data.item_ids) == sorted(ids)
    for position, item in enumerate(data.item_ids):
        alphabet, character, _ = item.split("/")
        assert np.array_equal(data.images[position].numpy(), expected(item)), item
        label = int(data.labels[position])
        assert data.class_names[label] == f"{alphabet}/{character}"
        assert data.group_names[int(data.groups[label])] == alphabet


def test_alphabet_tree_loads_inverted_with_alphabet_groups(tmp_path: Path) -> None:
    ids = write_tree(tmp_path / "images_background")
    data = load(tmp_path / "images_background")
    assert data.images.shape == (N_ITEMS, 1, 20, 20)
    assert data.num_classes == sum(ALPHABETS.values())
    assert data.group_names == tuple(sorted(ALPHABETS))
    assert_matches_files(data, ids)


def test_torchvision_layout_reads_each_image_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "omniglot-py"
    background = write_tree(home / "images_background", ["Alpha_(one)", "Beta"])
    evaluation = write_tree(home / "images_evaluation", ["Gamma"])
    # torchvision keeps the downloaded zip beside its unpacked folder: only the folder is read.
    write_zip(home / "images_background.zip", "images_background", ["Alpha_(one)", "Beta"])
    opened = []
    real = omniglot_module.zip_entries
    monkeypatch.setattr(
        omniglot_module,
        "zip_entries",
        lambda path, strict: opened.append(path) or real(path, strict),
    )
    for root in (tmp_path, home, home / "images_background"):
        data = load(root)
        assert_matches_files(
            data, background + evaluation if root != home / "images_background" else background
        )
    assert opened == []


def test_zip_archive_is_read_without_unpacking(tmp_path: Path) -> None:
    ids = write_zip(tmp_path / "images_background.zip", "images_background")
    data = load(tmp_path / "images_background.zip")
    assert_matches_files(data, ids)
    assert not (tmp_path / "images_background").exists()


def test_same_ids_and_pixels_from_every_layout(tmp_path: Path) -> None:
    write_tree(tmp_path / "tree")
    write_zip(tmp_path / "archive.zip", "images_background_small1")
    from_tree = load(tmp_path / "tree")
    from_zip = load(tmp_path / "archive.zip")
    assert from_tree.item_ids == from_zip.item_ids
    assert from_tree.class_names == from_zip.class_names
    assert torch.equal(from_tree.images, from_zip.images)
    assert torch.equal(from_tree.labels, from_zip.labels)


def test_merging_small_sets_removes_the_shared_alphabet(tmp_path: Path) -> None:
    first = write_zip(tmp_path / "small1.zip", "images_background_small1", ["Alpha_(one)", "Beta"])
    second = write_zip(tmp_path / "small2.zip", "images_background_small2", ["Beta", "Gamma"])
    union = sorted(set(first) | set(second))
    assert len(union) < len(first) + len(second)
    merged = load([tmp_path / "small1.zip", tmp_path / "small2.zip"])
    assert_matches_files(merged, union)
    # A folder holding both archives, and a folder merged with an archive, give the same data.
    assert load(tmp_path).item_ids == merged.item_ids
    write_tree(tmp_path / "tree", ["Gamma"])
    mixed = load([tmp_path / "small1.zip", tmp_path / "tree"])
    assert mixed.item_ids == merged.item_ids
    assert torch.equal(mixed.images, merged.images)


def test_alphabets_keep_only_those_and_unknown_lists_the_found(tmp_path: Path) -> None:
    write_tree(tmp_path)
    data = load(tmp_path, alphabets=["Gamma", "Beta"])
    assert data.group_names == ("Beta", "Gamma")
    assert sorted(data.item_ids) == sorted(item_ids(["Beta", "Gamma"]))
    with pytest.raises(ValueError, match=r"'Latin'.*Alpha_\(one\), Beta, Gamma"):
        load(tmp_path, alphabets=["Latin"])


def test_resize_is_antialiased_like_torchvision(tmp_path: Path) -> None:
    """A one-pixel checkerboard halved must turn uniform grey, not stay black and white."""
    checker = (np.indices((20, 20)).sum(0) % 2).astype(bool)
    path = tmp_path / "A" / "character01" / "0001_01.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(checker).convert("1").save(path)
    data = load(tmp_path, size=10)
    grey = torch.from_numpy((~checker).astype(np.float32) * 255)[None]
    reference = TF.resize(grey, [10, 10], antialias=True)
    assert data.images.shape == (1, 1, 10, 10)
    assert torch.allclose(data.images[0].float(), reference, atol=1.0)
    assert 120 <= int(data.images.min()) <= int(data.images.max()) <= 135


def test_default_size_is_28(tmp_path: Path) -> None:
    write_tree(tmp_path, ["Beta"])
    assert omniglot(tmp_path, cache=False, progress=False).images.shape[1:] == (1, 28, 28)


def test_missing_path_says_where_to_put_the_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"does not exist; put images_background\.zip"):
        load(tmp_path / "nowhere")


def test_zip_that_is_not_omniglot(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as out:
        out.writestr("cats/cat1.png", b"x")
    with pytest.raises(ValueError, match=r"photos\.zip is not an Omniglot archive"):
        load(tmp_path / "photos.zip")
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(ValueError, match=r"broken\.zip is not a readable zip archive"):
        load(tmp_path / "broken.zip")


def test_junk_is_skipped_but_hidden_parent_folders_are_fine(tmp_path: Path) -> None:
    ids = write_zip(tmp_path / "set.zip", "set", ["Beta"])
    with zipfile.ZipFile(tmp_path / "set.zip", "a") as out:  # what macOS's Finder adds
        out.writestr("__MACOSX/set/Beta/character01/._0201_01.png", b"resource fork")
    assert sorted(load(tmp_path / "set.zip").item_ids) == sorted(ids)
    hidden = write_tree(tmp_path / ".cache" / "omniglot", ["Gamma"])
    (tmp_path / ".cache" / "omniglot" / "Gamma" / ".character01").mkdir()
    (tmp_path / ".cache" / "omniglot" / "Gamma" / ".character01" / "0301_01.png").write_bytes(b"x")
    assert sorted(load(tmp_path / ".cache" / "omniglot").item_ids) == sorted(hidden)


def test_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"labels\.csv is neither a folder nor a zip archive"):
        load(tmp_path / "labels.csv")


def test_folder_without_omniglot(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="no Omniglot images in"):
        load(tmp_path)


def test_corrupt_image_in_zip_is_named(tmp_path: Path) -> None:
    write_zip(tmp_path / "set.zip", "set", ["Beta"])
    with zipfile.ZipFile(tmp_path / "set.zip", "a") as out:
        out.writestr("set/Beta/character09/0999_01.png", b"\x89PNG broken")
    with pytest.raises(ValueError, match=r"set\.zip:set/Beta/character09/0999_01\.png"):
        load(tmp_path / "set.zip")


def test_download_without_network_says_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def offline(root: str, background: bool, download: bool) -> None:
        calls.append((root, background, download))
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.Omniglot", offline)
    with pytest.raises(FileNotFoundError, match=r"cannot download Omniglot into .*put images_"):
        load(tmp_path, download=True)
    assert calls == [(str(tmp_path), True, True)]
    # With the files already there, download=True does not touch the network.
    write_tree(tmp_path, ["Beta"])
    assert len(load(tmp_path, download=True)) == ALPHABETS["Beta"] * DRAWERS
    assert len(calls) == 1


def _shared_omniglot() -> Path | None:
    repository = Path(__file__).resolve().parents[2]
    for candidate in (os.environ.get("METRICLAB_OMNIGLOT"), repository / "../shared/data/omniglot"):
        if candidate and (Path(candidate) / "images_background_small1.zip").is_file():
            return Path(candidate)
    return None


@pytest.mark.skipif(
    _shared_omniglot() is None,
    reason="../shared/data/omniglot (or $METRICLAB_OMNIGLOT) holds no images_background_small*.zip",
)
def test_shared_small_sets_union() -> None:
    root = _shared_omniglot()
    sets = [root / "images_background_small1.zip", root / "images_background_small2.zip"]
    data = omniglot(sets, size=14, cache=False, progress=False)
    assert (len(data.group_names), data.num_classes, len(data)) == (8, 242, 4840)
    assert torch.bincount(data.labels).eq(20).all()
    # White strokes on black: the background (most pixels) is dark.
    assert float(data.images.float().median()) == 0.0
