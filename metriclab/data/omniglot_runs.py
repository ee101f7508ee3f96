"""Import of the Omniglot one-shot runs format (Lake, Salakhutdinov & Tenenbaum 2015, *Science*).

A runs folder holds ``runNN/`` subfolders. Each has ``training/classMM.png`` (one drawing per
class), ``test/itemKK.png`` (the queries) and ``class_labels.txt``, whose lines
``runNN/test/itemKK.png runNN/training/classMM.png`` say that query KK is of class MM; paths are
relative to the runs folder. Each run becomes one N-way 1-shot episode (20-way in the original)
with every query of the run. Class ``runNN/classMM`` is named after its training drawing; item ids
are the relative paths, so an episode file stays valid wherever the folder moves.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from metriclab.data.episode_io import check_item_id, safe_join
from metriclab.data.episodes import EpisodeSet
from metriclab.data.images import LabeledImages

LABELS_FILE = "class_labels.txt"
_RUN = re.compile(r"run\d+")


def _read_run(root: Path, run: str) -> dict[str, list[str]]:
    """``{training id: [test ids]}`` of one run, from its ``class_labels.txt``."""
    labels_path = root / run / LABELS_FILE
    if not labels_path.is_file():
        raise FileNotFoundError(f"{labels_path} does not exist; every runNN folder needs one")
    queries: dict[str, list[str]] = {}
    seen: set[str] = set()
    for number, line in enumerate(labels_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{labels_path} line {number}"
        if len(fields) != 2:
            raise ValueError(f"{where} must be '<test image> <training image>', got {line!r}")
        test, train = fields
        for item_id, folder in ((test, "test"), (train, "training")):
            check_item_id(item_id, where)
            if not item_id.startswith(f"{run}/{folder}/"):
                raise ValueError(f"{where}: {item_id!r} is not in {run}/{folder}/")
            if not safe_join(root, item_id).is_file():
                raise FileNotFoundError(f"{where} names {root / item_id}, which does not exist")
        if test in seen:
            raise ValueError(f"{where} lists {test!r} a second time; each query has one class")
        seen.add(test)
        queries.setdefault(train, []).append(test)
    if not queries:
        raise ValueError(f"{labels_path} lists no query; it should have one line per test image")
    per_class = {len(v) for v in queries.values()}
    if len(per_class) != 1:
        raise ValueError(
            f"{labels_path}: classes have {min(per_class)} to {max(per_class)} queries; an "
            "episode needs the same number of queries for every class"
        )
    return {train: sorted(tests) for train, tests in sorted(queries.items())}


def _decode(paths: list[Path], size: int) -> torch.Tensor:
    """``(M, 1, size, size)`` uint8: strokes white on black, resized with antialiasing."""
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("L"), dtype=np.uint8)
        except OSError as failure:
            raise ValueError(f"cannot decode image {path}: {failure}") from None
        # The PNGs have black strokes on white; metriclab's Omniglot has white strokes on black,
        # so that zero padding and pooling treat the background as empty.
        tensor = torch.from_numpy(255 - pixels)[None, None].float()
        if tensor.shape[-2:] != (size, size):
            tensor = F.interpolate(
                tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
        images.append(tensor.round().clamp(0, 255).to(torch.uint8)[0])
    return torch.stack(images)


def load_omniglot_runs(root: str | Path, size: int = 105) -> tuple[EpisodeSet, LabeledImages]:
    """Read a runs folder: one episode per run, and the run images as :class:`LabeledImages`.

    Returns the :class:`EpisodeSet` (E runs, N classes, K = 1, Q queries per class; its meta
    records ``source: omniglot-runs`` and the ``root``) and the images ``(M, 1, size, size)``
    uint8, inverted to white strokes on black and resized from 105×105 with antialiasing
    (bilinear), with one group per run.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder {root} does not exist; pass the folder of runNN/")
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    runs = sorted(p.name for p in root.iterdir() if p.is_dir() and _RUN.fullmatch(p.name))
    if not runs:
        raise ValueError(f"{root} has no runNN/ folders; pass the folder that holds run01/ …")
    tables = [_read_run(root, run) for run in runs]
    ways = {len(table) for table in tables}
    if len(ways) != 1:
        raise ValueError(f"runs of {root} have {min(ways)} to {max(ways)} classes; they must agree")
    names = [[f"{Path(t).parent.parent.name}/{Path(t).stem}" for t in table] for table in tables]
    ids: list[str] = []
    labels: list[int] = []
    for label, (train, tests) in enumerate(p for table in tables for p in table.items()):
        ids += [train, *tests]
        labels += [label] * (1 + len(tests))
    description = f"omniglot-runs({root.name}, size={size})"
    data = LabeledImages(
        images=_decode([root / i for i in ids], size),
        labels=torch.tensor(labels, dtype=torch.int64),
        class_names=tuple(n for run_names in names for n in run_names),
        item_ids=tuple(ids),
        groups=torch.arange(len(runs)).repeat_interleave(len(tables[0])),
        group_names=tuple(runs),
        description=description,
    )
    episodes = EpisodeSet(
        classes=np.array(names),
        support=np.array([[[t] for t in table] for table in tables]),
        query=np.array([list(table.values()) for table in tables]),
        meta={
            "data": description,
            "source": "omniglot-runs",
            "root": str(root),
            "protocol": "Lake et al. 2015 one-shot runs",
            "runs": len(runs),
        },
    )
    return episodes, data
