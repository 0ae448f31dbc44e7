import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses
from tfcontrast.models import DeCLUTR

from .conftest import LENGTH, tiny_encoder


def spans(anchors=6, positives=2, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(2, 60, size=(anchors, LENGTH)).astype(np.int32)
    p = rng.integers(2, 60, size=(anchors, positives, LENGTH)).astype(np.int32)
    a[:, 12:] = 0
    p[..., 8:] = 0
    return a, p


def test_loss_is_nt_xent_of_anchors_and_their_mean_positive():
    model = DeCLUTR(tiny_encoder(dropout=0.0), num_anchors=1, num_positives=2, temperature=0.1)
    a, p = spans()
    anchor_emb = model.encoder(a).numpy()
    positive_emb = model.encoder(p.reshape(12, LENGTH)).numpy().reshape(6, 2, -1).mean(axis=1)
    got_a, got_p = model.embed_pairs(a, p, training=False)
    np.testing.assert_allclose(got_a.numpy(), anchor_emb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_p.numpy(), positive_emb, rtol=1e-5, atol=1e-6)
    loss, _ = model.batch_loss((a, p), training=False)
    want = losses.nt_xent_loss(anchor_emb, positive_emb, temperature=0.1)
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


def test_fit_on_its_own_stream_lowers_the_loss(token_ids):
    model = DeCLUTR(tiny_encoder(), num_anchors=2, num_positives=2, temperature=0.1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    stream = model.batches(token_ids, batch_size=8, sequence_length=LENGTH, min_length=4, seed=0)
    anchors, positives = next(iter(stream))
    assert anchors.shape == (16, LENGTH) and positives.shape == (16, 2, LENGTH)
    fixed = next(iter(stream.skip(500)))
    before = model.evaluate(*fixed, verbose=0, return_dict=True)["loss"]
    model.fit(stream, steps_per_epoch=40, epochs=1, verbose=0)
    after = model.evaluate(*fixed, verbose=0, return_dict=True)["loss"]
    assert after < before - 0.3, (before, after)


def test_two_replicas_take_the_same_step_as_one_device_on_the_global_batch(two_replicas):
    a, p = spans(8, 2)
    single = DeCLUTR(tiny_encoder(dropout=0.0, seed=4), num_positives=2)
    single.compile(optimizer=keras.optimizers.SGD(1.0))
    single.train_on_batch(a, p)
    with two_replicas.scope():
        replicated = DeCLUTR(tiny_encoder(dropout=0.0, seed=4), num_positives=2)
        replicated.compile(optimizer=keras.optimizers.SGD(1.0))
    replicated.fit(tf.data.Dataset.from_tensors((a, p)), epochs=1, verbose=0)
    for x, y in zip(single.encoder.weights, replicated.encoder.weights):
        np.testing.assert_allclose(np.asarray(y.value), x.numpy(), rtol=1e-4, atol=1e-5)


def test_mixed_float16_trains_with_finite_weights(float16_policy):
    model = DeCLUTR(tiny_encoder(), num_positives=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(*spans(), batch_size=6, epochs=2, verbose=0)
    assert all(np.isfinite(v) for v in history.history["loss"])
    assert all(np.all(np.isfinite(w.numpy())) for w in model.weights)


def test_keras_file_round_trip(tmp_path):
    model = DeCLUTR(tiny_encoder(), num_anchors=2, num_positives=3, temperature=0.2)
    model.save(tmp_path / "declutr.keras")
    restored = keras.models.load_model(tmp_path / "declutr.keras")
    assert (restored.num_anchors, restored.num_positives, restored.temperature) == (2, 3, 0.2)
    a, _ = spans()
    np.testing.assert_allclose(restored.predict(a, verbose=0), model.predict(a, verbose=0), rtol=1e-5)


def test_batches_of_the_wrong_shape_are_refused():
    model = DeCLUTR(tiny_encoder(), num_positives=2)
    a, p = spans(positives=3)
    with pytest.raises(ValueError, match="num_positives=2"):
        model.batch_loss((a, p), training=False)
    with pytest.raises(ValueError, match="num_positives"):
        DeCLUTR(tiny_encoder(), num_positives=0)
