import importlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from metriclab.data import image_folder, omniglot
from tests.data.synthetic import expected, png_bytes, strokes, write_tree, write_zip

cache_module = importlib.import_module("metriclab.data.cache")


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """Counts the images each load decodes (0 when it came from the cache)."""
    monkeypatch.setenv("METRICLAB_CACHE_DIR", str(tmp_path / "user-cache"))
    counts: list[int] = []
    real = cache_module.decode_entries

    def counting(entries, *args):
        counts.append(len(entries))
        return real(entries, *args)

    monkeypatch.setattr(cache_module, "decode_entries", counting)
    return counts


def load(path, **options):
    return omniglot(path, **{"size": None, "progress": False, **options})


def cache_files(tmp_path: Path) -> list[Path]:
    """The cache files in the user cache folder the ``decodes`` fixture points at."""
    return sorted((tmp_path / "user-cache").glob("*.npz"))


def every_file(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def test_second_load_comes_from_the_user_cache_never_the_data_folder(
    tmp_path: Path, decodes: list[int]
) -> None:
    write_tree(tmp_path / "tree")
    before = every_file(tmp_path / "tree")
    first = load(tmp_path / "tree")
    second = load(tmp_path / "tree")
    assert decodes == [len(first)]
    assert torch.equal(first.images, second.images) and first.item_ids == second.item_ids
    [stored] = cache_files(tmp_path)
    with np.load(stored, allow_pickle=False) as archive:  # a plain, pickle-free npz
        assert set(archive.files) == {"images", "key"}
    assert every_file(tmp_path / "tree") == before  # not one file added to the user's data


@pytest.mark.parametrize(
    ("variables", "expected_folder"),
    [
        ({"METRICLAB_CACHE_DIR": "mine", "XDG_CACHE_HOME": "xdg"}, "mine"),
        ({"XDG_CACHE_HOME": "xdg"}, "xdg/metriclab"),
        ({"HOME": "home"}, "home/.cache/metriclab"),
    ],
)
def test_the_user_cache_folder_follows_the_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    expected_folder: str,
) -> None:
    for name in ("METRICLAB_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    write_tree(tmp_path / "data")
    load(tmp_path / "data")
    assert len(list((tmp_path / expected_folder).glob("*.npz"))) == 1


def test_touching_a_file_re_decodes(tmp_path: Path, decodes: list[int]) -> None:
    ids = write_tree(tmp_path)
    load(tmp_path)
    target = tmp_path / ids[5]
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    load(tmp_path)
    assert decodes == [len(ids), len(ids)]


def test_editing_adding_and_removing_files_reload_the_new_pixels(
    tmp_path: Path, decodes: list[int]
) -> None:
    ids = write_tree(tmp_path)
    load(tmp_path)
    replacement = ~strokes(ids[0])
    (tmp_path / ids[0]).write_bytes(png_bytes(replacement))
    edited = load(tmp_path)
    assert np.array_equal(
        edited.images[edited.item_ids.index(ids[0]), 0].numpy(), replacement * 255
    )
    (tmp_path / ids[1]).unlink()
    assert len(load(tmp_path)) == len(ids) - 1
    extra = "Beta/character09/0299_01.png"
    (tmp_path / extra).parent.mkdir()
    (tmp_path / extra).write_bytes(png_bytes(strokes(extra)))
    grown = load(tmp_path)
    assert np.array_equal(grown.images[grown.item_ids.index(extra)].numpy(), expected(extra))
    assert len(decodes) == 4


def test_a_changed_zip_member_re_decodes(tmp_path: Path, decodes: list[int]) -> None:
    archive = tmp_path / "set.zip"
    ids = write_zip(archive, "set")
    load(archive)
    load(archive)
    with zipfile.ZipFile(archive, "w") as out:  # same names, one member with new content
        for item in ids:
            mask = ~strokes(item) if item == ids[3] else strokes(item)
            out.writestr(f"set/{item}", png_bytes(mask))
    reloaded = load(archive)
    assert decodes == [len(ids), len(ids)]
    assert np.array_equal(
        reloaded.images[reloaded.item_ids.index(ids[3]), 0].numpy(), ~strokes(ids[3]) * 255
    )


def test_other_settings_and_selections_get_their_own_cache(
    tmp_path: Path, decodes: list[int]
) -> None:
    ids = write_tree(tmp_path)
    load(tmp_path)
    load(tmp_path, size=10)
    load(tmp_path, alphabets=["Beta"])
    load(tmp_path)
    load(tmp_path, size=10)
    assert len(decodes) == 3 and decodes[0] == decodes[1] == len(ids)
    assert len(cache_files(tmp_path)) == 3


def test_a_damaged_cache_is_decoded_again_and_replaced(tmp_path: Path, decodes: list[int]) -> None:
    write_tree(tmp_path)
    first = load(tmp_path)
    [stored] = cache_files(tmp_path)
    stored.write_bytes(b"garbage")
    again = load(tmp_path)
    assert torch.equal(first.images, again.images) and len(decodes) == 2
    load(tmp_path)
    assert len(decodes) == 2


def test_cache_folder_and_off_switch(tmp_path: Path, decodes: list[int]) -> None:
    write_tree(tmp_path / "data")
    load(tmp_path / "data", cache=False)
    load(tmp_path / "data", cache=False)
    assert len(decodes) == 2 and not cache_files(tmp_path)
    load(tmp_path / "data", cache=tmp_path / "elsewhere")
    load(tmp_path / "data", cache=tmp_path / "elsewhere")
    assert len(decodes) == 3 and len(list((tmp_path / "elsewhere").glob("*.npz"))) == 1


def test_a_read_only_data_folder_is_cached_like_any_other(
    tmp_path: Path, decodes: list[int]
) -> None:
    write_tree(tmp_path / "data")
    (tmp_path / "data").chmod(0o555)
    try:
        load(tmp_path / "data")
        load(tmp_path / "data")
    finally:
        (tmp_path / "data").chmod(0o755)
    assert len(decodes) == 1 and len(cache_files(tmp_path)) == 1


def test_nowhere_to_write_warns_and_still_loads(
    tmp_path: Path, decodes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(tmp_path / "data")
    monkeypatch.setattr(cache_module, "write_cache", lambda path, key, images: False)
    with pytest.warns(UserWarning, match="could not write an image cache"):
        data = load(tmp_path / "data")
    assert decodes == [len(data)]


def test_two_folders_with_one_name_keep_separate_caches(tmp_path: Path, decodes: list[int]) -> None:
    write_tree(tmp_path / "a" / "data")
    write_tree(tmp_path / "b" / "data")
    for _ in range(2):
        load(tmp_path / "a" / "data")
        load(tmp_path / "b" / "data")
    assert len(decodes) == 2 and len(cache_files(tmp_path)) == 2


def test_image_folder_uses_the_cache_too(tmp_path: Path, decodes: list[int]) -> None:
    write_tree(tmp_path / "data")  # any class-per-folder tree: here the alphabets are the classes
    first = image_folder(tmp_path / "data", channels=1, progress=False)
    second = image_folder(tmp_path / "data", channels=1, progress=False)
    assert len(decodes) == 1 and torch.equal(first.images, second.images)


@pytest.mark.parametrize(
    ("native", "size", "warned"), [(105, 16, True), (105, 28, False), (8, 64, True), (8, 16, False)]
)
def test_a_far_resize_is_said(
    tmp_path: Path, decodes: list[int], native: int, size: int, warned: bool
) -> None:
    import warnings

    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.new("L", (native, native), 128).save(tmp_path / "data" / name / "0.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image_folder(tmp_path / "data", size=size, channels=1, progress=False)
    resize = [w for w in caught if issubclass(w.category, cache_module.ResizeWarning)]
    assert len(resize) == int(warned)
    if warned:
        assert f"{native}×{native} px and are resized to {size}×{size}" in str(resize[0].message)
