"""Galleries of a training config's data: ``metriclab index build`` / ``index query``.

For your own classes use :class:`metriclab.bundle.Gallery` (``metriclab gallery create|add|remove``
and ``metriclab identify``), which needs no training config, decides a class (nearest, vote,
prototype) and says ``unknown`` beyond the open-set threshold; ``Gallery`` and ``Identification``
are importable from here too. This module keeps the older split-based index:

``build_gallery`` writes the index (a plain FAISS file plus its sidecar, see
:class:`~metriclab.evaluation.FaissIndex`) and ``<index>.gallery.json``, which names the bundle and
the class names so that ``query_gallery`` can embed new images the same way and name what it finds.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from metriclab.atomic import write_text
from metriclab.bundle import Bundle, Gallery, Identification
from metriclab.config import apply_overrides, config_from_dict
from metriclab.data import pixels
from metriclab.evaluation import FaissIndex
from metriclab.runs import RecordedSplit, SplitWarning, refuse_split_keys, split_data

SPLITS = ("test", "train", "all")

__all__ = ["SPLITS", "Gallery", "Identification", "Match", "build_gallery", "query_gallery"]


def _sidecar(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".gallery.json")


def build_gallery(
    bundle_dir: Path, out: Path, split: str = "test", overrides: list[str] | None = None,
    kind: str = "flat",
) -> int:  # fmt: skip
    """Embed the ``split`` of the bundle's data (``data.*`` overrides apply) and index it.

    The sides are the run's recorded class split (as its bundle records it), so a folder that
    gained classes since training does not move them onto the test side.

    Returns the gallery size.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    bad = [o for o in overrides or [] if not o.startswith("data.")]
    if bad:
        raise ValueError(f"a gallery takes data.* overrides only, got {bad[0]!r}")
    bundle = Bundle.load(bundle_dir)
    where = f"bundle {bundle_dir}"
    recorded = (
        None if bundle.split is None else RecordedSplit.from_dict(bundle.split, str(bundle_dir))
    )
    if recorded is not None:
        refuse_split_keys(where, overrides or [])
    config = config_from_dict(apply_overrides(bundle.config, overrides or []))
    data = split_data(config, recorded, where)
    if data.ignored:
        warnings.warn(
            f"{len(data.ignored)} class(es) in the data are not in the split recorded in "
            f"{where} and were left out of the gallery",
            SplitWarning,
            stacklevel=2,
        )
    train, test = data.train, data.test
    parts = {"test": [test], "train": [train], "all": [train, test]}[split]
    vectors = [bundle.embed_images(pixels(part.images)) for part in parts]
    labels, names, ids, offset = [], [], [], 0
    for part in parts:
        labels.append(part.labels + offset)
        names += part.class_names
        ids += part.item_ids
        offset += part.num_classes
    index = FaissIndex.build(
        torch.cat(vectors), bundle.distance, kind, labels=torch.cat(labels), item_ids=ids
    )
    index.save(out)
    record = {"bundle": str(bundle_dir.resolve()), "class_names": names, "split": split}
    write_text(_sidecar(out), json.dumps(record, indent=1) + "\n")
    return len(index)


@dataclass(frozen=True)
class Match:
    """One search hit: the gallery item, its class and its distance to the query."""

    item_id: str
    class_name: str
    distance: float


def query_gallery(index_path: Path, images: list[Path], k: int = 5) -> list[list[Match]]:
    """The ``k`` nearest gallery items of each image file."""
    sidecar = _sidecar(index_path)
    if not sidecar.is_file():
        raise FileNotFoundError(
            f"{index_path} has no {sidecar.name}; build it with 'metriclab index build'"
        )
    record = json.loads(sidecar.read_text("utf-8"))
    bundle = Bundle.load(Path(record["bundle"]))
    index = FaissIndex.load(index_path, distance=bundle.distance)
    distances, found = index.search(bundle.embed_files(images), k)
    names = record["class_names"]
    return [
        [
            Match(index.item_ids[j], names[index.labels[j]], float(d))
            for d, j in zip(row_d, row_j, strict=True)
            if j >= 0
        ]
        for row_d, row_j in zip(distances, found, strict=True)
    ]
