import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metriclab.data import DATA_SETS, from_csv, image_folder, load_dataset
from tests.data.synthetic import write_tree


def colour_image(seed: int, size: tuple[int, int] = (6, 5)) -> np.ndarray:
    """A random RGB ``(H, W, 3)`` uint8 image; ``size`` is (width, height) as PIL counts."""
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def write_folder(root: Path) -> dict[str, np.ndarray]:
    """Two classes of lossless images (one nested), plus files the loader must ignore."""
    pictures = {
        "cat/a.png": colour_image(0),
        "cat/more/b.bmp": colour_image(1),
        "dog/c.PNG": colour_image(2),
        "dog/d.tiff": colour_image(3),
    }
    for item, array in pictures.items():
        (root / item).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(root / item)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / ".hidden.png").write_bytes(b"junk")
    (root / ".thumbnails").mkdir()
    (root / "readme.png").write_bytes(b"a stray file outside any class folder")
    return pictures


def load_folder(path: Path, **options) -> object:
    return image_folder(path, **{"cache": False, "progress": False, **options})


def test_image_folder_classes_ids_and_rgb_pixels(tmp_path: Path) -> None:
    pictures = write_folder(tmp_path)
    data = load_folder(tmp_path, channels=3)
    assert data.class_names == ("cat", "dog")
    assert sorted(data.item_ids) == sorted(pictures)
    assert data.groups is None
    for position, item in enumerate(data.item_ids):
        assert np.array_equal(data.images[position].permute(1, 2, 0).numpy(), pictures[item])
        assert data.class_names[int(data.labels[position])] == item.split("/")[0]


def test_grey_conversion_matches_pil(tmp_path: Path) -> None:
    pictures = write_folder(tmp_path)
    data = load_folder(tmp_path, channels=1)
    assert data.images.shape == (4, 1, 5, 6)
    for position, item in enumerate(data.item_ids):
        reference = np.asarray(Image.fromarray(pictures[item]).convert("L"))
        assert np.array_equal(data.images[position, 0].numpy(), reference)


def test_mixed_sizes_need_a_size(tmp_path: Path) -> None:
    write_folder(tmp_path)
    Image.fromarray(colour_image(9, size=(8, 7))).save(tmp_path / "dog" / "big.png")
    with pytest.raises(
        ValueError,
        match=r"images differ in size: .*big\.png is 8×7 but .*cat/a\.png is 6×5; pass a size",
    ):
        load_folder(tmp_path)
    data = load_folder(tmp_path, size=4)
    assert data.images.shape == (5, 3, 4, 4)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    write_folder(tmp_path)
    (tmp_path / "emu").mkdir()
    (tmp_path / "emu" / "list.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"class folder .*emu holds no images"):
        load_folder(tmp_path)


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    write_folder(tmp_path)
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode image .*cat/broken\.jpg"):
        load_folder(tmp_path)
    truncated = (tmp_path / "cat" / "a.png").read_bytes()[:60]
    (tmp_path / "cat" / "broken.jpg").unlink()
    (tmp_path / "cat" / "cut.png").write_bytes(truncated)
    with pytest.raises(ValueError, match=r"cannot decode image .*cat/cut\.png"):
        load_folder(tmp_path)


def test_unreadable_image_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_folder(tmp_path)
    target = tmp_path / "cat" / "a.png"
    target.chmod(0)
    if os.geteuid() == 0:
        # Root (as CI runs) reads files whatever their mode: refuse the read as the kernel does
        # for any other user, so the message is checked everywhere.
        real = Path.read_bytes

        def refuse(path: Path) -> bytes:
            if path == target:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real(path)

        monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ValueError, match=r"cannot read image .*cat/a\.png \(Permission denied\)"):
        load_folder(tmp_path)


