import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses
from tfcontrast.models import SimCSE
from tfcontrast.text import simcse_batches

from .conftest import LENGTH, tiny_encoder


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, 60, size=(n, LENGTH)).astype(np.int32)
    ids[:, 10:] = 0  # padding
    return ids


def test_the_two_dropout_views_differ_in_training_and_agree_at_inference():
    model = SimCSE(tiny_encoder(dropout=0.2))
    h, h_prime = (v.numpy() for v in model.dropout_views(batch(), training=True))
    assert h.shape == (8, 16) and not np.allclose(h, h_prime, atol=1e-4)
    a, b = (v.numpy() for v in model.dropout_views(batch(), training=False))
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_without_dropout_the_positive_logit_is_the_self_similarity():
    model = SimCSE(tiny_encoder(dropout=0.0), temperature=0.05)
    logits = model.view_logits(batch(), training=True).numpy()
    # the positive (diagonal) is cos(h_i, h_i) / t = 1 / t, the largest logit of its row
    np.testing.assert_allclose(np.diag(logits), 1 / 0.05, rtol=1e-5)
    assert np.all(logits <= np.diag(logits)[:, None] + 1e-3)
    # and the loss is the ranking loss of the embeddings against themselves, scale 1 / t
    h = model.encoder(batch(), training=False)
    want = float(losses.multiple_negatives_ranking_loss(h, h, scale=20.0))
    got, _ = model.batch_loss(batch(), training=True)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_loss_is_in_batch_cross_entropy_over_the_second_views():
    """An independent reference: softmax over cos(h_i, h'_j) / t, target j = i, from the model's own views."""
    model = SimCSE(tiny_encoder(dropout=0.0), temperature=0.1)
    ids = batch(6)
    h = model.encoder(ids).numpy().astype(np.float64)
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    want = 0.0
    for i in range(6):
        row = [np.dot(h[i], h[j]) / 0.1 for j in range(6)]
        want += np.log(sum(np.exp(r) for r in row)) - row[i]
    got, _ = model.batch_loss(ids, training=True)
    assert float(got) == pytest.approx(want / 6, rel=1e-4)


def test_fit_lowers_the_loss_and_compiles_with_xla(token_ids):
    """The encoder learns to embed a text the same way under two dropout masks (train loss 1.4 -> 0.25 here)."""
    model = SimCSE(tiny_encoder(dropout=0.3), temperature=0.05)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    stream = simcse_batches(token_ids, 16, LENGTH, seed=0)
    history = model.fit(stream, steps_per_epoch=5, epochs=8, verbose=0, shuffle=False).history
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < 0.4 * history["loss"][0], history["loss"]
    assert set(history) == {"loss", "emb_std", "erank"}


def test_jit_compiled_step_equals_the_graph_step():
    results = []
    for jit in (False, True):
        model = SimCSE(tiny_encoder(dropout=0.0, seed=3))
        model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=jit)
        logs = [model.train_on_batch(batch(), return_dict=True)["loss"] for _ in range(2)]
        results.append((logs, [w.numpy() for w in model.encoder.weights]))
    (graph_logs, graph_w), (xla_logs, xla_w) = results
    np.testing.assert_allclose(xla_logs, graph_logs, rtol=1e-4)
    for g, x in zip(graph_w, xla_w):
        np.testing.assert_allclose(x, g, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # ~40 s; DeCLUTR and the dual encoder keep a two-replica test in the default run
def test_two_replicas_take_the_same_step_as_one_device_on_the_global_batch(two_replicas):
    """Negatives gathered across replicas: the update equals the single-device update."""
    ids = batch(8)
    single = SimCSE(tiny_encoder(dropout=0.0, seed=5))
    single.compile(optimizer=keras.optimizers.SGD(1.0))
    single.train_on_batch(ids)
    with two_replicas.scope():
        replicated = SimCSE(tiny_encoder(dropout=0.0, seed=5))
        replicated.compile(optimizer=keras.optimizers.SGD(1.0))
    replicated.fit(tf.data.Dataset.from_tensors(ids), epochs=1, verbose=0)
    for a, b in zip(single.encoder.weights, replicated.encoder.weights):
        np.testing.assert_allclose(np.asarray(b.value), a.numpy(), rtol=1e-4, atol=1e-5)


def test_mixed_float16_trains_with_finite_weights(token_ids, float16_policy):
    model = SimCSE(tiny_encoder())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(simcse_batches(token_ids, 8, LENGTH), steps_per_epoch=3, verbose=0)
    assert model.encoder.compute_dtype == "float16"
    assert np.isfinite(history.history["loss"][0]) and all(np.all(np.isfinite(w.numpy())) for w in model.weights)


def test_keras_file_round_trip(tmp_path):
    model = SimCSE(tiny_encoder(), temperature=0.07)
    model.save(tmp_path / "simcse.keras")
    restored = keras.models.load_model(tmp_path / "simcse.keras")
    assert isinstance(restored, SimCSE) and restored.temperature == 0.07
    np.testing.assert_allclose(restored.predict(batch(), verbose=0), model.predict(batch(), verbose=0), rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        SimCSE(tiny_encoder(), temperature=0.0)
    with pytest.raises(ValueError, match="keras.Model"):
        SimCSE(lambda ids: ids)
