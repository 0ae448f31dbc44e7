import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.index import reference
from tfcontrast.index import Index, NearestNeighbors

METRICS = ("cosine", "inner_product", "euclidean")


@pytest.mark.parametrize("metric", METRICS)
def test_matches_loop_reference_and_clamps_k_to_n(metric, rng):
    refs = (rng.normal(size=(9, 5)) * 4).astype(np.float32)
    labels = rng.integers(0, 3, 9)
    ids = np.arange(9) * 10 + 3
    queries = (rng.normal(size=(4, 5)) * 4).astype(np.float32)
    nn = NearestNeighbors(refs, labels=labels, k=12, metric=metric, ids=ids)  # k > n: 9 columns
    out = nn(queries)
    assert set(out) == {"ids", "distances", "labels"} and nn.width == 9
    assert out["ids"].dtype == tf.int64 and out["labels"].dtype == tf.int64 and out["distances"].dtype == tf.float32
    want_ids, want_d, want_labels = reference.split(reference.knn(refs, ids, labels, queries, 9, metric))
    np.testing.assert_array_equal(out["ids"].numpy(), want_ids)
    np.testing.assert_array_equal(out["labels"].numpy(), want_labels)
    np.testing.assert_allclose(out["distances"].numpy(), want_d, rtol=1e-5, atol=1e-5)
    assert nn.search(queries, k=10**9).ids.shape == (4, 9)


@pytest.mark.parametrize("metric", METRICS)
def test_agrees_with_the_exact_index_on_the_same_pairs(metric, rng):
    refs = (rng.normal(size=(200, 16)) * 10).astype(np.float32)
    queries = np.concatenate([refs[:10], (rng.normal(size=(10, 16)) * 10).astype(np.float32)])
    idx = Index(metric, "exact")
    idx.add(refs, labels=np.arange(200) % 4)
    nn = NearestNeighbors.from_index(idx, k=7)
    got, want = nn(queries), idx.search(queries, k=7)
    np.testing.assert_array_equal(got["ids"].numpy(), want.ids)
    np.testing.assert_array_equal(got["labels"].numpy(), want.labels)
    np.testing.assert_allclose(got["distances"].numpy(), want.distances, rtol=2e-6, atol=2e-5)
    if metric == "euclidean":  # self-matches: exactly 0, not the sqrt of a cancellation residue
        assert np.all(got["distances"].numpy()[:10, 0] == 0.0)


def test_compiles_under_xla_with_the_same_result(rng):
    refs = rng.normal(size=(50, 8)).astype(np.float32)
    queries = rng.normal(size=(6, 8)).astype(np.float32)
    for metric in METRICS:
        nn = NearestNeighbors(refs, labels=np.arange(50) % 5, k=60, metric=metric)
        eager = nn(queries)
        compiled = tf.function(nn, jit_compile=True)(tf.constant(queries))
        for key in ("ids", "labels"):
            np.testing.assert_array_equal(compiled[key].numpy(), eager[key].numpy())
        np.testing.assert_allclose(compiled["distances"].numpy(), eager["distances"].numpy(), rtol=1e-5, atol=1e-5)


def test_keras_file_round_trip_inside_a_model(rng, tmp_path):
    refs = rng.normal(size=(30, 4)).astype(np.float32)
    inputs = keras.Input((6,))
    embeddings = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, NearestNeighbors(refs, labels=np.arange(30) % 3, k=5, metric="euclidean", ids=np.arange(30) + 100)(embeddings))
    x = rng.normal(size=(7, 6)).astype(np.float32)
    before = model(x)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    after = loaded(x)
    for key in ("ids", "labels", "distances"):
        np.testing.assert_array_equal(after[key].numpy(), before[key].numpy())
    layer = loaded.layers[-1]
    assert isinstance(layer, NearestNeighbors) and (layer.k, layer.metric, layer.num_embeddings) == (5, "euclidean", 30)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 3
    np.testing.assert_array_equal(layer.reference_ids.numpy(), np.arange(30) + 100)


def test_from_index_carries_ids_labels_and_skips_removed_entries(rng):
    x = rng.normal(size=(20, 4)).astype(np.float32)
    idx = Index("cosine", "hnsw")
    idx.add(x, labels=np.arange(20) % 2, ids=np.arange(20) * 5)
    idx.remove([0, 5])
    nn = NearestNeighbors.from_index(idx, k=20)
    assert nn.num_embeddings == 18 and nn.metric == "cosine"
    out = nn(x[2:3])
    assert out["ids"].numpy()[0, 0] == 10 and out["labels"].numpy()[0, 0] == 0
    assert not np.isin(out["ids"].numpy(), [0, 5]).any() and out["ids"].shape == (1, 18)
    with pytest.raises(ValueError, match="empty"):
        NearestNeighbors.from_index(Index(), k=3)


