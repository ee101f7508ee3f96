"""The DML benchmark loaders on miniature trees written in the official layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from metriclab.data import DATA_SETS, load_dataset, query_gallery


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), (value, 255 - value, value // 2)).save(path)


def _load(name: str, root: Path):
    return load_dataset(name, root, size=8, cache=False, progress=False)


def _groups(data) -> dict[str, str]:
    return {c: data.group_names[int(g)] for c, g in zip(data.class_names, data.groups, strict=True)}


CUB_NAMES = {c: f"{c:03d}.Bird_{c}" for c in range(1, 201)}


def write_cub(
    tmp_path: Path, picked: tuple[int, ...] = (1, 100, 101, 200), per_class: int = 2
) -> Path:
    """CUB_200_2011/ with ``per_class`` images of each class in ``picked``; returns its parent."""
    root = tmp_path / "CUB_200_2011"
    names = CUB_NAMES
    root.mkdir(parents=True)
    (root / "classes.txt").write_text("".join(f"{c} {n}\n" for c, n in names.items()))
    images, labels = [], []
    for i, c in enumerate([c for c in picked for _ in range(per_class)], start=1):
        path = f"{names[c]}/Bird_{c}_{i}.jpg"
        _image(root / "images" / path, (i * 37) % 256)
        images.append(f"{i} {path}\n")
        labels.append(f"{i} {c}\n")
    (root / "images.txt").write_text("".join(images))
    (root / "image_class_labels.txt").write_text("".join(labels))
    return tmp_path


def test_cub_classes_1_to_100_train_and_101_to_200_test(tmp_path: Path) -> None:
    names = CUB_NAMES
    data = _load("cub200", write_cub(tmp_path))  # the parent of CUB_200_2011 works too
    assert len(data) == 8 and data.images.shape[1:] == (3, 8, 8)
    assert _groups(data) == {
        names[1]: "train",
        names[100]: "train",
        names[101]: "test",
        names[200]: "test",
    }
    train, test = data.split_groups(["test"])
    assert set(test.class_names) == {names[101], names[200]} and len(train) == 4
    assert data.preprocess.mean == DATA_SETS.get("cub200").mean


def write_cars(tmp_path: Path) -> Path:
    """cars_annos.mat and car_ims/ with two images of classes 1, 98, 99 and 196."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    picked = [1, 98, 99, 196]
    records = np.zeros(8, dtype=[("relative_im_path", object), ("class", object), ("test", object)])
    for i, c in enumerate([c for c in picked for _ in range(2)]):
        path = f"car_ims/{i + 1:06d}.jpg"
        _image(tmp_path / path, i * 30)
        records[i] = (path, np.uint8(c), np.uint8(i % 2))  # "test" is ignored: classes split
    class_names = np.array([f"Car {c}" for c in range(1, 197)], dtype=object)
    savemat(
        tmp_path / "cars_annos.mat",
        {"annotations": records[None, :], "class_names": class_names[None, :]},
    )
    return tmp_path


def test_cars_classes_1_to_98_train_and_99_to_196_test(tmp_path: Path) -> None:
    data = _load("cars196", write_cars(tmp_path))
    assert _groups(data) == {
        "001 Car 1": "train",
        "098 Car 98": "train",
        "099 Car 99": "test",
        "196 Car 196": "test",
    }
    assert np.bincount(data.labels.numpy()).tolist() == [2, 2, 2, 2]


SOP_ROWS = {
    "train": [
        (1, 1, "bicycle_final/1_0.JPG"),
        (2, 1, "bicycle_final/1_1.JPG"),
        (3, 2, "chair_final/2_0.JPG"),
    ],
    "test": [(4, 11319, "sofa_final/3_0.JPG"), (5, 11319, "sofa_final/3_1.JPG")],
}


def write_sop(tmp_path: Path) -> Path:
    """Ebay_train.txt, Ebay_test.txt and their images."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rows = SOP_ROWS
    header = "image_id class_id super_class_id path\n"
    rows = {
        "train": [
            (1, 1, "bicycle_final/1_0.JPG"),
            (2, 1, "bicycle_final/1_1.JPG"),
            (3, 2, "chair_final/2_0.JPG"),
        ],
        "test": [(4, 11319, "sofa_final/3_0.JPG"), (5, 11319, "sofa_final/3_1.JPG")],
    }
    for group, items in rows.items():
        lines = [f"{i} {c} {1 + c % 3} {path}\n" for i, c, path in items]
        (tmp_path / f"Ebay_{group}.txt").write_text(header + "".join(lines))
        for i, _, path in items:
            _image(tmp_path / path, i * 40)
    return tmp_path


def test_sop_split_is_the_given_lists(tmp_path: Path) -> None:
    rows = SOP_ROWS
    data = _load("sop", write_sop(tmp_path))
    assert _groups(data) == {"00001": "train", "00002": "train", "11319": "test"}
    assert set(data.item_ids) == {path for items in rows.values() for _, _, path in items}


INSHOP_ROWS = [
    ("img/WOMEN/Dresses/id_00000002/02_1_front.jpg", "id_00000002", "train"),
    ("img/WOMEN/Dresses/id_00000002/02_2_side.jpg", "id_00000002", "train"),
    ("img/MEN/Denim/id_00000080/01_1_front.jpg", "id_00000080", "query"),
    ("img/MEN/Denim/id_00000080/01_2_side.jpg", "id_00000080", "gallery"),
    ("img/MEN/Denim/id_00000081/01_1_front.jpg", "id_00000081", "query"),
    ("img/MEN/Denim/id_00000081/01_3_back.jpg", "id_00000081", "gallery"),
]


def write_inshop(tmp_path: Path) -> Path:
    """Eval/list_eval_partition.txt and Img/img/… with train, query and gallery items."""
    rows = INSHOP_ROWS
    (tmp_path / "Eval").mkdir(parents=True)
    body = "".join(f"{p} {item} {status}\n" for p, item, status in rows)
    (tmp_path / "Eval" / "list_eval_partition.txt").write_text(
        f"{len(rows)}\nimage_name item_id evaluation_status\n{body}"
    )
    for i, (path, _, _) in enumerate(rows):
        _image(tmp_path / "Img" / path, i * 40)
    return tmp_path


def test_inshop_query_and_gallery(tmp_path: Path) -> None:
    rows = INSHOP_ROWS
    data = _load("inshop", write_inshop(tmp_path))
    assert _groups(data) == {"id_00000002": "train", "id_00000080": "test", "id_00000081": "test"}
    query, gallery = query_gallery(data)
    assert [data.item_ids[i] for i in query] == [f"query:{rows[2][0]}", f"query:{rows[4][0]}"]
    assert sorted(data.class_names[int(data.labels[i])] for i in gallery) == [
        "id_00000080",
        "id_00000081",
    ]


def test_a_missing_listed_image_is_named(tmp_path: Path) -> None:
    (tmp_path / "Ebay_train.txt").write_text(
        "image_id class_id super_class_id path\n1 1 1 a/x.JPG\n"
    )
    (tmp_path / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n")
    with pytest.raises(FileNotFoundError, match="x.JPG"):
        _load("sop", tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere is not a folder"):
        _load("sop", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="Ebay_train.txt does not exist"):
        _load("sop", tmp_path / "empty")
