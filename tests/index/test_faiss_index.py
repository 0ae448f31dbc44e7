import math

import numpy as np
import pytest

from tests.index import reference
from tfcontrast.index import Index

METRICS = ("cosine", "inner_product", "euclidean")
# Small enough that hnsw (ef_search >= n) and ivf (nprobe = nlist) are exact here.
EXACT_PARAMS = {"exact": {}, "hnsw": {"M": 8, "ef_construction": 64, "ef_search": 128}, "ivf": {"nlist": 4, "nprobe": 4}}


def make_index(metric, backend, **params):
    return Index(metric=metric, backend=backend, **(params or EXACT_PARAMS[backend]))


@pytest.mark.parametrize("backend", ("exact", "hnsw", "ivf"))
@pytest.mark.parametrize("metric", METRICS)
def test_search_matches_loop_reference(metric, backend, rng):
    refs = (rng.normal(size=(60, 6)) * 3).astype(np.float32)
    labels = rng.integers(0, 4, 60)
    ids = rng.permutation(1000)[:60]
    queries = (rng.normal(size=(7, 6)) * 3).astype(np.float32)
    idx = make_index(metric, backend)
    np.testing.assert_array_equal(idx.add(refs, labels=labels, ids=ids), ids)
    res = idx.search(queries, k=5)
    want_ids, want_d, want_labels = reference.split(reference.knn(refs, ids, labels, queries, 5, metric))
    assert res.ids.dtype == np.int64 and res.labels.dtype == np.int64 and res.distances.dtype == np.float32
    assert res.ids.shape == (7, 5) and res.data is None
    np.testing.assert_array_equal(res.ids, want_ids)
    np.testing.assert_array_equal(res.labels, want_labels)
    np.testing.assert_allclose(res.distances, want_d, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_distances_agree_across_backends_on_the_same_pairs(metric, rng):
    # Includes exact self-matches, where the expanded euclidean formula of
    # faiss's brute force would be off by ~1e-2 without the direct recompute.
    refs = (rng.normal(size=(80, 16)) * 10).astype(np.float32)
    results = {}
    for backend in ("exact", "hnsw", "ivf"):
        idx = make_index(metric, backend)
        idx.add(refs)
        results[backend] = idx.search(refs[:30], k=6)
    for backend in ("hnsw", "ivf"):
        np.testing.assert_array_equal(results[backend].ids, results["exact"].ids)
        np.testing.assert_allclose(results[backend].distances, results["exact"].distances, rtol=2e-6, atol=2e-5)
    if metric == "euclidean":
        assert np.all(results["exact"].distances[:, 0] == 0.0)


def test_hand_computed_distances():
    # cosine: q = (1, 0); (2, 0) -> 1 - 1 = 0, (0, 5) -> 1 - 0 = 1, (-1, 0) -> 1 + 1 = 2.
    idx = Index("cosine")
    idx.add([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0]])
    res = idx.search([1.0, 0.0], k=3)  # a single [dim] query is one row
    assert res.ids.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(res.distances, [[0.0, 1.0, 2.0]], atol=1e-7)
    # inner product: q = (2, 0); (1, 0) -> -2, (3, 0) -> -6: (3, 0) is nearer.
    idx = Index("inner_product")
    idx.add([[1.0, 0.0], [3.0, 0.0]])
    res = idx.search([[2.0, 0.0]], k=2)
    assert res.ids.tolist() == [[1, 0]] and res.distances.tolist() == [[-6.0, -2.0]]
    # euclidean (not squared): q = (3, 0); (0, 0) -> 3, (3, 4) -> 4.
    idx = Index("euclidean")
    idx.add([[0.0, 0.0], [3.0, 4.0]], labels=[7, 8])
    res = idx.search([[3.0, 0.0]], k=2)
    assert res.distances.tolist() == [[3.0, 4.0]] and res.labels.tolist() == [[7, 8]]


