"""The SearchIndex contract: every index (each registered faiss backend, MilvusIndex) passes the same tests.

The list of indexes is built from the registries, so a new faiss backend is
tested by registering it; give it exact parameters for this tiny data in
``FAISS_PARAMS`` if its defaults are approximate.
"""

import threading

import numpy as np
import pytest

import tfcontrast as tfc
from tests.index import reference
from tfcontrast.index import Index, SearchIndex, backends
from tfcontrast.index.search_index import pad_columns

METRICS = ("cosine", "inner_product", "euclidean")
# Exact on the data below: hnsw explores more than the whole graph, ivf probes every list.
FAISS_PARAMS = {"hnsw": {"M": 8, "ef_construction": 64, "ef_search": 128}, "ivf": {"nlist": 4, "nprobe": 4}}
MILVUS_TYPES = ("FLAT", "AUTOINDEX")
KINDS = [f"faiss-{name}" for name in backends.BACKENDS] + [f"milvus-{t}" for t in MILVUS_TYPES]


@pytest.fixture
def make(new_milvus):
    def make_index(kind, metric="cosine"):
        family, variant = kind.split("-", 1)
        if family == "faiss":
            return Index(metric, variant, **FAISS_PARAMS.get(variant, {}))
        return new_milvus(metric=metric, index_type=variant)

    return make_index


def data(rng, n=40, dim=6):
    x = (rng.normal(size=(n, dim)) * 3).astype(np.float32)
    return x, rng.integers(0, 4, n), rng.permutation(1000)[:n]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("metric", METRICS)
def test_search_equals_a_numpy_brute_force(kind, metric, make, rng):
    x, labels, ids = data(rng)
    queries = (rng.normal(size=(5, 6)) * 3).astype(np.float32)
    idx = make(kind, metric)
    assert isinstance(idx, SearchIndex) and idx.metric == metric
    np.testing.assert_array_equal(idx.add(x, labels=labels, ids=ids), ids)
    assert len(idx) == 40 and idx.dim == 6
    res = idx.search(queries, k=7)
    want_ids, want_d, want_labels = reference.split(reference.knn(x, ids, labels, queries, 7, metric))
    assert res.ids.dtype == res.labels.dtype == np.int64 and res.distances.dtype == np.float32
    np.testing.assert_array_equal(res.ids, want_ids)
    np.testing.assert_array_equal(res.labels, want_labels)
    np.testing.assert_allclose(res.distances, want_d, rtol=1e-5, atol=2e-5)
    # k is clamped to the number of entries.
    everything = idx.search(queries[:2], k=10**9)
    assert everything.ids.shape == (2, 40) and sorted(everything.ids[0].tolist()) == sorted(ids.tolist())


@pytest.mark.parametrize("kind", KINDS)
def test_remove_entries_ids_labels_and_payloads(kind, make, rng):
    x, labels, ids = data(rng)
    payloads = [f"item-{i}" for i in range(37)] + [b"\x00\xffraw", {"tags": [1, 2.5, None]}, None]
    idx = make(kind, "euclidean")
    idx.add(x, labels=labels, ids=ids, data=payloads)
    removed = ids[:10]
    assert idx.remove(removed) == 10 and len(idx) == 30
    with pytest.raises(ValueError, match="not in the index"):
        idx.remove([ids[0]])
    with pytest.raises(ValueError, match="duplicate"):
        idx.add(x[:2], ids=[5000, 5000])
    got_ids, got_labels = idx.entries()
    order = np.argsort(got_ids)
    np.testing.assert_array_equal(got_ids[order], np.sort(ids[10:]))
    np.testing.assert_array_equal(got_labels[order], labels[10:][np.argsort(ids[10:])])
    res = idx.search(x, k=5)
    want_ids, _, want_labels = reference.split(reference.knn(x[10:], ids[10:], labels[10:], x, 5, "euclidean"))
    np.testing.assert_array_equal(res.ids, want_ids)
    np.testing.assert_array_equal(res.labels, want_labels)
    by_id = dict(zip(ids.tolist(), payloads))
    assert res.data == [[by_id[i] for i in row] for row in res.ids.tolist()]
    embeddings, arr_ids, arr_labels = idx.to_arrays()
    order = np.argsort(arr_ids)
    want = x[10:] if idx.metric != "cosine" else x[10:] / np.linalg.norm(x[10:], axis=1, keepdims=True)
    np.testing.assert_allclose(embeddings[order], want[np.argsort(ids[10:])], rtol=1e-6)
    np.testing.assert_array_equal(arr_labels[order], labels[10:][np.argsort(ids[10:])])