def test_non_finite_queries_raise_eagerly_and_pad_in_graphs(rng):
    nn = NearestNeighbors(rng.normal(size=(10, 3)), k=2)
    q = np.ones((3, 3), np.float32)
    q[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"`queries` holds NaN or inf in 1 row\(s\), first rows \[1\]"):
        nn(q)
    out = tf.function(nn)(tf.constant(q))
    assert out["ids"].numpy()[1].tolist() == [-1, -1] and np.all(np.isinf(out["distances"].numpy()[1]))
    np.testing.assert_array_equal(out["ids"].numpy()[0], nn(q[:1])["ids"].numpy()[0])


def test_bad_arguments_are_refused(rng):
    refs = rng.normal(size=(5, 3))
    nn = NearestNeighbors(refs, k=2)
    with pytest.raises(ValueError, match=r"shape \[batch, 3\]"):
        nn(np.ones((2, 4), np.float32))
    bad_refs = refs.copy()
    bad_refs[0, 0] = np.inf
    for kwargs, match in (
        (dict(embeddings=bad_refs), "NaN or inf"),
        (dict(embeddings=np.zeros((0, 3))), "at least one"),
        (dict(embeddings=refs, k=0), "`k` must be an integer >= 1"),
        (dict(embeddings=refs, metric="sqeuclidean"), "`metric`"),
        (dict(embeddings=refs, labels=[1, 2]), "5 vectors"),
        (dict(embeddings=refs, ids=[1, 1, 2, 3, 4]), "duplicate"),
    ):
        with pytest.raises(ValueError, match=match):
            NearestNeighbors(**kwargs)


def test_search_method_and_mixed_precision_policy(rng):
    refs = rng.normal(size=(12, 4)).astype(np.float32)
    queries = rng.normal(size=(3, 4)).astype(np.float32)
    want = reference.split(reference.knn(refs, range(12), [-1] * 12, queries, 4, "cosine"))[0]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        nn = NearestNeighbors(refs, k=2)
        res = nn.search(queries, k=4)  # k overrides the layer's
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert nn.reference_embeddings.dtype == "float32" and nn(queries)["distances"].dtype == tf.float32
    np.testing.assert_array_equal(res.ids, want)
    assert res.labels.tolist() == [[-1] * 4] * 3


@pytest.mark.parametrize("metric", METRICS)
def test_two_stage_top_k_is_exact(metric, rng, monkeypatch):
    # n = 2000 >= 4 * k * 128 for k = 3: 15 groups of 128 and a tail of 80.
    refs = rng.normal(size=(2000, 8)).astype(np.float32)
    # Query 0's nearest are 5 then 256, 257 (one group); query 1's nearest is in the tail.
    # Steps of 0.2 along one direction keep their distances far apart (no float32 near-ties).
    direction = rng.normal(size=8).astype(np.float32)
    refs[256:259] = refs[5] + 0.2 * np.arange(1, 4, dtype=np.float32)[:, None] * direction / np.linalg.norm(direction)
    queries = refs[[5, 1990, 700]] + 0.01 * rng.normal(size=(3, 8)).astype(np.float32)
    nn = NearestNeighbors(refs, labels=np.arange(2000) % 9, k=3, metric=metric)
    grouped = tf.function(nn)(tf.constant(queries))
    grouped_xla = tf.function(nn, jit_compile=True)(tf.constant(queries))
    monkeypatch.setattr("tfcontrast.index.nearest_neighbors._GROUP", 10**9)  # one plain top_k
    plain = NearestNeighbors(refs, labels=np.arange(2000) % 9, k=3, metric=metric)(queries)
    d = np.array([[reference.distance(q, r, metric) for r in refs] for q in queries[:2]])
    want = np.argsort(d, axis=1, kind="stable")[:, :3]
    for out in (grouped, grouped_xla, plain):
        np.testing.assert_array_equal(out["ids"].numpy()[:2], want)
        np.testing.assert_array_equal(out["ids"].numpy(), plain["ids"].numpy())
        np.testing.assert_allclose(out["distances"].numpy(), plain["distances"].numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(out["labels"].numpy(), out["ids"].numpy() % 9)
    if metric != "inner_product":  # inner product favours long vectors, not the planted ones
        assert want[0].tolist() == [5, 256, 257]
        assert want[1, 0] == 1990
