"""Galleries of a bundle with a learned comparator rank matches by its pair score: FAISS
shortlists by the embedding's distance, the comparator re-scores, ``−score`` is the distance that
rules, thresholds and the leave-one-class-out calibrations read."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.bundle import Bundle, Gallery, threshold_at_far
from metriclab.bundle.identify import SHORTLIST, pair_distances, rerank
from metriclab.cli import main
from metriclab.runs import open_run


def _asymmetric(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A toy pair score that is not symmetric, so the argument order is tested too."""
    return -np.abs(first - 2.0 * second).sum(axis=1)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 7), st.integers(1, 5), st.integers(0, 2**16))
def test_pair_distances_and_rerank_follow_a_loop(nq: int, ni: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    queries = rng.normal(size=(nq, dim)).astype(np.float32)
    items = rng.normal(size=(ni, dim)).astype(np.float32)
    matrix = pair_distances(_asymmetric, queries, items)
    for q in range(nq):
        for i in range(ni):  # the item is the class side: the comparator's first input
            assert matrix[q, i] == pytest.approx(
                -_asymmetric(items[i : i + 1], queries[q : q + 1])[0]
            )
    ids = np.stack([rng.permutation(ni) for _ in range(nq)])
    ids[:, rng.integers(0, ni)] = -1  # FAISS pads missing neighbours with -1
    k = int(rng.integers(1, ni + 1))
    distances, ranked = rerank(_asymmetric, queries, items, ids, k)
    for q in range(nq):
        found = [(matrix[q, i], pos, i) for pos, i in enumerate(ids[q]) if i >= 0]
        expected = sorted(found)[:k]  # ties: the candidate FAISS ranked first
        assert ranked[q, : len(expected)].tolist() == [i for *_, i in expected]
        np.testing.assert_allclose(distances[q, : len(expected)], [d for d, *_ in expected])
        assert (ranked[q, len(expected) :] == -1).all()


def _enrolled(
    bundle_dir: Path, run: Path, per_class: int
) -> tuple[Gallery, np.ndarray, np.ndarray]:
    """A gallery of ``per_class`` test images of each class, and the other test images' embeddings
    and classes as queries."""
    bundle = Bundle.load(bundle_dir, "onnx")
    test = open_run(run).data.test
    labels = test.labels.numpy()
    names = np.asarray(test.class_names)[labels]
    chosen = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    rest = np.setdiff1d(np.arange(len(labels)), chosen)[:40]
    vectors = bundle.embed(test.images.numpy())
    gallery = Gallery(bundle)
    gallery.enrol(vectors[chosen], names[chosen].tolist(), [f"i{i}" for i in chosen])
    return gallery, vectors[rest], names[rest]


def test_identify_ranks_by_the_comparator(exported) -> None:
    _, run, bundle_dir, _ = exported
    gallery, queries, _ = _enrolled(bundle_dir, run, per_class=4)
    comparator = gallery.bundle.comparator
    assert comparator is not None and gallery.ranked_by == "comparator"
    scores = -pair_distances(comparator, queries, gallery.vectors)  # (Nq, N) by a loop's order
    answers = gallery.identify(queries, threshold=None)  # shortlist 100 ≥ 20 items: exact
    best = scores.argmax(axis=1)
    assert [a.item_id for a in answers] == gallery.item_ids[best].tolist()
    np.testing.assert_allclose([a.distance for a in answers], -scores.max(axis=1), atol=1e-6)
    # A short list: the comparator's best among the 3 nearest by the embedding's distance.
    near = np.argsort(gallery.bundle.scorer.matrix(queries, gallery.vectors), axis=1, kind="stable")
    short = gallery.identify(queries, threshold=None, shortlist=3)
    for q, answer in enumerate(short):
        candidates = near[q, :3]
        assert answer.item_id == gallery.item_ids[candidates[scores[q, candidates].argmax()]]
    prototype = gallery.identify(queries, rule="prototype", threshold=None)
    assert all(a.item_id is None and a.candidate in gallery.class_names for a in prototype)
    with pytest.raises(ValueError, match="shortlist must be a positive integer"):
        gallery.identify(queries, shortlist=0)


def test_calibration_reads_minus_the_score(exported) -> None:
    _, run, bundle_dir, _ = exported
    gallery, _, _ = _enrolled(bundle_dir, run, per_class=3)
    record = gallery.calibrate(target_far=0.1, probes=len(gallery), seed=0)
    assert record["ranked_by"] == "comparator" and record["shortlist"] == SHORTLIST
    labels = gallery.classes
    minus = pair_distances(gallery.bundle.comparator, gallery.vectors, gallery.vectors)
    impostor = [minus[p][labels != labels[p]].min() for p in range(len(gallery))]
    assert record["distance"] == pytest.approx(
        threshold_at_far(np.asarray(impostor), 0.1), abs=1e-6
    )
    assert gallery.info()["ranked_by"] == "comparator"


def test_the_bundles_open_set_threshold_is_ranked_by_the_comparator(
    exported, tmp_path: Path
) -> None:
    _, run, bundle_dir, _ = exported
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    open_set = manifest["open_set"]
    assert open_set["ranked_by"] == "comparator" and open_set["shortlist"] == SHORTLIST
    # The runtime's own calibration on the same (test) classes gives the export's threshold.
    bundle = Bundle.load(bundle_dir, "torchscript")
    test = open_run(run).data.test
    gallery = Gallery(bundle)
    names = np.asarray(test.class_names)[test.labels.numpy()]
    gallery.enrol(
        bundle.embed(test.images.numpy()), names.tolist(), [f"i{i}" for i in range(len(names))]
    )
    seed = manifest["config"]["eval"]["seed"]
    mine = gallery.calibrate(target_far=0.01, probes=2000, seed=seed)
    assert mine["distance"] == pytest.approx(open_set["distance"], abs=1e-4)
    assert gallery.resolve_threshold("bundle") == open_set["distance"]
    # A comparator bundle exported before galleries ranked by it: its threshold is a distance's.
    old = tmp_path / "old"
    shutil.copytree(bundle_dir, old)
    del manifest["open_set"]["ranked_by"]
    (old / "bundle.json").write_text(json.dumps(manifest))
    stale = Gallery(Bundle.load(old, "onnx"))
    assert stale.resolve_threshold("auto") == float("inf")
    with pytest.raises(ValueError, match="no open-set threshold for ranking by its comparator"):
        stale.resolve_threshold("bundle")


def test_identify_command_takes_a_shortlist(exported, tmp_path: Path, capsys) -> None:
    _, run, bundle_dir, _ = exported
    test = open_run(run).data.test
    images, labels = test.images.numpy(), test.labels.numpy()
    from tests.bundle.conftest import write_class_folders

    folder = write_class_folders(tmp_path / "classes", images, labels, list(test.class_names), 2)
    query = next(folder.rglob("*.png"))
    gallery = tmp_path / "gallery"
    assert (
        main(
            ["gallery", "create", str(bundle_dir), str(folder), "-o", str(gallery), "--no-progress"]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["identify", str(gallery), str(query), "--json", "--shortlist", "4"]) == 0
    row = json.loads(capsys.readouterr().out)
    expected = Gallery.load(gallery).identify([query], shortlist=4)[0]
    assert (row["candidate"], row["item"]) == (expected.candidate, expected.item_id)
    assert row["distance"] == pytest.approx(expected.distance, abs=1e-6)
    assert main(["identify", str(gallery), str(query), "--shortlist", "0"]) == 2
    assert "error: shortlist must be a positive integer" in capsys.readouterr().err


def test_a_gallery_may_rank_by_the_distance_and_keeps_its_choice(
    exported, bundle_dir: Path, tmp_path: Path
) -> None:
    _, run, comparator_bundle, _ = exported
    ranked, queries, _ = _enrolled(comparator_bundle, run, per_class=2)
    plain = Gallery(ranked.bundle, rank_by="distance")
    plain.enrol(ranked.vectors, ranked.classes.tolist(), ranked.item_ids.tolist())
    assert plain.ranked_by == "distance"
    answers = plain.identify(queries, threshold=None)
    nearest = ranked.bundle.scorer.matrix(queries, plain.vectors).min(axis=1)
    np.testing.assert_allclose([a.distance for a in answers], nearest, rtol=1e-5, atol=1e-6)
    # The bundle's threshold was calibrated for its comparator: not for this gallery.
    assert plain.resolve_threshold("auto") == float("inf")
    record = plain.calibrate(target_far=0.1)
    assert record["ranked_by"] == "distance" and "shortlist" not in record
    assert Gallery.load(plain.save(tmp_path / "g")).ranked_by == "distance"
    # A calibration made under the other ranking is not used; "gallery" calibrates again.
    ranked.threshold = record
    assert ranked.resolve_threshold("gallery") != record["distance"]
    assert ranked.threshold["ranked_by"] == "comparator"
    with pytest.raises(ValueError, match="no learned comparator to rank by"):
        Gallery(Bundle.load(bundle_dir, "onnx"), rank_by="comparator")
    with pytest.raises(ValueError, match="rank_by must be one of auto, comparator, distance"):
        Gallery(ranked.bundle, rank_by="score")


def test_the_ranking_script_reports_both_rankings(exported, capsys) -> None:
    """scripts/comparator_gallery.py: a row per shot count with the figures of the API."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import comparator_gallery

    _, run, bundle_dir, _ = exported
    comparator_gallery.main([str(run), str(bundle_dir), "--shots", "1", "--trials", "2"])
    rows = capsys.readouterr().out.splitlines()[2:]  # after the header and its rule
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    bundle = Bundle.load(bundle_dir, "onnx")
    test = open_run(run).data.test
    names = np.asarray(test.class_names)[test.labels.numpy()]
    vectors = bundle.embed(test.images.numpy())
    for column, rank_by in ((2, "distance"), (3, "comparator")):
        trials = [
            comparator_gallery._trial(bundle, rank_by, vectors, names, 1, s)[0] for s in (0, 1)
        ]
        assert cells[column].startswith(f"{100 * np.mean(trials):.2f} ± ")
