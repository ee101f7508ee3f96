"""FaissIndex: exact search against brute force, approximate kinds, files, GPU fallback, errors."""

import copy
import json

import faiss
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.distances import L1, L2, Cosine, SquaredL2, WeightedL1
from metriclab.evaluation import Embeddings, FaissIndex
from metriclab.evaluation import index as index_module
from metriclab.evaluation.index_files import sidecar_path


def learned_weighted_l1(dim: int, seed: int = 0) -> WeightedL1:
    distance = WeightedL1(dim)
    with torch.no_grad():
        distance.raw_weight.copy_(
            torch.randn(dim, generator=torch.Generator().manual_seed(seed)) * 2
        )
    return distance


def gallery_and_queries(n: int = 300, nq: int = 40, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)).astype(np.float32), rng.normal(size=(nq, dim)).astype(
        np.float32
    )


DISTANCES = [L1(), L2(), SquaredL2(), Cosine(), learned_weighted_l1(8)]


@pytest.mark.parametrize("distance", DISTANCES, ids=lambda d: d.name)
def test_flat_search_equals_brute_force(distance) -> None:
    gallery, queries = gallery_and_queries()
    found, ids = FaissIndex.build(gallery, distance).search(queries, k=5, chunk=7)
    # The reference: metriclab's own distance matrix in float64, sorted (an independent code path).
    truth = (
        copy.deepcopy(distance)
        .double()
        .matrix(torch.tensor(queries).double(), torch.tensor(gallery).double())
    )
    truth = truth.detach().numpy()
    np.testing.assert_array_equal(ids, np.argsort(truth, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(found, np.sort(truth, axis=1)[:, :5], rtol=1e-5, atol=1e-5)


def test_weighted_l1_search_equals_explicit_weighted_sum() -> None:
    gallery, queries = gallery_and_queries(n=500, nq=30, dim=16, seed=4)
    distance = learned_weighted_l1(16, seed=3)
    w = distance.weight.detach().double().numpy()
    found, ids = FaissIndex.build(gallery, distance).search(queries, k=4)
    brute = (np.abs(queries[:, None, :].astype(np.float64) - gallery[None]) * w).sum(-1)
    np.testing.assert_array_equal(ids, np.argsort(brute, axis=1)[:, :4])
    np.testing.assert_allclose(found, np.take_along_axis(brute, ids, axis=1), rtol=1e-5)


def test_search_chunking_does_not_change_results() -> None:
    gallery, queries = gallery_and_queries(nq=50)
    index = FaissIndex.build(gallery, Cosine())
    whole = index.search(queries, k=3, chunk=1000)
    pieces = index.search(queries, k=3, chunk=3)
    np.testing.assert_array_equal(whole[1], pieces[1])
    np.testing.assert_array_equal(whole[0], pieces[0])


@pytest.mark.parametrize(
    ("kind", "params"),
    [("flat", {}), ("ivf", {"nlist": 8, "nprobe": 3}), ("hnsw", {"m": 8, "ef_search": 16})],
)
@pytest.mark.parametrize("distance", [L2(), Cosine(), learned_weighted_l1(8)], ids=lambda d: d.name)
def test_every_kind_round_trips_save_and_load(tmp_path, kind, params, distance) -> None:
    gallery, queries = gallery_and_queries()
    labels = np.arange(len(gallery)) % 7
    ids = [f"item{i}" for i in range(len(gallery))]
    built = FaissIndex.build(gallery, distance, kind, seed=1, labels=labels, item_ids=ids, **params)
    path = tmp_path / "gallery.index"
    built.save(path)
    loaded = FaissIndex.load(path, distance=distance)
    for got, expected in zip(loaded.search(queries, k=6), built.search(queries, k=6), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert (loaded.kind, loaded.params, loaded.seed) == (kind, built.params, 1)
    np.testing.assert_array_equal(loaded.labels, labels)
    assert loaded.item_ids == tuple(ids)
    assert loaded.distance.name == distance.name
    # The file is a plain FAISS index: faiss.read_index opens and searches it directly.
    plain = faiss.read_index(str(path))
    assert plain.ntotal == len(gallery) and plain.d == gallery.shape[1]


def test_loaded_weighted_l1_keeps_learned_weights(tmp_path) -> None:
    distance = learned_weighted_l1(8, seed=5)
    gallery, queries = gallery_and_queries()
    FaissIndex.build(gallery, distance).save(tmp_path / "w.index")
    loaded = FaissIndex.load(tmp_path / "w.index")  # no expected distance: rebuilt from the sidecar
    assert isinstance(loaded.distance, WeightedL1)
    torch.testing.assert_close(loaded.distance.weight, distance.weight, rtol=0, atol=0)
    np.testing.assert_array_equal(
        loaded.search(queries, 3)[1], FaissIndex.build(gallery, distance).search(queries, 3)[1]
    )


def test_approximate_kinds_find_most_true_neighbours() -> None:
    gallery, queries = gallery_and_queries(n=2000, nq=50, dim=8)
    _, exact = FaissIndex.build(gallery, L2()).search(queries, k=10)
    for kind, params in (("ivf", {"nlist": 16, "nprobe": 16}), ("hnsw", {"ef_search": 128})):
        _, found = FaissIndex.build(gallery, L2(), kind, **params).search(queries, k=10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
        # nprobe = nlist visits every cell: IVF is then exact.
        assert recall == 1.0 if kind == "ivf" else recall > 0.9


def test_ivf_is_reproducible_with_a_seed() -> None:
    gallery, queries = gallery_and_queries(n=1000, nq=20)
    a = FaissIndex.build(gallery, L1(), "ivf", nlist=10, nprobe=1, seed=3).search(queries, 5)
    b = FaissIndex.build(gallery, L1(), "ivf", nlist=10, nprobe=1, seed=3).search(queries, 5)
    np.testing.assert_array_equal(a[1], b[1])


def test_missing_approximate_neighbours_are_minus_one_and_inf() -> None:
    # Two far-apart clusters, one cell each, one cell probed: a query sees only its own cluster.
    gallery = np.concatenate([np.zeros((40, 2)), np.full((40, 2), 100.0)]).astype(np.float32)
    gallery += np.random.default_rng(0).normal(scale=0.1, size=gallery.shape).astype(np.float32)
    index = FaissIndex.build(gallery, L2(), "ivf", nlist=2, nprobe=1)
    distances, ids = index.search(np.zeros((1, 2)), k=50)
    assert (ids[0, 40:] == -1).all() and np.isinf(distances[0, 40:]).all()
    assert np.isfinite(distances[0, :40]).all()


def test_gpu_is_used_when_faiss_reports_one(monkeypatch) -> None:
    class FakeGpuIndex:
        """Stands in for a GPU replica: counts the searches it serves, answers as the CPU copy."""

        def __init__(self, index: faiss.Index) -> None:
            self.index, self.searched = index, 0

        def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            self.searched += len(queries)
            return self.index.search(queries, k)

    replicas: list[FakeGpuIndex] = []

    def fake_to_gpus(index: faiss.Index) -> FakeGpuIndex:
        replicas.append(FakeGpuIndex(index))
        return replicas[-1]

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", fake_to_gpus)
    gallery, queries = gallery_and_queries()
    index = FaissIndex.build(gallery, L2())
    assert index._gpu is replicas[0]
    distances, ids = index.search(queries, 2)
    assert replicas[0].searched == len(queries)  # the queries went to the GPU copy
    # ... and its answers are the exact neighbours, as a brute-force search finds them.
    brute = np.sqrt(((queries[:, None, :] - gallery[None, :, :]) ** 2).sum(-1))
    np.testing.assert_array_equal(ids, np.argsort(brute, axis=1, kind="stable")[:, :2])
    np.testing.assert_allclose(distances, np.sort(brute, axis=1)[:, :2], rtol=1e-4)
    assert FaissIndex.build(gallery, L1(), "ivf", nlist=4)._gpu is None  # GPU IVF: L2 / IP only
    assert FaissIndex.build(gallery, L2(), "hnsw")._gpu is None


def test_gpu_failure_falls_back_to_cpu(monkeypatch) -> None:
    def broken(index):
        raise RuntimeError("no CUDA device")

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", broken)
    gallery, queries = gallery_and_queries()
    index = FaissIndex.build(gallery, L2())
    assert index._gpu is None and index.search(queries, 1)[1].shape == (40, 1)


def test_search_errors_name_the_culprit() -> None:
    index = FaissIndex.build(np.ones((4, 3), dtype=np.float32), L2())
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 4\] \(the gallery size\)"):
        index.search(np.ones((1, 3)), k=5)
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.ones((1, 3)), k=0)
    with pytest.raises(ValueError, match="dimension 2, but the index holds dimension 3"):
        index.search(np.ones((1, 2)), k=1)
    with pytest.raises(ValueError, match="query vectors contain NaN"):
        index.search(np.array([[0.0, np.nan, 1.0]]), k=1)
    with pytest.raises(ValueError, match="query vectors must be a non-empty"):
        index.search(np.ones((0, 3)), k=1)


def test_build_errors_name_the_culprit() -> None:
    good = np.ones((10, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="gallery vectors contain NaN"):
        FaissIndex.build(np.full((2, 3), np.nan), L2())
    with pytest.raises(ValueError, match="gallery vectors must be a non-empty"):
        FaissIndex.build(np.ones((0, 3)), L2())
    with pytest.raises(ValueError, match="kind must be one of flat, ivf, hnsw, got 'lsh'"):
        FaissIndex.build(good, L2(), "lsh")
    with pytest.raises(ValueError, match="nlist applies to kind='ivf' only"):
        FaissIndex.build(good, L2(), "flat", nlist=4)
    with pytest.raises(ValueError, match="m applies to kind='hnsw' only"):
        FaissIndex.build(good, L2(), "ivf", m=4)
    with pytest.raises(ValueError, match=r"nlist must lie in \[1, 10\]"):
        FaissIndex.build(good, L2(), "ivf", nlist=11)
    with pytest.raises(ValueError, match=r"nprobe must lie in \[1, nlist=2\]"):
        FaissIndex.build(good, L2(), "ivf", nlist=2, nprobe=3)
    with pytest.raises(ValueError, match="hnsw needs m ≥ 2"):
        FaissIndex.build(good, L2(), "hnsw", m=1)
    with pytest.raises(ValueError, match=r"labels must be \(10,\) integers"):
        FaissIndex.build(good, L2(), labels=np.zeros(9, dtype=np.int64))
    with pytest.raises(ValueError, match="item_ids must have one id per gallery vector"):
        FaissIndex.build(good, L2(), item_ids=["a"])
    with pytest.raises(ValueError, match="WeightedL1 was built for dimension 4"):
        FaissIndex.build(good, WeightedL1(4))


def test_default_ivf_parameters() -> None:
    params = index_module._kind_params(
        "ivf", 100_000, dict.fromkeys(("nlist", "nprobe", "m", "ef_search"))
    )
    assert params == {"nlist": 1265, "nprobe": 16}  # round(4·√100000) = 1265 ≤ 100000 // 39
    assert index_module._kind_params("ivf", 200, {"nlist": None, "nprobe": None})["nlist"] == 5


def test_truncated_index_file_is_refused(tmp_path) -> None:
    path = tmp_path / "g.index"
    FaissIndex.build(*gallery_and_queries()[:1], L2()).save(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        ValueError, match="g.index has .* bytes but its sidecar records .* truncated"
    ):
        FaissIndex.load(path)


def test_altered_index_file_is_refused(tmp_path) -> None:
    path = tmp_path / "g.index"
    FaissIndex.build(*gallery_and_queries()[:1], L2()).save(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the checksum"):
        FaissIndex.load(path)


def test_index_of_another_distance_is_refused(tmp_path) -> None:
    path = tmp_path / "g.index"
    gallery = gallery_and_queries()[0]
    FaissIndex.build(gallery, L1()).save(path)
    with pytest.raises(ValueError, match="built with distance 'l1', but 'cosine' was expected"):
        FaissIndex.load(path, distance=Cosine())
    FaissIndex.build(gallery, learned_weighted_l1(8, seed=1)).save(path)
    with pytest.raises(ValueError, match="other learned weighted_l1 parameters"):
        FaissIndex.load(path, distance=learned_weighted_l1(8, seed=2))


def test_missing_files_are_file_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="index file .*nothing.index does not exist"):
        FaissIndex.load(tmp_path / "nothing.index")
    path = tmp_path / "g.index"
    FaissIndex.build(gallery_and_queries()[0], L2()).save(path)
    sidecar_path(path).unlink()
    with pytest.raises(FileNotFoundError, match="sidecar .*g.index.json is missing"):
        FaissIndex.load(path)


def test_sidecar_records_distance_and_checksum(tmp_path) -> None:
    path = tmp_path / "g.index"
    FaissIndex.build(gallery_and_queries()[0], Cosine(), "hnsw").save(path)
    record = json.loads(sidecar_path(path).read_text())
    assert record["distance"] == {"name": "cosine", "eps": 1e-8} and record["kind"] == "hnsw"
    assert record["index_bytes"] == path.stat().st_size and len(record["index_sha256"]) == 64
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_hnsw_returns_k_neighbours_even_with_a_narrow_beam() -> None:
    gallery, queries = gallery_and_queries(n=500)
    _, ids = FaissIndex.build(gallery, L2(), "hnsw", m=8, ef_search=4).search(queries, k=50)
    assert (ids >= 0).all()


def test_build_from_embeddings_keeps_labels_and_ids() -> None:
    gallery, _ = gallery_and_queries(n=12)
    embeddings = Embeddings(
        torch.from_numpy(gallery), torch.arange(12) % 3, tuple(f"x{i}" for i in range(12))
    )
    index = FaissIndex.build(embeddings, Cosine())
    np.testing.assert_array_equal(index.labels, np.arange(12) % 3)
    assert index.item_ids == embeddings.item_ids
    _, ids = index.search(embeddings, k=1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(12))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    nq=st.integers(1, 10),
    dim=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    name=st.sampled_from(["l1", "l2", "squared_l2", "cosine"]),
)
def test_flat_distances_are_the_sorted_brute_force_distances(n, nq, dim, seed, name) -> None:
    rng = np.random.default_rng(seed)
    gallery, queries = rng.normal(size=(n, dim)), rng.normal(size=(nq, dim))
    distance = {"l1": L1(), "l2": L2(), "squared_l2": SquaredL2(), "cosine": Cosine()}[name]
    k = int(rng.integers(1, n + 1))
    found, ids = FaissIndex.build(gallery, distance).search(queries, k, chunk=3)
    truth = distance.matrix(torch.tensor(queries), torch.tensor(gallery)).numpy()
    # Ties may order ids differently; the distances, and each id's own distance, may not differ.
    np.testing.assert_allclose(found, np.sort(truth, axis=1)[:, :k], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(found, np.take_along_axis(truth, ids, axis=1), rtol=1e-4, atol=1e-4)
    assert all(len(set(row)) == k for row in ids.tolist())


def test_search_still_works_after_pml_patches_faiss() -> None:
    import faiss.contrib.torch_utils  # noqa: F401  (PML imports it; it rewraps Index.search)

    gallery, queries = gallery_and_queries(n=300)
    index = FaissIndex.build(gallery, L2(), "hnsw", m=8, ef_search=4)
    _, ids = index.search(torch.from_numpy(queries), k=40)
    assert (ids >= 0).all() and index.index.hnsw.efSearch == 4