@pytest.mark.parametrize("backend", ("exact", "hnsw", "ivf"))
def test_k_is_clamped_to_the_number_of_entries(backend, rng):
    idx = make_index("cosine", backend, **({"nlist": 2, "nprobe": 2} if backend == "ivf" else {}))
    idx.add(rng.normal(size=(3, 4)), labels=[1, 2, 3], data=["a", "b", "c"])
    for k in (3, 5, 10**9, 2**62):
        res = idx.search(rng.normal(size=(2, 4)), k=k)
        assert res.ids.shape == res.labels.shape == res.distances.shape == (2, 3)
        assert sorted(res.ids[0].tolist()) == [0, 1, 2] and np.all(np.isfinite(res.distances))
        assert sorted(res.data[1]) == ["a", "b", "c"]


def test_approximate_backends_pad_what_they_do_not_find(rng):
    # Two far-apart clusters, one ivf list each; nprobe=1 visits only the query's list.
    centres = np.array([[100.0, 0.0], [-100.0, 0.0]])
    x = np.concatenate([centres[0] + rng.normal(size=(20, 2)), centres[1] + rng.normal(size=(20, 2))])
    idx = Index("euclidean", "ivf", nlist=2, nprobe=1)
    idx.add(x, data=list(range(40)))
    res = idx.search([[100.0, 0.0]], k=40)
    assert res.ids.shape == (1, 40)
    assert sorted(res.ids[0, :20].tolist()) == list(range(20))
    assert res.ids[0, 20:].tolist() == [-1] * 20 and res.labels[0, 20:].tolist() == [-1] * 20
    assert np.all(np.isinf(res.distances[0, 20:])) and res.data[0][20:] == [None] * 20


def test_empty_index_returns_no_columns_not_an_error(rng):
    idx = Index("euclidean")
    res = idx.search(rng.normal(size=(2, 3)), k=4)  # never added: dim unknown
    assert res.ids.shape == res.labels.shape == res.distances.shape == (2, 0)
    idx.add(rng.normal(size=(5, 3)))
    idx.remove(np.arange(5))
    assert len(idx) == 0 and idx.search(rng.normal(size=(1, 3)), k=2).ids.shape == (1, 0)
    with pytest.raises(ValueError, match="dim 3"):
        idx.search(rng.normal(size=(1, 4)), k=2)  # the dim is remembered


def test_default_ids_continue_after_the_largest_id(rng):
    idx = Index()
    assert idx.add(rng.normal(size=(3, 4))).tolist() == [0, 1, 2]
    assert idx.add(rng.normal(size=(2, 4)), ids=[10, 5]).tolist() == [10, 5]
    assert idx.add(rng.normal(size=(2, 4))).tolist() == [11, 12]
    idx.remove([12])
    assert idx.add(rng.normal(size=(1, 4))).tolist() == [13]  # removed ids are not reused
    assert len(idx) == 7 and idx.dim == 4


def test_payloads_follow_their_entries(rng):
    x = np.eye(4, dtype=np.float32)
    payloads = ["text", {"a": [1, 2.5, None]}, b"\x00\xffraw", None]
    idx = Index("cosine")
    idx.add(x, ids=[40, 41, 42, 43], data=payloads)
    res = idx.search(x, k=1)
    assert res.ids[:, 0].tolist() == [40, 41, 42, 43]
    assert [row[0] for row in res.data] == payloads
    assert idx.get_data([42, 40]) == [b"\x00\xffraw", "text"]
    idx.add(rng.normal(size=(1, 4)), ids=[50])  # no data: None
    assert idx.get_data([50]) == [None]
    with pytest.raises(ValueError, match="not in the index"):
        idx.get_data([99])


