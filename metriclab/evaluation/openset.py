"""Open-set identification metrics: DIR@FAR (TPIR@FPIR), as face recognition reports them.

In open-set identification (Phillips et al., FRVT 2002; Grother et al., NIST FRVT, who write
TPIR@FPIR) some probes belong to enrolled classes ("known") and some do not ("unknown"). A probe
is answered with its best match when that lies within a distance threshold ``t``, else rejected.

* false-alarm rate ``FAR(t)`` (FPIR): the fraction of unknown probes whose best match is within t;
* detection-and-identification rate ``DIR(t)`` (TPIR): the fraction of known probes whose best
  match is within t *and* of the right class.

``DIR@FAR=f`` is DIR at the loosest threshold whose FAR is at most f
(:func:`metriclab.bundle.threshold_at_far`); as f → 1 it tends to the closed-set rank-1 accuracy.
Numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from metriclab.bundle.openset import threshold_at_far

#: The false-alarm rates reported by default.
FARS = (0.001, 0.01, 0.1)


@dataclass(frozen=True)
class OpenSetResult:
    """DIR at each target FAR; ``thresholds`` the distance thresholds that meet them;
    ``rank1`` the closed-set accuracy of the known probes; counts of known and unknown probes."""

    fars: tuple[float, ...]
    dir: tuple[float, ...]
    thresholds: tuple[float, ...]
    rank1: float
    known: int
    unknown: int

    def to_dict(self) -> dict[str, object]:
        return {
            "dir_at_far": {f"{far:g}": d for far, d in zip(self.fars, self.dir, strict=True)},
            "thresholds": {
                f"{far:g}": t for far, t in zip(self.fars, self.thresholds, strict=True)
            },
            "rank1": self.rank1,
            "known_probes": self.known,
            "unknown_probes": self.unknown,
        }


def dir_at_far(
    known_distance: np.ndarray, known_correct: np.ndarray, unknown_distance: np.ndarray,
    fars: Sequence[float] = FARS,
) -> OpenSetResult:  # fmt: skip
    """DIR@FAR from best-match distances of known ``(K,)`` (and whether that match had the right
    class, ``(K,)`` bool) and of unknown probes ``(U,)``."""
    known_distance = np.asarray(known_distance, dtype=np.float64)
    known_correct = np.asarray(known_correct, dtype=bool)
    if known_distance.shape != known_correct.shape or known_distance.ndim != 1:
        raise ValueError("known_distance and known_correct must be (K,) arrays of equal length")
    if len(known_distance) == 0:
        raise ValueError("DIR needs at least one known probe (an enrolled class with a probe)")
    thresholds = tuple(threshold_at_far(unknown_distance, far) for far in fars)
    rates = tuple(float((known_correct & (known_distance <= t)).mean()) for t in thresholds)
    return OpenSetResult(
        tuple(float(f) for f in fars), rates, thresholds, float(known_correct.mean()),
        len(known_distance), len(np.ravel(unknown_distance)),
    )  # fmt: skip


#: The same measure under NIST FRVT's names.
tpir_at_fpir = dir_at_far


def evaluate_open_set(
    vectors: np.ndarray, labels: np.ndarray, matrix: Callable[[np.ndarray, np.ndarray], np.ndarray],
    enrolled_fraction: float = 0.5, shots: int = 1, fars: Sequence[float] = FARS, seed: int = 0,
) -> OpenSetResult:  # fmt: skip
    """Open-set identification on held-out classes with some classes not enrolled.

    A seeded ``enrolled_fraction`` of the classes is enrolled with ``shots`` items each (the
    gallery); their other items are the known probes, every item of the other classes an
    unknown probe. ``matrix(a, b)`` gives all-pairs distances ``(Na, Nb)`` (e.g. a bundle
    scorer's ``matrix``). Best match: the nearest gallery item.
    """
    if not 0.0 < enrolled_fraction < 1.0:
        raise ValueError(f"enrolled_fraction must lie in (0, 1), got {enrolled_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    count = max(1, min(len(classes) - 1, round(enrolled_fraction * len(classes))))
    if len(classes) < 2:
        raise ValueError("open-set evaluation needs at least two classes (one enrolled, one not)")
    enrolled = classes[:count]
    gallery = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:shots] for c in enrolled]
    )
    known = np.setdiff1d(np.flatnonzero(np.isin(labels, enrolled)), gallery)
    unknown = np.flatnonzero(~np.isin(labels, enrolled))
    best_known = _best(matrix, vectors[known], vectors[gallery])
    best_unknown = _best(matrix, vectors[unknown], vectors[gallery])
    correct = labels[gallery][best_known[1]] == labels[known]
    return dir_at_far(best_known[0], correct, best_unknown[0], fars)


def _best(
    matrix: Callable[[np.ndarray, np.ndarray], np.ndarray], probes: np.ndarray, gallery: np.ndarray,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Distance ``(P,)`` and gallery index ``(P,)`` of each probe's nearest gallery item."""
    distances, ids = [], []
    for start in range(0, len(probes), chunk):
        block = np.asarray(matrix(probes[start : start + chunk], gallery))
        ids.append(block.argmin(1))
        distances.append(block.min(1))
    if not distances:
        return np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(distances), np.concatenate(ids)
