"""MilvusIndex against Milvus Lite in-process (no server, no network): agreement with faiss, upserts,
consistency, errors, secrets. The SearchIndex contract itself is in test_search_index.py."""

import json
import logging
import os
import pickle
import time

import numpy as np
import pytest

import tfcontrast as tfc
from tfcontrast.index import Index, MilvusIndex, NearestNeighbors, evaluate_retrieval
from tfcontrast.index.milvus_index import MAX_K, MilvusConnectionError, public_uri


def clustered(rng, n, dim=32, classes=10):
    centres = rng.normal(size=(classes, dim))
    labels = rng.integers(0, classes, n)
    return (centres[labels] + 0.8 * rng.normal(size=(n, dim))).astype(np.float32), labels


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_index_type_gives_the_faiss_exact_ids_and_metrics(metric, new_milvus, rng):
    x, y = clustered(rng, 1500)
    queries, query_labels = clustered(rng, 100)
    milvus = new_milvus(metric=metric, index_type="FLAT")
    milvus.add(x, labels=y, ids=np.arange(1500))
    milvus.flush()  # search the sealed, indexed segment, not only the in-memory buffer
    faiss_exact = Index(metric, "exact")
    faiss_exact.add(x, labels=y)
    got, want = milvus.search(queries, k=10), faiss_exact.search(queries, k=10)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.distances, want.distances, rtol=1e-5, atol=1e-5)
    ks = (1, 5, 10)
    assert evaluate_retrieval(milvus, queries, query_labels, ks) == pytest.approx(
        evaluate_retrieval(faiss_exact, queries, query_labels, ks), abs=1e-12
    )
    loo = dict(exclude_self=True, query_ids=np.arange(50))
    assert evaluate_retrieval(milvus, x[:50], y[:50], ks, **loo) == pytest.approx(
        evaluate_retrieval(faiss_exact, x[:50], y[:50], ks, **loo), abs=1e-12
    )


@pytest.mark.parametrize("index_type", ["AUTOINDEX", "HNSW", "IVF_FLAT"])
def test_approximate_index_types_recall_the_exact_neighbours(index_type, new_milvus, rng):
    x, y = clustered(rng, 3000)
    queries, _ = clustered(rng, 100)
    params = {"IVF_FLAT": ({"nlist": 16}, {"nprobe": 8}), "HNSW": ({"M": 16, "efConstruction": 100}, {"ef": 64})}
    index_params, search_params = params.get(index_type, (None, None))
    milvus = new_milvus(metric="cosine", index_type=index_type, index_params=index_params, search_params=search_params)
    milvus.add(x, labels=y)
    milvus.flush()
    exact = Index("cosine")
    exact.add(x, labels=y)
    found, truth = milvus.search(queries, k=10).ids, exact.search(queries, k=10).ids
    recall = np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.95, recall


def test_adding_the_same_ids_again_replaces_them(new_milvus, rng):
    idx = new_milvus(metric="euclidean")
    x = rng.normal(size=(20, 4)).astype(np.float32)
    idx.add(x, labels=np.zeros(20), ids=np.arange(20), data=["old"] * 20)
    moved = x[:5] + 100.0
    idx.add(moved, labels=np.ones(5), ids=np.arange(5), data=["new"] * 5)  # upsert: idempotent re-add
    assert len(idx) == 20
    res = idx.search(moved, k=1)
    assert res.ids[:, 0].tolist() == [0, 1, 2, 3, 4] and res.distances.max() < 1e-5
    assert res.labels[:, 0].tolist() == [1] * 5 and [row[0] for row in res.data] == ["new"] * 5
    assert idx.get_data([0, 19]) == ["new", "old"]


def test_a_search_right_after_add_sees_it_from_another_client(new_milvus, milvus_db, rng):
    writer = new_milvus(metric="cosine")
    reader = MilvusIndex(milvus_db, collection=writer.collection, metric="cosine")
    for step in range(3):
        x = rng.normal(size=(10, 8)).astype(np.float32)
        ids = writer.add(x, ids=np.arange(10) + 10 * step)
        assert reader.search(x, k=1).ids[:, 0].tolist() == ids.tolist()
        assert len(reader) == 10 * (step + 1)


def test_an_existing_collection_of_another_dim_metric_or_type_is_refused(new_milvus, milvus_db, rng):
    idx = new_milvus(metric="cosine", index_type="FLAT")
    idx.add(rng.normal(size=(3, 4)))
    name = idx.collection
    with pytest.raises(ValueError, match=r"holds 4-d vectors, but `dim` is 5"):
        MilvusIndex(milvus_db, name, "cosine", "FLAT", dim=5)
    with pytest.raises(ValueError, match=r"uses metric COSINE \('cosine'\), but `metric` is 'euclidean'"):
        MilvusIndex(milvus_db, name, "euclidean", "FLAT")
    with pytest.raises(ValueError, match="has index type FLAT, but `index_type` is 'HNSW'"):
        MilvusIndex(milvus_db, name, "cosine", "HNSW")
    same = MilvusIndex(milvus_db, name, "cosine", "FLAT")
    assert same.dim == 4 and len(same) == 3
    with pytest.raises(ValueError, match=r"`embeddings` must have dim 4"):
        same.add(np.ones((1, 5)))