@pytest.mark.parametrize("backend", ("exact", "hnsw", "ivf"))
def test_remove_then_search_matches_reference_over_the_rest(backend, rng):
    refs = rng.normal(size=(80, 5)).astype(np.float32)
    ids = np.arange(100, 180)
    labels = ids % 7
    idx = make_index("euclidean", backend)
    idx.add(refs, labels=labels, ids=ids, data=[int(i) for i in ids])
    queries = rng.normal(size=(6, 5)).astype(np.float32)
    keep = np.ones(80, bool)
    # First a few removals (hnsw: tombstones), then most (hnsw/ivf: rebuild).
    for removed in (rng.choice(80, 10, replace=False), None):
        if removed is None:
            removed = np.flatnonzero(keep)[:50]
        assert idx.remove(ids[removed]) == len(removed)
        keep[removed] = False
        res = idx.search(queries, k=8)
        want = reference.knn(refs[keep], ids[keep], labels[keep], queries, 8, "euclidean")
        want_ids, want_d, want_labels = reference.split(want)
        np.testing.assert_array_equal(res.ids, want_ids)
        np.testing.assert_array_equal(res.labels, want_labels)
        np.testing.assert_allclose(res.distances, want_d, rtol=1e-5, atol=1e-6)
        assert [[d for d in row] for row in res.data] == [[int(i) if i >= 0 else None for i in row] for row in want_ids]
        assert len(idx) == keep.sum()
        got_ids, got_labels = idx.entries()
        np.testing.assert_array_equal(np.sort(got_ids), ids[keep])
        np.testing.assert_array_equal(got_labels, got_ids % 7)


def test_hnsw_tombstones_then_rebuild_and_readd(rng):
    refs = rng.normal(size=(40, 4)).astype(np.float32)
    idx = make_index("euclidean", "hnsw")
    idx.add(refs)
    idx.remove(np.arange(10))
    assert idx._store._selector is not None and len(idx._slot_ids) == 40  # tombstones, no rebuild yet
    assert not np.isin(idx.search(refs, k=30).ids, np.arange(10)).any()
    idx.add(refs[:1], ids=[0])  # a removed id may come back, as a new entry
    res = idx.search(refs[:1], k=2)
    assert res.ids[0, 0] == 0 and res.distances[0, 0] == 0.0 and res.ids[0, 1] != 0
    idx.remove(np.arange(10, 35))  # now 26 tombstones > 15 live: rebuilt
    assert idx._store._selector is None and len(idx._slot_ids) == len(idx) == 6
    np.testing.assert_array_equal(np.sort(idx.search(refs[:1], k=10).ids[0, :6]), [0, 35, 36, 37, 38, 39])


def test_to_arrays_returns_stored_vectors(rng):
    x = rng.normal(size=(30, 4)).astype(np.float32)
    for backend in ("exact", "hnsw", "ivf"):
        idx = make_index("cosine", backend)
        idx.add(x, labels=np.arange(30) % 3, ids=np.arange(30) * 2)
        idx.remove([0, 10])
        emb, ids, labels = idx.to_arrays()
        keep = ~np.isin(np.arange(30), [0, 5])
        np.testing.assert_array_equal(ids, (np.arange(30) * 2)[keep])
        np.testing.assert_array_equal(labels, (np.arange(30) % 3)[keep])
        np.testing.assert_allclose(emb, x[keep] / np.linalg.norm(x[keep], axis=1, keepdims=True), rtol=1e-6)


# ----------------------------------------------------------------- bad input


@pytest.fixture
def filled(rng):
    idx = Index("cosine")
    idx.add(rng.normal(size=(5, 3)), labels=[0, 1, 0, 1, 2])
    return idx