def test_missing_and_wrong_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="is not a folder"):
        load_folder(tmp_path / "file.png")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="has no class folders"):
        load_folder(tmp_path / "flat")


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_lists_paths_relative_to_its_folder(tmp_path: Path) -> None:
    pictures = write_folder(tmp_path)
    listing = write_csv(
        tmp_path / "list.csv", "path,label\ncat/a.png,x\ndog/d.tiff,y\ndog/c.PNG,x\n"
    )
    data = from_csv(listing, cache=False, progress=False)
    assert data.item_ids == ("cat/a.png", "dog/d.tiff", "dog/c.PNG")
    assert data.class_names == ("x", "y")
    assert data.labels.tolist() == [0, 1, 0]
    assert np.array_equal(data.images[1].permute(1, 2, 0).numpy(), pictures["dog/d.tiff"])
    # No header, another root, and a redundant ./ all work.
    elsewhere = write_csv(tmp_path / "cat" / "only.csv", "./a.png,x\nmore/b.bmp,x\n")
    same = from_csv(elsewhere, root=tmp_path / "cat", cache=False, progress=False)
    assert same.item_ids == ("a.png", "more/b.bmp")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("../outside.png,x\n", "leaves the image root"),
        ("cat/../../outside.png,x\n", "leaves the image root"),
        ("/etc/passwd,x\n", "leaves the image root"),
        ("cat/a.png,x\ncat/a.png,y\n", "listed twice"),
        ("cat/a.png\n", r"line 1: expected 'path,label'"),
        ("cat/a.png,x,extra\n", r"line 1: expected 'path,label'"),
        ("path,label\n", "lists no images"),
    ],
)
def test_csv_bad_rows(tmp_path: Path, rows: str, message: str) -> None:
    write_folder(tmp_path)
    with pytest.raises(ValueError, match=message):
        from_csv(write_csv(tmp_path / "list.csv", rows), cache=False, progress=False)


def test_csv_missing_files(tmp_path: Path) -> None:
    write_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"line 2: cat/zz\.png is not a file"):
        from_csv(write_csv(tmp_path / "l.csv", "cat/a.png,x\ncat/zz.png,x\n"), cache=False)
    with pytest.raises(FileNotFoundError, match="CSV file .* does not exist"):
        from_csv(tmp_path / "none.csv")


def test_registry_loads_every_data_set(tmp_path: Path) -> None:
    write_folder(tmp_path / "photos")
    write_csv(tmp_path / "photos" / "list.csv", "cat/a.png,x\ndog/c.PNG,y\n")
    write_tree(tmp_path / "omni", ["Beta"])
    options = {"cache": False, "progress": False}
    assert load_dataset("digits", None, None, None, None).images.shape[1:] == (1, 16, 16)
    omni = load_dataset(
        "omniglot", [str(tmp_path / "omni")], None, None, {"alphabets": ["Beta"]}, **options
    )
    assert omni.images.shape[1:] == (1, 28, 28)
    folder = load_dataset("image_folder", str(tmp_path / "photos"), 8, 1, None, **options)
    assert folder.images.shape == (4, 1, 8, 8)
    listed = load_dataset("csv", str(tmp_path / "photos" / "list.csv"), None, None, None, **options)
    assert listed.images.shape == (2, 3, 5, 6)
    assert {"digits", "omniglot", "image_folder", "csv"} <= set(
        DATA_SETS
    )  # the others: test_registry.py


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ("mnist", None, None, None, None),
            "unknown data set 'mnist' for data.name.*; choose one of digits, omniglot, "
            "image_folder, csv",
        ),
        (("digits", "some/path", None, None, None), r"data\.path='some/path' does not apply"),
        (("digits", None, None, 3, None), "is grey"),
        (("omniglot", None, None, None, None), "needs data.path"),
        (("image_folder", None, None, None, None), "needs data.path"),
        (("image_folder", ["a", "b"], None, None, None), "reads one data.path"),
        (
            ("csv", "x.csv", None, None, {"alphabets": ["Latin"]}),
            "data.params.alphabets is not an option of data set 'csv'; it takes none",
        ),
        (
            ("omniglot", "o", None, None, {"alphabet": ["Latin"]}),
            r"data.params.alphabet is not an option of data set 'omniglot' \(did you mean "
            r"'alphabets'\?\); its options are alphabets",
        ),
    ],
)
def test_registry_rejects_what_does_not_apply(arguments: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_dataset(*arguments)


def test_channels_must_be_grey_or_rgb(tmp_path: Path) -> None:
    write_folder(tmp_path)
    with pytest.raises(ValueError, match="channels must be 1"):
        load_folder(tmp_path, channels=4)
    assert torch.equal(
        load_folder(tmp_path, channels=1).labels, load_folder(tmp_path, channels=3).labels
    )
