"""Open-set thresholds: the distance beyond which an identification is ``unknown``.

An open-set identifier (Phillips et al., FRVT 2002; ISO/IEC 19795-1) accepts its best match only
when it lies within a distance threshold ``t``. Probes of classes that are not enrolled
(impostors) should be rejected; the fraction accepted anyway is the false-alarm rate (FAR,
FPIR). :func:`threshold_at_far` picks the loosest ``t`` whose false-alarm rate on a sample of
impostor distances is at most the target; :func:`leave_one_class_out` makes that sample from an
enrolled set alone, by treating each class in turn as not enrolled.

Torch-free (numpy only): the runtime calibrates galleries with it, export calibrates bundles.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The largest ``t`` with ``mean(impostor ≤ t) ≤ far``: accept a best match iff ``d ≤ t``.

    ``impostor`` ``(M,)``: best-match distances of probes whose class is not enrolled.
    """
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"the target false-alarm rate must lie in [0, 1], got {far}")
    values = np.sort(np.asarray(impostor, dtype=np.float64).ravel())
    if len(values) == 0 or not np.isfinite(values).all():
        raise ValueError("calibration needs finite impostor distances; enrol at least two classes")
    allowed = int(np.floor(far * len(values) + 1e-9))
    if allowed >= len(values):
        return float("inf")
    # Everything strictly below values[allowed]: at most `allowed` impostors pass, ties included.
    return float(np.nextafter(values[allowed], -np.inf))


def leave_one_class_out(
    labels: np.ndarray,
    nearest_other: Callable[[np.ndarray], np.ndarray],
    nearest_same: Callable[[np.ndarray], np.ndarray],
    probes: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Impostor and genuine best-match distances of up to ``probes`` seeded enrolled items.

    With the probe's own class left out of the gallery, its best match is its nearest item of
    another class (``nearest_other(ids) → (P,)``): an impostor distance. With only the probe
    itself left out, a genuine best match is its nearest other item of its own class
    (``nearest_same(ids) → (P,)``, ``inf`` for a class of one item, which is then skipped).
    """
    if len(np.unique(labels)) < 2:
        raise ValueError(
            "leave-one-class-out calibration needs at least two enrolled classes; enrol more "
            "or set the threshold by hand"
        )
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.permutation(len(labels))[:probes])
    impostor = nearest_other(ids)
    genuine = nearest_same(ids)
    return impostor, genuine[np.isfinite(genuine)]
