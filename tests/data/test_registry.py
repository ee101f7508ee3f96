"""The data set registry: every entry loads, declares its preprocessing, and the record travels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from metriclab.data import (
    DATA_SETS,
    DataParam,
    DataSetSpec,
    LabeledImages,
    LoadRequest,
    Preprocess,
    digits,
    from_csv,
    image_folder,
    load_dataset,
    mirrors_as_classes,
    omniglot,
    read_stroke_records,
    render_records,
    rotations_as_classes,
)
from tests.data.synthetic import write_tree
from tests.data.test_dml import write_cars, write_cub, write_inshop, write_sop
from tests.data.test_faces import write_faces
from tests.data.test_folders import write_csv, write_folder

QUIET = {"cache": False, "progress": False}


def _omniglot(root: Path) -> tuple[str, dict, LabeledImages]:
    write_tree(root / "omni")
    path = str(root / "omni")
    params = {"alphabets": ["Beta", "Gamma"]}
    return path, params, omniglot(path, alphabets=["Beta", "Gamma"], size=28, **QUIET)


def _folder(root: Path) -> tuple[str, dict, LabeledImages]:
    write_folder(root / "photos")
    return str(root / "photos"), {}, image_folder(root / "photos", size=None, channels=3, **QUIET)


def _csv(root: Path) -> tuple[str, dict, LabeledImages]:
    write_folder(root / "photos")
    write_csv(root / "photos" / "list.csv", "cat/a.png,x\ndog/c.PNG,y\n")
    file = root / "photos" / "list.csv"
    return str(file), {}, from_csv(file, channels=3, **QUIET)


def _dml(
    name: str, write: Callable[[Path], Path]
) -> Callable[[Path], tuple[str, dict, LabeledImages]]:
    def source(root: Path) -> tuple[str, dict, LabeledImages]:
        path = write(root / name)
        spec = DATA_SETS.get(name)
        channels = spec.channels or spec.default_channels
        request = LoadRequest(
            (path,), spec.size, channels, spec.invert, {}, cache=False, progress=False
        )
        return str(path), {}, spec.loader(request)

    return source


def _strokes(root: Path) -> tuple[str, dict, LabeledImages]:
    from tests.data.test_stroke_sets import write_records

    path = write_records(root / "pen.jsonl")
    return str(path), {}, render_records(read_stroke_records(path), 28)


#: A tiny source for each built-in data set: (data.path, data.params, the loader called directly).
SOURCES: dict[str, Callable[[Path], tuple[str | None, dict, LabeledImages]]] = {
    "digits": lambda root: (None, {}, digits(size=16)),
    "omniglot": _omniglot,
    "image_folder": _folder,
    "csv": _csv,
    "cub200": _dml("cub200", write_cub),
    "cars196": _dml("cars196", write_cars),
    "sop": _dml("sop", write_sop),
    "inshop": _dml("inshop", write_inshop),
    "faces-orl": _dml("faces-orl", lambda root: write_faces(root)[1]),
    "strokes": _strokes,
}


def test_every_built_in_data_set_has_a_source_here() -> None:
    assert set(SOURCES) <= set(DATA_SETS)
    assert set(DATA_SETS) - set(SOURCES) == set(), "add a tiny source for the new data set"


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_data_set_loads_and_records_what_it_declares(name: str, tmp_path: Path) -> None:
    path, params, direct = SOURCES[name](tmp_path)
    spec = DATA_SETS.get(name)
    data = load_dataset(name, path, None, None, params, **QUIET)
    # The registry adds nothing to the bytes: the same images as the loader called directly.
    assert torch.equal(data.images, direct.images)
    assert data.item_ids == direct.item_ids
    channels = spec.channels or spec.default_channels
    assert data.preprocess == Preprocess(spec.size, channels, spec.invert, spec.mean, spec.std)
    assert data.preprocess == direct.preprocess
    assert data.channels == channels


def test_polarity_is_declared_where_the_bytes_are_made() -> None:
    # Omniglot's files are black ink on white and load inverted; the others load as stored.
    assert {name: DATA_SETS.get(name).invert for name in SOURCES} == {
        "digits": False,
        "omniglot": True,
        "image_folder": False,
        "csv": False,
        "cub200": False,
        "cars196": False,
        "sop": False,
        "inshop": False,
        "faces-orl": False,
        "strokes": True,
    }


def test_inverted_omniglot_record_matches_its_pixels(tmp_path: Path) -> None:
    write_tree(tmp_path)
    plain = omniglot(tmp_path, size=None, invert=False, **QUIET)
    data = load_dataset("omniglot", tmp_path, 20, None, None, **QUIET)
    assert data.preprocess.invert and not plain.preprocess.invert
    assert torch.equal(data.images, 255 - plain.images)


def record(data: LabeledImages) -> Preprocess | None:
    return data.preprocess


def test_the_record_survives_every_split_subset_and_copy() -> None:
    data = load_dataset("digits")
    assert data.preprocess is not None
    train, test = data.split_classes(0.5, seed=0)
    fit, val = train.split_validation(fraction=0.4, seed=1)
    derived = [
        train,
        test,
        fit,
        val,
        data.subset(np.arange(10)),
        data.select_classes([1, 2]),
        rotations_as_classes(train, (90, 180)),
        mirrors_as_classes(train),
        mirrors_as_classes(rotations_as_classes(train)),
    ]
    assert all(record(d) == data.preprocess for d in derived)


def test_group_splits_keep_the_record(tmp_path: Path) -> None:
    write_tree(tmp_path)
    data = load_dataset("omniglot", tmp_path, 20, None, None, **QUIET)
    train, test = data.split_groups(["Gamma"])
    fit, val = train.split_validation(groups=["Beta"])
    assert {record(d) for d in (train, test, fit, val)} == {data.preprocess}


@pytest.mark.parametrize(
    "preprocess",
    [
        Preprocess(16, 1),
        Preprocess(None, 3, invert=True),
        Preprocess(28, 3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    ],
)
def test_preprocess_round_trips_through_plain_values(preprocess: Preprocess) -> None:
    values = preprocess.to_dict()
    assert set(values) == {"size", "channels", "invert", "mean", "std"}
    assert all(isinstance(v, (int, bool, list, type(None))) for v in values.values())
    assert Preprocess.from_dict(values) == preprocess


def test_preprocess_rejects_what_cannot_be_right() -> None:
    with pytest.raises(ValueError, match="channels must be 1"):
        Preprocess(16, 2)
    with pytest.raises(ValueError, match="mean and std go together"):
        Preprocess(16, 1, mean=(0.5,))
    with pytest.raises(ValueError, match="one value per channel"):
        Preprocess(16, 3, mean=(0.5,), std=(0.2,))
    with pytest.raises(ValueError, match="unknown preprocess key 'colour'"):
        Preprocess.from_dict({"size": 16, "channels": 1, "colour": "red"})
    with pytest.raises(ValueError, match="records 3 channel"):
        LabeledImages(
            images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
            labels=torch.tensor([0, 1]),
            class_names=("a", "b"),
            item_ids=("x", "y"),
            preprocess=Preprocess(4, 3),
        )


def test_normalisation_is_x_over_255_unless_declared() -> None:
    images = torch.tensor([[[[0, 51]], [[102, 255]], [[255, 0]]]], dtype=torch.uint8)
    assert torch.equal(Preprocess(None, 3).to_float(images), images.float() / 255)
    normalised = Preprocess(None, 3, mean=(0.0, 0.4, 0.5), std=(1.0, 0.5, 0.25)).to_float(images)
    expected = (images.float() / 255 - torch.tensor([0.0, 0.4, 0.5])[:, None, None]) / torch.tensor(
        [1.0, 0.5, 0.25]
    )[:, None, None]
    assert torch.allclose(normalised, expected)


@pytest.fixture
def toy_inverted() -> Iterator[list[LoadRequest]]:
    """A white-on-black toy data set registered from outside the package (removed afterwards)."""
    requests: list[LoadRequest] = []

    def load(request: LoadRequest) -> LabeledImages:
        requests.append(request)
        size = request.size or 8
        ink = torch.zeros(6, 1, size, size, dtype=torch.uint8)
        ink[:, :, 2:4, 2:4] = torch.arange(6, dtype=torch.uint8)[:, None, None, None] * 40
        images = 255 - ink if request.invert else ink
        return LabeledImages(
            images=images,
            labels=torch.tensor([0, 0, 1, 1, 2, 2]),
            class_names=("a", "b", "c"),
            item_ids=tuple(f"toy:{i}" for i in range(6)),
            description="toy",
        )

    DATA_SETS.register(
        "toy_inverted",
        DataSetSpec(
            loader=load,
            paths="none",
            size=8,
            invert=True,
            params={"boldness": DataParam(float, "stroke weight")},
        ),
    )
    try:
        yield requests
    finally:
        DATA_SETS.unregister("toy_inverted")


def test_a_toy_data_set_carries_invert_through_load_dataset(toy_inverted: list) -> None:
    data = load_dataset("toy_inverted", params={"boldness": 2.0})
    (request,) = toy_inverted
    assert request.invert and request.size == 8 and request.params == {"boldness": 2.0}
    assert data.preprocess == Preprocess(8, 1, invert=True)
    train, test = data.split_classes(test_fraction=0.34, seed=0)
    assert train.preprocess.invert and test.preprocess.invert
    with pytest.raises(ValueError, match=r"data.params.bold is not an option.*'boldness'"):
        load_dataset("toy_inverted", params={"bold": 1.0})


def test_a_loader_that_records_other_preprocessing_is_refused() -> None:
    def load(request: LoadRequest) -> LabeledImages:
        return digits(size=16)  # records invert=False whatever the spec declares

    DATA_SETS.register("liar", DataSetSpec(loader=load, paths="none", size=16, invert=True))
    try:
        with pytest.raises(ValueError, match="the loader of data set 'liar' recorded"):
            load_dataset("liar")
    finally:
        DATA_SETS.unregister("liar")


def test_the_old_alphabets_argument_still_works(tmp_path: Path) -> None:
    write_tree(tmp_path)
    with pytest.warns(DeprecationWarning, match="params"):
        old = load_dataset("omniglot", tmp_path, 20, None, ["Beta"], **QUIET)
    new = load_dataset("omniglot", tmp_path, 20, None, {"alphabets": ["Beta"]}, **QUIET)
    assert old.item_ids == new.item_ids and torch.equal(old.images, new.images)