def test_a_foreign_collection_is_refused(new_milvus, milvus_db):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(milvus_db)
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=4)
    params = client.prepare_index_params()
    params.add_index("embedding", index_type="FLAT", metric_type="L2")
    client.create_collection("someone_elses", schema=schema, index_params=params)
    try:
        with pytest.raises(ValueError, match="is not a tfcontrast collection"):
            MilvusIndex(milvus_db, "someone_elses", "euclidean", "FLAT")
    finally:
        client.drop_collection("someone_elses")


def test_bad_ids_payloads_and_arguments_are_refused(new_milvus, milvus_db, rng):
    idx = new_milvus()
    idx.add(rng.normal(size=(4, 3)), ids=[0, 1, 2, 3])
    for ids, match in (([-1], ">= 0"), ([7, 7], "duplicate"), ([1.5], "integers")):
        with pytest.raises(ValueError, match=match):
            idx.add(rng.normal(size=(len(ids), 3)), ids=ids)
    with pytest.raises(ValueError, match=r"not in the index: \[9\]"):
        idx.remove([1, 9])
    assert len(idx) == 4  # nothing removed
    with pytest.raises(ValueError, match=r"`data\[0\]` is larger than Milvus's 65536 bytes"):
        idx.add(rng.normal(size=(1, 3)), ids=[8], data=["x" * 70000])
    for kwargs, match in (
        (dict(uri="runs/milvus"), "ending in .db"),
        (dict(collection="bad-name"), "`collection`"),
        (dict(metric="sqeuclidean"), "`metric`"),
        (dict(consistency_level="Sometimes"), "`consistency_level`"),
        (dict(index_params=[1]), "`index_params`"),
    ):
        with pytest.raises(ValueError, match=match):
            MilvusIndex(**dict(dict(uri=milvus_db), **kwargs))


def test_k_beyond_milvus_limit_is_clamped_or_refused(new_milvus, rng):
    idx = new_milvus(metric="euclidean", index_type="FLAT")
    idx.add(rng.normal(size=(5, 2)))
    assert idx.search(rng.normal(size=(2, 2)), k=2**62).ids.shape == (2, 5)  # clamped to the 5 entries
    idx.add(rng.normal(size=(MAX_K, 2)))
    with pytest.raises(ValueError, match=f"Milvus returns at most {MAX_K}"):
        idx.search(rng.normal(size=(1, 2)), k=MAX_K + 1)
    assert idx.search(rng.normal(size=(1, 2)), k=MAX_K).ids.shape == (1, MAX_K)


def test_an_unreachable_server_fails_fast_with_a_clear_error():
    started = time.monotonic()
    with pytest.raises(MilvusConnectionError, match=r"Cannot connect to Milvus at 'http://127.0.0.1:1'"):
        MilvusIndex("http://127.0.0.1:1", timeout=5)
    assert time.monotonic() - started < 10
    assert issubclass(MilvusConnectionError, ConnectionError)


def test_the_token_is_never_shown_saved_or_logged(new_milvus, milvus_db, rng, tmp_path, caplog, capfd):
    secret = "s3cr3t-token-do-not-leak"
    caplog.set_level(logging.DEBUG)
    idx = new_milvus(token=secret)
    idx.add(rng.normal(size=(3, 4)), labels=[1, 2, 3])
    saved = idx.save(tmp_path / "saved")
    texts = [repr(idx), str(idx), repr(vars(idx)), json.dumps(tfc.index.load(saved, token=secret).metadata)]
    texts += [open(os.path.join(saved, name), encoding="utf-8", errors="replace").read() for name in os.listdir(saved)]
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(idx)
    for failing in (lambda: idx.search(np.ones((1, 5)), k=1), lambda: MilvusIndex(f"http://user:{secret}@127.0.0.1:1", token=secret)):
        with pytest.raises(Exception) as info:
            failing()
        texts.append(str(info.value))
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    assert all(secret not in text for text in texts)
    assert public_uri(f"http://user:{secret}@host:19530/?token={secret}") == "http://host:19530/"
    manifest = json.loads(open(os.path.join(saved, "manifest.json")).read())
    assert manifest["uri"] == milvus_db and "token" not in json.dumps(manifest)


def test_nearest_neighbors_and_export_accept_a_milvus_index(new_milvus, rng, tmp_path):
    import keras
    import tensorflow as tf

    x, y = clustered(rng, 60, dim=4)
    idx = new_milvus(metric="cosine", index_type="FLAT")
    idx.add(x, labels=y, ids=np.arange(60) * 2)
    layer = NearestNeighbors.from_index(idx, k=3)
    res = idx.search(x[:5], k=3)
    np.testing.assert_array_equal(layer(x[:5])["ids"].numpy(), res.ids)
    inputs = keras.Input((4,))
    encoder = keras.Model(inputs, keras.layers.Identity()(inputs))
    path = tfc.export.export_saved_model(encoder, tmp_path / "exp", index=idx, k=3)
    served = tf.saved_model.load(path).signatures["lookup"](inputs=tf.constant(x[:5]))
    np.testing.assert_array_equal(served["ids"].numpy(), res.ids)
