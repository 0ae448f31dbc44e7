import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses
from tfcontrast.models import DualEncoder
from tfcontrast.text import pair_batches

from .conftest import LENGTH, tiny_encoder


def pairs(n=8, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.integers(2, 60, size=(n, LENGTH)).astype(np.int32)
    p = rng.integers(2, 60, size=(n, LENGTH)).astype(np.int32)
    q[:, 6:] = 0
    return q, p


@pytest.mark.parametrize("towers", ["shared", "two"])
def test_loss_is_the_ranking_loss_of_the_towers_embeddings(towers):
    query_tower = tiny_encoder(dropout=0.0, seed=1)
    passage_tower = tiny_encoder(dropout=0.0, seed=2) if towers == "two" else None
    model = DualEncoder(query_tower, passage_tower, scale=10.0)
    q, p = pairs()
    want = losses.multiple_negatives_ranking_loss(
        query_tower(q), (passage_tower or query_tower)(p), scale=10.0
    )
    got, _ = model.batch_loss((q, p), training=False)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    if towers == "two":
        assert not np.allclose(model.embed_passages(p).numpy(), query_tower(p).numpy())


def test_fit_on_pairs_lowers_the_loss_and_trains_both_towers(token_ids):
    query_tower, passage_tower = tiny_encoder(seed=1), tiny_encoder(seed=2)
    model = DualEncoder(query_tower, passage_tower)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    # pair i: the first tokens of document i (query) and the same document from token 10 on (passage)
    passages = tf.ragged.constant([row[10:].numpy().tolist() for row in token_ids], dtype=tf.int32)
    stream = pair_batches(token_ids, passages, batch_size=16, sequence_length=LENGTH)
    before_q = [w.numpy() for w in query_tower.weights]
    before_p = [w.numpy() for w in passage_tower.weights]
    history = model.fit(stream, steps_per_epoch=10, epochs=4, verbose=0, shuffle=False).history["loss"]
    assert history[-1] < 0.5 * history[0], history
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(before_q, query_tower.weights))
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(before_p, passage_tower.weights))


def test_two_replicas_take_the_same_step_as_one_device(two_replicas):
    q, p = pairs(8)
    single = DualEncoder(tiny_encoder(dropout=0.0, seed=4))
    single.compile(optimizer=keras.optimizers.SGD(1.0))
    single.train_on_batch(q, p)
    with two_replicas.scope():
        replicated = DualEncoder(tiny_encoder(dropout=0.0, seed=4))
        replicated.compile(optimizer=keras.optimizers.SGD(1.0))
    replicated.fit(tf.data.Dataset.from_tensors((q, p)), epochs=1, verbose=0)
    for a, b in zip(single.encoder.weights, replicated.encoder.weights):
        np.testing.assert_allclose(np.asarray(b.value), a.numpy(), rtol=1e-4, atol=1e-5)


def test_keras_file_round_trip_with_two_towers(tmp_path):
    model = DualEncoder(tiny_encoder(seed=1), tiny_encoder(seed=2), scale=15.0)
    model.save(tmp_path / "dual.keras")
    restored = keras.models.load_model(tmp_path / "dual.keras")
    assert restored.scale == 15.0 and restored.passage_encoder is not None
    q, p = pairs()
    np.testing.assert_allclose(restored.embed_passages(p).numpy(), model.embed_passages(p).numpy(), rtol=1e-5)
    np.testing.assert_allclose(restored.predict(q, verbose=0), model.predict(q, verbose=0), rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        DualEncoder(tiny_encoder(), scale=-1.0)
    other = keras.Sequential([keras.Input((LENGTH,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="3-d embeddings but `encoder` outputs 16-d"):
        DualEncoder(tiny_encoder(), other)