def test_wrong_dimension_is_refused(filled, rng):
    with pytest.raises(ValueError, match=r"`embeddings` must have dim 3"):
        filled.add(rng.normal(size=(2, 4)))
    with pytest.raises(ValueError, match=r"`queries` must have dim 3"):
        filled.search(rng.normal(size=(2, 4)), k=1)
    with pytest.raises(ValueError, match=r"shape \[n, dim\]"):
        filled.add(rng.normal(size=(2, 3, 1)))
    with pytest.raises(ValueError, match="dim"):
        Index(dim=3).add(rng.normal(size=(1, 2)))
    assert len(filled) == 5


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
def test_non_finite_values_are_refused(filled, bad):
    x = np.ones((3, 3))
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"`embeddings` holds NaN or inf .* first rows \[1\]"):
        filled.add(x)
    with pytest.raises(ValueError, match=r"`queries` holds NaN or inf"):
        filled.search(x, k=2)
    assert len(filled) == 5


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
def test_bad_k_is_refused(filled, k):
    with pytest.raises(ValueError, match="`k` must be an integer >= 1"):
        filled.search(np.ones((1, 3)), k=k)


def test_duplicate_ids_are_refused_and_nothing_is_added(filled, rng):
    with pytest.raises(ValueError, match=r"duplicate ids: \[7\]"):
        filled.add(rng.normal(size=(3, 3)), ids=[7, 8, 7])
    with pytest.raises(ValueError, match=r"already in the index: \[2\]"):
        filled.add(rng.normal(size=(2, 3)), ids=[9, 2])
    with pytest.raises(ValueError, match=">= 0"):
        filled.add(rng.normal(size=(1, 3)), ids=[-1])
    with pytest.raises(ValueError, match="integers"):
        filled.add(rng.normal(size=(1, 3)), ids=[1.5])
    assert len(filled) == 5 and filled.add(rng.normal(size=(1, 3)), ids=[9]).tolist() == [9]


def test_removing_unknown_ids_is_refused_and_nothing_is_removed(filled):
    with pytest.raises(ValueError, match=r"not in the index: \[99\]"):
        filled.remove([1, 99])
    with pytest.raises(ValueError, match="duplicate"):
        filled.remove([1, 1])
    assert len(filled) == 5
    assert filled.remove([]) == 0


def test_bad_labels_and_data_are_refused(filled, rng):
    x = rng.normal(size=(2, 3))
    for labels, match in (([1], "2 vectors"), ([1, -2], ">= -1"), ([0.5, 1], "integers"), ([[1, 2]], "1-D")):
        with pytest.raises(ValueError, match=match):
            filled.add(x, labels=labels)
    for data, match in (
        (["a"], "2 vectors"),
        (["a", object()], r"`data\[1\]` must be bytes or JSON"),
        ([float("nan"), 1], r"`data\[0\]`"),
        ([{"$bytes": "AA=="}, 1], "reserved"),
        ("ab", "list"),
    ):
        with pytest.raises(ValueError, match=match):
            filled.add(x, data=data)
    assert len(filled) == 5


def test_bad_constructor_arguments_are_refused():
    with pytest.raises(ValueError, match="`metric`"):
        Index(metric="sqeuclidean")
    with pytest.raises(ValueError, match=r"`backend` must be one of \('exact', 'hnsw', 'ivf'"):
        Index(backend="lsh")
    with pytest.raises(ValueError, match=r"Unknown parameter\(s\) \['nprobe'\]"):
        Index(backend="hnsw", nprobe=3)
    with pytest.raises(ValueError, match="`M`"):
        Index(backend="hnsw", M=0)


def test_ivf_needs_nlist_vectors_on_first_add(rng):
    idx = Index(backend="ivf", nlist=16)
    with pytest.raises(ValueError, match="at least nlist=16"):
        idx.add(rng.normal(size=(10, 4)))
    assert len(idx) == 0 and idx.dim is None  # a refused first add fixes nothing
    idx.add(rng.normal(size=(16, 4)))
    idx.add(rng.normal(size=(1, 4)))  # trained now: any size
    assert len(idx) == 17


def test_zero_vector_has_cosine_distance_one_like_the_distances_module():
    idx = Index("cosine")
    idx.add([[0.0, 0.0], [1.0, 1.0]])
    res = idx.search([[0.0, 0.0]], k=2)
    np.testing.assert_allclose(res.distances, [[1.0, 1.0]])
    assert math.isfinite(res.distances.sum())