@pytest.mark.parametrize("kind", KINDS)
def test_default_ids_are_fresh_and_increasing(kind, make, rng):
    idx = make(kind)
    assert idx.add(rng.normal(size=(4, 4))).tolist() == [0, 1, 2, 3]
    assert idx.add(rng.normal(size=(2, 4)), ids=[10, 5]).tolist() == [10, 5]
    assert idx.add(rng.normal(size=(2, 4))).tolist() == [11, 12]
    assert len(idx) == 8


@pytest.mark.parametrize("kind", KINDS)
def test_save_then_load_or_reconnect_gives_the_same_answers(kind, make, rng, tmp_path):
    x, labels, ids = data(rng)
    idx = make(kind, "cosine")
    idx.add(x, labels=labels, ids=ids, data=[int(i) for i in ids])
    before = idx.search(x[:6], k=5)
    path = idx.save(tmp_path / "saved", metadata={"note": "contract"})
    loaded = tfc.index.load(path, token=None)  # token= is accepted whatever the kind
    assert type(loaded) is type(idx) and loaded.metric == "cosine" and len(loaded) == 40
    assert loaded.metadata == {"note": "contract"}
    after = loaded.search(x[:6], k=5)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.labels, before.labels)
    np.testing.assert_allclose(after.distances, before.distances, rtol=1e-6, atol=1e-6)
    assert after.data == before.data


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_searches_from_threads_agree_with_one_thread(kind, make, rng):
    x, labels, ids = data(rng, n=200, dim=8)
    idx = make(kind, "euclidean")
    idx.add(x, labels=labels, ids=ids)
    queries = [rng.normal(size=(4, 8)).astype(np.float32) for _ in range(6)]
    want = [idx.search(q, k=5).ids for q in queries]
    got, errors = [None] * 6, []

    def run(i):
        try:
            for _ in range(3):
                got[i] = idx.search(queries[i], k=5).ids
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_refused_with_the_argument_named(kind, make, rng):
    idx = make(kind)
    idx.add(rng.normal(size=(5, 3)), ids=np.arange(5))
    bad = np.ones((2, 3))
    for value, match in ((np.nan, "NaN or inf"), (1e39, "NaN or inf"), (2e19, "norm is too large")):
        bad[1, 0] = value
        with pytest.raises(ValueError, match=f"`embeddings` .*{match}"):
            idx.add(bad, ids=[10, 11])
        with pytest.raises(ValueError, match=f"`queries` .*{match}"):
            idx.search(bad, k=2)
    with pytest.raises(ValueError, match="`queries` must have dim 3"):
        idx.search(np.ones((1, 4)), k=1)
    with pytest.raises(ValueError, match="`k` must be an integer >= 1"):
        idx.search(np.ones((1, 3)), k=0)
    with pytest.raises(ValueError, match="`ids` must be >= 0"):
        idx.add(np.ones((1, 3)), ids=[-1])
    assert len(idx) == 5


def test_pad_columns_widens_with_padding(rng):
    idx = Index("euclidean")
    idx.add(rng.normal(size=(2, 3)), data=["a", "b"])
    res = pad_columns(idx.search(rng.normal(size=(1, 3)), k=5), 5)
    assert res.ids.shape == (1, 5) and res.ids[0, 2:].tolist() == [-1] * 3 and res.labels[0, 2:].tolist() == [-1] * 3
    assert np.all(np.isinf(res.distances[0, 2:])) and res.data[0][2:] == [None] * 3


def test_a_new_backend_is_one_registered_class(rng, tmp_path):
    class NumpyFlat(backends.FaissBackend):
        """A toy backend: exact search over vectors kept in a NumPy array (no faiss index)."""

        name = "numpy_flat"
        faiss_class = object
        keeps_removed = False

        def create(self):
            return np.zeros((0, self.dim), np.float32)

        def add(self, x, first_slot):
            self.index = np.concatenate([self.index, x])

        def search(self, q, k):
            scores = q @ self.index.T if not self.metric.squared_l2 else ((q[:, None] - self.index[None]) ** 2).sum(-1)
            order = np.argsort(-scores if not self.metric.squared_l2 else scores, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(scores, order, axis=1), order

        def remove(self, slots, alive):
            self.index = self.index[alive]
            return True

        def vectors(self, n_slots):
            return self.index

    backends.register_backend(NumpyFlat)
    try:
        x, labels, ids = data(rng)
        idx = Index("euclidean", "numpy_flat")
        idx.add(x, labels=labels, ids=ids)
        idx.remove(ids[:3])
        want_ids, want_d, _ = reference.split(reference.knn(x[3:], ids[3:], labels[3:], x[:4], 5, "euclidean"))
        res = idx.search(x[:4], k=5)
        np.testing.assert_array_equal(res.ids, want_ids)
        np.testing.assert_allclose(res.distances, want_d, rtol=1e-5)
    finally:
        del backends.BACKENDS["numpy_flat"]
