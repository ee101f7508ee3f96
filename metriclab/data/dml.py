"""The four deep-metric-learning benchmarks, read from their official folder and list layouts.

Each is a :class:`~metriclab.data.registry.DataSetSpec` in :data:`DATA_SETS` whose classes carry
the group ``train`` or ``test``: the standard class-disjoint split (Oh Song et al. 2016;
Musgrave et al. 2020), selected with ``data.test_groups: [test]``.

- ``cub200`` — CUB-200-2011 (Wah et al. 2011): ``CUB_200_2011/{images.txt,
  image_class_labels.txt, classes.txt, images/}``; classes 1–100 train, 101–200 test.
- ``cars196`` — Stanford Cars (Krause et al. 2013): ``cars_annos.mat`` (``annotations`` with
  ``relative_im_path`` and ``class``, ``class_names``) beside ``car_ims/``; classes 1–98 train,
  99–196 test.
- ``sop`` — Stanford Online Products (Oh Song et al. 2016): ``Ebay_train.txt`` and
  ``Ebay_test.txt`` (``image_id class_id super_class_id path``); the lists are the split.
- ``inshop`` — DeepFashion In-Shop (Liu et al. 2016): ``Eval/list_eval_partition.txt``
  (``image_name item_id evaluation_status``) with images under ``Img/``; ``train`` items train,
  ``query`` and ``gallery`` items are the test classes. Their item ids start ``query:`` or
  ``gallery:`` so evaluation can split them (:func:`query_gallery`).

Images are RGB, 224 px by default and normalised with the ImageNet mean and standard deviation,
as the pretrained backbones expect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from metriclab.data.cache import cached_decode
from metriclab.data.decode import ImageEntry, labeled_images
from metriclab.data.images import LabeledImages
from metriclab.data.preprocess import Preprocess
from metriclab.data.registry import DATA_SETS, DataSetSpec, LoadRequest

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: A layout reader: the data set root → its images as ``(relative path, class name, group)``.
Layout = Callable[[Path], list[tuple[str, str, str]]]


def _lines(file: Path, skip: int = 0) -> list[list[str]]:
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} does not exist; point data.path at the data set's root folder as distributed"
        )
    rows = [line.split() for line in file.read_text("utf-8").splitlines()[skip:]]
    return [row for row in rows if row]


def _cub_root(root: Path) -> Path:
    return root / "CUB_200_2011" if (root / "CUB_200_2011" / "images.txt").is_file() else root


def cub_layout(root: Path) -> list[tuple[str, str, str]]:
    """CUB-200-2011: ``images.txt`` + ``image_class_labels.txt``; classes 1–100 train."""
    root = _cub_root(root)
    names = dict(_lines(root / "classes.txt"))
    labels = dict(_lines(root / "image_class_labels.txt"))
    items = []
    for image_id, path in _lines(root / "images.txt"):
        class_id = int(labels[image_id])
        items.append((f"images/{path}", names[str(class_id)], _half(class_id, 100)))
    return items


def _half(class_id: int, last_train: int) -> str:
    return "train" if class_id <= last_train else "test"


def cars_layout(root: Path) -> list[tuple[str, str, str]]:
    """Stanford Cars: ``cars_annos.mat``; classes 1–98 train, 99–196 test (all images of each)."""
    from scipy.io import loadmat

    file = root / "cars_annos.mat"
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist; point data.path at the Cars196 folder")
    mat = loadmat(file, squeeze_me=True)
    names = [str(name) for name in np.atleast_1d(mat["class_names"])]
    items = []
    for record in np.atleast_1d(mat["annotations"]):
        class_id = int(record["class"])
        name = f"{class_id:03d} {names[class_id - 1]}"
        items.append((str(record["relative_im_path"]), name, _half(class_id, 98)))
    return items


def sop_layout(root: Path) -> list[tuple[str, str, str]]:
    """Stanford Online Products: ``Ebay_train.txt`` and ``Ebay_test.txt`` are the split."""
    items = []
    for group in ("train", "test"):
        for _, class_id, _, path in _lines(root / f"Ebay_{group}.txt", skip=1):
            items.append((path, f"{int(class_id):05d}", group))
    return items


def _inshop_list(root: Path) -> Path:
    inside = root / "Eval" / "list_eval_partition.txt"
    return inside if inside.is_file() else root / "list_eval_partition.txt"


def inshop_layout(root: Path) -> list[tuple[str, str, str]]:
    """In-Shop: ``list_eval_partition.txt`` (a count line, a header, then rows)."""
    items = []
    for path, item, status in _lines(_inshop_list(root), skip=2):
        if status not in ("train", "query", "gallery"):
            raise ValueError(
                f"{_inshop_list(root)}: unknown evaluation_status {status!r} of {path}"
            )
        items.append((f"{status}:{path}", item, "train" if status == "train" else "test"))
    return items


def _inshop_base(root: Path) -> Path:
    return root / "Img" if (root / "Img" / "img").is_dir() else root


#: Layout → the folder that the listed image paths are relative to.
_BASES: dict[str, Callable[[Path], Path]] = {
    "cub200": _cub_root,
    "inshop": _inshop_base,
}


def load_dml(name: str, layout: Layout, request: LoadRequest) -> LabeledImages:
    """Read ``layout`` under the one ``data.path`` and decode its images as ``request`` says."""
    (root,) = request.paths
    if not root.is_dir():
        raise FileNotFoundError(f"data.path {root} is not a folder; point it at the {name} root")
    base = _BASES.get(name, lambda r: r)(root)
    entries = []
    for item_id, class_name, group in layout(root):
        file = base / item_id.partition(":")[2] if ":" in item_id else base / item_id
        if not file.is_file():
            raise FileNotFoundError(f"{name}: listed image {file} is missing; check data.path")
        stat = file.stat()
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        entries.append(ImageEntry(item_id, class_name, group, file, stamp=stamp))
    images = cached_decode(
        entries,
        [root],
        {"loader": name},
        request.size,
        request.channels,
        request.invert,
        request.cache,
        request.progress,
    )
    preprocess = Preprocess(
        request.size, request.channels, request.invert, IMAGENET_MEAN, IMAGENET_STD
    )
    return labeled_images(entries, images, f"{name}({root.name}, size={request.size})", preprocess)


def query_gallery_positions(item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions of the ``query:`` and ``gallery:`` items among ``item_ids`` (In-Shop's
    evaluation split), or None unless both roles are present."""
    roles = np.array([item_id.partition(":")[0] for item_id in item_ids])
    query, gallery = np.flatnonzero(roles == "query"), np.flatnonzero(roles == "gallery")
    return (query, gallery) if len(query) and len(gallery) else None


def query_gallery(data: LabeledImages) -> tuple[np.ndarray, np.ndarray]:
    """Positions of In-Shop's query and gallery items in ``data`` (from their item ids)."""
    positions = query_gallery_positions(data.item_ids)
    if positions is None:
        raise ValueError("these images hold no In-Shop query/gallery items; load data.name=inshop")
    return positions


_HELP = {
    "cub200": ("CUB-200-2011 birds; classes 1-100 train, 101-200 test", cub_layout),
    "cars196": ("Stanford Cars196; classes 1-98 train, 99-196 test", cars_layout),
    "sop": ("Stanford Online Products; Ebay_train/Ebay_test lists", sop_layout),
    "inshop": ("DeepFashion In-Shop; train, query and gallery lists", inshop_layout),
}


def _register(name: str, help_text: str, layout: Layout) -> None:
    DATA_SETS.register(
        name,
        DataSetSpec(
            loader=lambda request: load_dml(name, layout, request),
            paths="one",
            path_help=f"the {name} root folder, as distributed",
            size=224,
            channels=3,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            help=f"{help_text} (groups train/test)",
        ),
    )


for _name, (_help, _layout) in _HELP.items():
    _register(_name, _help, _layout)
