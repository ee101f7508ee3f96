"""Gallery: identification against a brute-force reference, enrolment, atomic files, refusals."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from metriclab.bundle import UNKNOWN, Bundle, Gallery
from metriclab.bundle import store as store_module
from metriclab.distances import distance_from_dict
from tests.bundle.conftest import write_class_folders


@pytest.fixture(scope="module")
def bundle(bundle_dir: Path) -> Bundle:
    return Bundle.load(bundle_dir, "torchscript")


def _reference_matrix(bundle: Bundle, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances by the torch distance (independent of the FAISS path and the numpy scorer)."""
    distance = distance_from_dict(bundle.manifest["distance"])
    with torch.no_grad():
        return distance.matrix(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def _gallery(bundle: Bundle, seed: int = 0, n: int = 60, classes: int = 4) -> Gallery:
    rng = np.random.default_rng(seed)
    dim = len(bundle.manifest["distance"]["weights"])
    centres = rng.normal(size=(classes, dim)) * 2
    labels = np.arange(n) % classes
    vectors = (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32)
    gallery = Gallery(bundle)
    gallery.enrol(vectors, [f"c{label}" for label in labels], [f"i{i}" for i in range(n)])
    return gallery


@pytest.mark.parametrize("rule", ["nearest", "vote", "prototype"])
def test_identify_equals_brute_force(bundle: Bundle, rule: str) -> None:
    gallery = _gallery(bundle)
    queries = (
        np.random.default_rng(1).normal(size=(25, gallery.vectors.shape[1])).astype(np.float32) * 2
    )
    answers = gallery.identify(queries, rule=rule, k=7, threshold=None, chunk=4)
    if rule == "prototype":
        names = sorted(set(gallery.classes.tolist()))
        protos = np.stack([gallery.vectors[gallery.classes == c].mean(0) for c in names])
        matrix = _reference_matrix(bundle, queries, protos.astype(np.float32))
        expected = [(names[j], matrix[q, j]) for q, j in enumerate(matrix.argmin(1))]
    else:
        matrix = _reference_matrix(bundle, queries, gallery.vectors)
        expected = []
        for row in matrix:
            order = np.argsort(row, kind="stable")[: 1 if rule == "nearest" else 7]
            votes = Counter(gallery.classes[order].tolist())
            top = max(votes.values())
            # Ties go to the class whose nearest member comes first.
            winner = next(gallery.classes[j] for j in order if votes[gallery.classes[j]] == top)
            expected.append((winner, min(row[j] for j in order if gallery.classes[j] == winner)))
    assert [a.label for a in answers] == [e[0] for e in expected]
    np.testing.assert_allclose([a.distance for a in answers], [e[1] for e in expected], rtol=1e-4)


def test_unknown_beyond_threshold_and_threshold_sources(bundle: Bundle) -> None:
    gallery = _gallery(bundle)
    queries = gallery.vectors[:10] + 0.01
    nearest = gallery.identify(queries, threshold=None)
    cut = float(np.median([a.distance for a in nearest]))
    answers = gallery.identify(queries, threshold=cut)
    for plain, judged in zip(nearest, answers, strict=True):
        assert judged.candidate == plain.label
        assert judged.label == (UNKNOWN if plain.distance > cut else plain.label)
    assert gallery.resolve_threshold("bundle") == bundle.open_set["distance"]
    assert gallery.resolve_threshold("auto") == bundle.open_set["distance"]
    calibrated = gallery.calibrate(target_far=0.1)
    assert gallery.resolve_threshold("auto") == calibrated["distance"]
    with pytest.raises(ValueError, match="'auto', 'bundle', 'gallery' or 'none'"):
        gallery.resolve_threshold("loose")


def test_leave_one_class_out_meets_the_far(bundle: Bundle) -> None:
    gallery = _gallery(bundle, n=40)
    record = gallery.calibrate(target_far=0.1, probes=40)
    matrix = _reference_matrix(bundle, gallery.vectors, gallery.vectors)
    other = gallery.classes[:, None] != gallery.classes[None, :]
    impostor = np.where(other, matrix, np.inf).min(1)  # each item's best match, its class left out
    accepted = impostor <= record["distance"]
    assert accepted.mean() <= 0.1
    assert (impostor <= np.nextafter(np.sort(impostor)[accepted.sum()], np.inf)).mean() > 0.1


def test_add_is_incremental_and_equals_one_enrolment(bundle: Bundle, tmp_path: Path) -> None:
    whole = _gallery(bundle)
    parts = Gallery(bundle)
    for start in range(0, 60, 25):
        stop = start + 25
        parts.enrol(whole.vectors[start:stop], whole.classes[start:stop].tolist(),
                    whole.item_ids[start:stop].tolist())  # fmt: skip
        parts.save(tmp_path / "g")
    loaded = Gallery.load(tmp_path / "g", bundle)
    assert len(json.loads((tmp_path / "g" / "gallery.json").read_text())["segments"]) == 3
    queries = whole.vectors[::7] + 0.3
    assert whole.identify(queries, threshold=None) == loaded.identify(queries, threshold=None)
    with pytest.raises(ValueError, match="'i3' is already enrolled"):
        loaded.enrol(whole.vectors[3:4], ["c3"], ["i3"])


def test_remove_class_and_item(bundle: Bundle, tmp_path: Path) -> None:
    gallery = _gallery(bundle)
    assert gallery.remove(class_name="c1") == 15
    assert gallery.remove(item_id="i0") == 1
    gallery.save(tmp_path / "g")
    loaded = Gallery.load(tmp_path / "g", bundle)
    assert loaded.class_names == ["c0", "c2", "c3"] and len(loaded) == 44
    assert all(a.label != "c1" for a in loaded.identify(loaded.vectors, threshold=None))
    with pytest.raises(
        ValueError, match=r"class .c9. is not enrolled \(closest: (c[023], ){2}c[023]\)"
    ):
        loaded.remove(class_name="c9")
    assert sorted(p.name for p in (tmp_path / "g").glob("seg-*")) == ["seg-000001.npz"]


def test_killed_add_leaves_the_gallery_as_it_was(
    bundle: Bundle, tmp_path: Path, monkeypatch
) -> None:
    gallery = _gallery(bundle)
    gallery.save(tmp_path / "g")
    before = {p.name: p.read_bytes() for p in (tmp_path / "g").iterdir()}
    loaded = Gallery.load(tmp_path / "g", bundle)
    loaded.enrol(gallery.vectors[:5] + 1, ["new"] * 5, [f"n{i}" for i in range(5)])

    def killed(*args: object) -> None:  # the process dies after the segment, before the commit
        raise KeyboardInterrupt

    monkeypatch.setattr("metriclab.bundle.gallery.write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        loaded.save()
    assert (tmp_path / "g" / "seg-000002.npz").exists()  # written, but never committed
    again = Gallery.load(tmp_path / "g", bundle)
    assert len(again) == 60 and "new" not in again.class_names
    assert {
        p.name: p.read_bytes() for p in (tmp_path / "g").iterdir() if p.name in before
    } == before
    monkeypatch.setattr("metriclab.bundle.gallery.write_manifest", store_module.write_manifest)
    again.enrol(gallery.vectors[:1] + 1, ["new"], ["n0"])
    again.save()  # the next commit reuses the number and clears the leftover
    assert len(Gallery.load(tmp_path / "g", bundle)) == 61


def test_truncated_gallery_and_other_bundle_are_refused(
    bundle: Bundle, bundle_dir: Path, tmp_path: Path
) -> None:
    gallery = _gallery(bundle)
    gallery.save(tmp_path / "g")
    segment = tmp_path / "g" / "seg-000001.npz"
    data = segment.read_bytes()
    segment.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated or damaged.*rebuild"):
        Gallery.load(tmp_path / "g", bundle)
    segment.write_bytes(data)
    other_dir = tmp_path / "other"
    shutil.copytree(bundle_dir, other_dir)
    manifest = json.loads((other_dir / "bundle.json").read_text())
    manifest["bias"] += 1.0
    (other_dir / "bundle.json").write_text(json.dumps(manifest))
    other = Bundle.load(other_dir, "torchscript")
    with pytest.raises(
        ValueError, match=f"made by bundle .*{bundle.identity}.*not by bundle {other_dir}"
    ):
        Gallery.load(tmp_path / "g", other)


def test_create_from_folder_finds_its_own_images(
    bundle: Bundle, test_digits, tmp_path: Path
) -> None:
    images, labels, names = test_digits
    folder = write_class_folders(tmp_path / "enrol", images, labels, names, per_class=3)
    gallery = Gallery.create(bundle, folder)
    assert gallery.class_names == sorted(names) and len(gallery) == 3 * len(names)
    files = sorted(folder.glob("*/*.png"))
    answers = gallery.identify(files, threshold=None)
    assert [a.label for a in answers] == [f.parent.name for f in files]
    assert max(a.distance for a in answers) < 1e-4
