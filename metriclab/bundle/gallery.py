"""`Gallery`: enrol your own classes with a bundle, then identify new images, or say ``unknown``.

A gallery holds the raw embeddings of its enrolled items, their class names and item ids, and an
exact FAISS index searched under the bundle's distance (the distance's ``faiss_metric`` and
``faiss_vectors``, in numpy: :mod:`metriclab.bundle.scoring`). It is independent of any training
config, records the identity of the bundle that embedded it (a gallery is refused by any other
bundle), and lies on disk as described in :mod:`metriclab.bundle.store` (atomic, incremental).

Identification (open-set, as in face recognition: Phillips et al., FRVT 2002) gives each query a
class by ``nearest`` neighbour, a ``vote`` of its k nearest items, or the nearest class
``prototype`` (mean embedding, Snell et al. 2017), and ``unknown`` when that match lies farther
than the open-set threshold (:mod:`metriclab.bundle.openset`). A bundle with a learned comparator
ranks each query's ``shortlist`` nearest items by the comparator's pair score instead, reading
``−score`` as the distance (:mod:`metriclab.bundle.identify`).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metriclab.bundle import identify as rules
from metriclab.bundle.openset import leave_one_class_out, threshold_at_far
from metriclab.bundle.runtime import Bundle
from metriclab.bundle.sources import resolve_items
from metriclab.bundle.store import (
    Segment,
    read_manifest,
    read_segment,
    write_manifest,
    write_segment,
)

UNKNOWN = "unknown"
RULES = ("nearest", "vote", "prototype")
#: What ranks a gallery's matches: ``auto`` is the bundle's learned comparator when it has one.
RANK_BY = ("auto", "comparator", "distance")


@dataclass(frozen=True)
class Identification:
    """One query's answer: ``label`` (a class or ``unknown``), the best ``candidate`` class, its
    ``distance`` (bundle distance to the nearest item or prototype of that class; ``−score`` for a
    bundle with a learned comparator) and the nearest item of that class (None under the
    prototype rule)."""

    label: str
    candidate: str
    distance: float
    item_id: str | None


class Gallery:
    """Enrolled items of a bundle's embedding; see the module docstring.

    ``rank_by``: ``"comparator"`` ranks matches by the bundle's learned comparator,
    ``"distance"`` by the embedding's distance alone, ``"auto"`` the comparator when the bundle
    has one. The choice is the gallery's (saved with it), as its calibration depends on it.
    """

    def __init__(self, bundle: Bundle, folder: Path | None = None, rank_by: str = "auto") -> None:
        if rank_by not in RANK_BY:
            raise ValueError(f"rank_by must be one of {', '.join(RANK_BY)}, got {rank_by!r}")
        if rank_by == "comparator" and bundle.comparator is None:
            raise ValueError(
                f"bundle {bundle.folder} has no learned comparator to rank by; use "
                "rank_by='distance' (or 'auto')"
            )
        self.bundle = bundle
        self.folder = folder
        #: ``"comparator"`` or ``"distance"``: what ranks this gallery's matches.
        self.ranked_by = (
            ("distance" if bundle.comparator is None else "comparator")
            if rank_by == "auto"
            else rank_by
        )
        self._comparator = bundle.comparator if self.ranked_by == "comparator" else None
        # Growable storage, so that an add copies only the new items (amortised doubling).
        self._buffer = np.zeros((0, 0), np.float32)
        self._count = 0
        self._classes: list[str] = []
        self._item_ids: list[str] = []
        self._ids: set[str] = set()
        self._per_class: Counter[str] = Counter()
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        #: The leave-one-class-out threshold record, once :meth:`calibrate` ran.
        self.threshold: dict[str, Any] | None = None
        self._index = rules.FlatIndex(bundle.scorer)
        self._saved: list[dict[str, Any]] = []  # segment records already in ``folder``
        self._pending: list[Segment] = []
        self._next = 1

    # ----- enrolment -----
    @classmethod
    def create(
        cls, bundle: Bundle, source: Path | Sequence[Path], label: str | None = None,
        progress: bool = False, rank_by: str = "auto",
    ) -> Gallery:  # fmt: skip
        """A gallery of a folder of class folders, a ``path,label`` CSV, or files of class ``label``."""
        gallery = cls(bundle, rank_by=rank_by)
        gallery.add(source, label, progress)
        return gallery

    def add(
        self, source: Path | Sequence[Path], label: str | None = None, progress: bool = False
    ) -> int:
        """Embed and enrol more images (see :meth:`create`); FAISS adds only the new vectors.
        Returns how many items were added."""
        sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
        items = resolve_items(sources, label)
        unlabelled = [item for item in items if item.label is None]
        if unlabelled:
            raise ValueError(
                f"{unlabelled[0].path} has no class: pass a folder of class folders, a "
                "path,label CSV, or image files with --class NAME"
            )
        vectors = rules.embed_items(self.bundle, items, progress)
        self.enrol(vectors, [i.label for i in items], [i.item_id for i in items])  # type: ignore[misc]
        return len(items)

    def enrol(self, vectors: np.ndarray, classes: Sequence[str], item_ids: Sequence[str]) -> None:
        """Enrol embeddings ``(n, D)`` of classes ``classes`` with ids ``item_ids`` (unique)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(classes) or len(classes) != len(item_ids):
            raise ValueError("enrol needs (n, D) vectors and n class names and n item ids")
        clash = next((i for i in item_ids if i in self._ids), None)
        if clash is not None or len(set(item_ids)) != len(item_ids):
            raise ValueError(
                f"item id {clash or item_ids[0]!r} is already enrolled; give the file another "
                "name or remove the old item first"
            )
        segment = Segment(vectors, np.asarray(classes, dtype=str), np.asarray(item_ids, dtype=str))
        self._append(segment)
        self._pending.append(segment)
        self.threshold = None  # the enrolled set changed: a stored calibration no longer holds

    @property
    def vectors(self) -> np.ndarray:
        """Raw embeddings ``(N, D)`` of the enrolled items (a view: do not modify)."""
        return self._buffer[: self._count]

    @property
    def classes(self) -> np.ndarray:
        """Class name of each item ``(N,)``."""
        return self._cached()[0]

    @property
    def item_ids(self) -> np.ndarray:
        """Id of each item ``(N,)``."""
        return self._cached()[1]

    def _cached(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = (
                np.asarray(self._classes, dtype=str),
                np.asarray(self._item_ids, dtype=str),
            )
        return self._arrays

    def _append(self, segment: Segment) -> None:
        new, dim = segment.vectors.shape
        if self._count and dim != self._buffer.shape[1]:
            raise ValueError(
                f"vectors of dimension {dim} cannot join a gallery of dimension "
                f"{self._buffer.shape[1]}; embed them with the gallery's bundle"
            )
        if self._count + new > len(self._buffer):
            grown = np.empty((max(2 * len(self._buffer), self._count + new), dim), np.float32)
            if self._count:
                grown[: self._count] = self._buffer[: self._count]
            self._buffer = grown
        self._buffer[self._count : self._count + new] = segment.vectors
        self._count += new
        self._index.add(segment.vectors)
        self._classes += segment.classes.tolist()
        self._item_ids += segment.item_ids.tolist()
        self._ids.update(segment.item_ids.tolist())
        self._per_class.update(segment.classes.tolist())
        self._arrays = None

    def remove(self, class_name: str | None = None, item_id: str | None = None) -> int:
        """Remove every item of ``class_name``, or the item ``item_id``; how many were removed."""
        if (class_name is None) == (item_id is None):
            raise ValueError("remove takes a class name or an item id, not both or neither")
        values, what = (self.classes, "class") if item_id is None else (self.item_ids, "item")
        wanted = class_name if item_id is None else item_id
        drop = values == wanted
        if not drop.any():
            enrolled = sorted(set(values.tolist()))
            close = difflib.get_close_matches(str(wanted), enrolled, n=3, cutoff=0.4)
            hint = f"closest: {', '.join(close)}" if close else f"{len(enrolled)} enrolled"
            raise ValueError(f"{what} {wanted!r} is not enrolled ({hint}); check the spelling")
        keep = ~drop
        kept = Segment(self.vectors[keep].copy(), self.classes[keep], self.item_ids[keep])
        self._buffer, self._count, self._arrays = np.zeros((0, 0), np.float32), 0, None
        self._classes, self._item_ids, self._ids, self._per_class = [], [], set(), Counter()
        self._index = rules.FlatIndex(self.bundle.scorer)
        if len(kept.vectors):
            self._append(kept)
        self._saved, self._pending, self.threshold = [], [kept], None  # rewritten as one segment
        return int(drop.sum())

    # ----- questions -----
    @property
    def class_names(self) -> list[str]:
        """Enrolled classes, sorted."""
        return sorted(self._per_class)

    def __len__(self) -> int:
        return self._count

    def identify(
        self, queries: np.ndarray | Sequence[Path], rule: str = "nearest", k: int = 5,
        threshold: float | str | None = "auto", chunk: int = 4096,
        shortlist: int = rules.SHORTLIST,
    ) -> list[Identification]:  # fmt: skip
        """Identify query embeddings ``(Nq, D)`` or image files (see the module docstring).

        ``threshold``: a distance; ``"bundle"`` (calibrated at export), ``"gallery"``
        (leave-one-class-out, :meth:`calibrate`), ``"auto"`` (the gallery's if calibrated, else
        the bundle's, else none) or ``None`` / ``"none"`` (never ``unknown``). ``shortlist``: how
        many nearest items a bundle's learned comparator re-scores per query.
        """
        if rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
        if not len(self):
            raise ValueError("the gallery is empty; enrol classes with 'metriclab gallery add'")
        rules.check_shortlist(shortlist)
        limit = self.resolve_threshold(threshold)
        vectors = queries if isinstance(queries, np.ndarray) else self.bundle.embed(list(queries))
        comparator = self._comparator
        if rule == "prototype":
            names, protos = rules.prototypes(self.vectors, self.classes)
            best, dist = rules.nearest_prototype(
                self.bundle.scorer, protos, vectors, chunk, comparator, shortlist
            )
            found = [(names[b], float(d), None) for b, d in zip(best, dist, strict=True)]
        else:
            k = 1 if rule == "nearest" else min(k, len(self))
            dist, ids = rules.search(
                self._index, self.vectors, vectors, k, chunk, comparator, shortlist
            )
            found = rules.decide(dist, ids, self.classes, self.item_ids)
        return [Identification(UNKNOWN if d > limit else c, c, d, item) for c, d, item in found]

    def resolve_threshold(self, threshold: float | str | None) -> float:
        """The distance threshold a ``threshold`` argument of :meth:`identify` means."""
        if threshold is None or threshold == "none":
            return float("inf")
        if isinstance(threshold, (int, float)):
            return float(threshold)
        calibrated = self.threshold
        if calibrated is not None and calibrated.get("ranked_by", "distance") != self.ranked_by:
            calibrated = None  # made before this gallery ranked as it does: calibrate again
        if threshold == "gallery" or (threshold == "auto" and calibrated is not None):
            return float((calibrated or self.calibrate())["distance"])
        if threshold in ("bundle", "auto"):
            open_set = self.bundle.open_set
            if open_set is not None and open_set.get("ranked_by", "distance") == self.ranked_by:
                return float(open_set["distance"])
            if threshold == "auto":
                return float("inf")
            raise ValueError(
                f"bundle {self.bundle.folder} has no open-set threshold for ranking by its "
                f"{self.ranked_by} (exported before it existed); export it again, calibrate the "
                "gallery, or set one by hand"
            )
        raise ValueError(
            f"threshold must be a distance, 'auto', 'bundle', 'gallery' or 'none', got {threshold!r}"
        )

    def calibrate(
        self, target_far: float = 0.01, probes: int = 2000, seed: int = 0,
        shortlist: int = rules.SHORTLIST,
    ) -> dict[str, Any]:  # fmt: skip
        """Leave-one-class-out open-set threshold at false-alarm rate ``target_far`` (stored)."""
        rules.check_shortlist(shortlist)
        labels = np.unique(self.classes, return_inverse=True)[1]
        scorer, vectors, comparator = self.bundle.scorer, self.vectors, self._comparator

        def nearest(ids: np.ndarray, other: bool) -> np.ndarray:
            return rules.nearest_of(scorer, vectors, labels, ids, other, comparator, shortlist)

        impostor, genuine = leave_one_class_out(
            labels, lambda ids: nearest(ids, True), lambda ids: nearest(ids, False), probes, seed
        )
        value = threshold_at_far(impostor, target_far)
        self.threshold = {
            "distance": value,
            "ranked_by": self.ranked_by,
            **({"shortlist": shortlist} if comparator is not None else {}),
            "rule": f"false-alarm rate ≤ {target_far:g}, leave-one-class-out",
            "probes": len(impostor),
            "accepted_genuine": float((genuine <= value).mean()) if len(genuine) else None,
            "seed": seed,
        }
        return self.threshold

    # ----- files -----
    def save(self, folder: Path | None = None) -> Path:
        """Write the gallery to ``folder`` (default: where it was loaded from), atomically."""
        target = Path(folder) if folder is not None else self.folder
        if target is None:
            raise ValueError("name the gallery folder to save to")
        if target != self.folder:  # a new place: everything as one segment
            self._saved, self._pending, self._next = (
                [],
                [Segment(self.vectors, self.classes, self.item_ids)],
                1,
            )
        target.mkdir(parents=True, exist_ok=True)
        for segment in self._pending:
            if len(segment.vectors):
                self._saved.append(write_segment(target, self._next, segment))
                self._next += 1
        write_manifest(target, self._record())
        self.folder, self._pending = target, []
        return target

    def _record(self) -> dict[str, Any]:
        return {
            "bundle": {"identity": self.bundle.identity, "path": str(self.bundle.folder.resolve())},
            "distance": self.bundle.manifest["distance"],
            "ranked_by": self.ranked_by,
            "dim": int(self.vectors.shape[1]) if len(self) else None,
            "items": len(self),
            "classes": len(self.class_names),
            "segments": self._saved,
            "next_segment": self._next,
            "threshold": self.threshold,
        }

    @classmethod
    def load(cls, folder: Path, bundle: Bundle | None = None, backend: str = "auto") -> Gallery:
        """Read a gallery; its bundle is the one it records unless ``bundle`` is given, and a
        bundle other than the one that made it is refused, naming both."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        made_by = manifest["bundle"]
        bundle = bundle or Bundle.load(Path(made_by["path"]), backend)
        if bundle.identity != made_by["identity"]:
            raise ValueError(
                f"gallery {folder} was made by bundle {made_by['path']} (identity "
                f"{made_by['identity']}), not by bundle {bundle.folder} (identity "
                f"{bundle.identity}); rebuild it with 'metriclab gallery create'"
            )
        gallery = cls(bundle, folder, manifest.get("ranked_by", "auto"))
        for record in manifest["segments"]:
            gallery._append(read_segment(folder, record))
        gallery._saved, gallery._next = list(manifest["segments"]), int(manifest["next_segment"])
        gallery.threshold = manifest.get("threshold")
        return gallery

    def info(self) -> dict[str, Any]:
        """A summary: size, classes (with item counts), bundle, distance, threshold."""
        return {
            **self._record(),
            "folder": None if self.folder is None else str(self.folder),
            "per_class": {name: self._per_class[name] for name in self.class_names},
            "bundle_open_set": self.bundle.open_set,
        }
