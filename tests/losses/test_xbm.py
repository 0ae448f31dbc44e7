"""XBM: cross-batch memory around a label loss; values over steps, warm-up, checkpoints, strategies."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcontrast as tfc
from tests.losses import reference
from tfcontrast import losses
from tfcontrast.losses import base

# (loss, its loop reference on anchors x keys)
WRAPPED = {
    "triplet-hard": (lambda: losses.TripletLoss(margin=0.5, mining="hard"),
                     lambda ql, q, kl, k: reference.hard_triplet(ql, q, kl, k, margin=0.5)),
    "supcon": (lambda: losses.SupConLoss(temperature=0.5), lambda ql, q, kl, k: reference.supcon(ql, q, kl, k, 0.5)),
    "multisimilarity": (lambda: losses.MultiSimilarityLoss(epsilon=0.5, beta=10.0),
                        lambda ql, q, kl, k: reference.multisimilarity(ql, q, kl, k, epsilon=0.5, beta=10.0)),
    "circle": (lambda: losses.CircleLoss(gamma=8.0), lambda ql, q, kl, k: reference.circle(ql, q, kl, k, gamma=8.0)),
    "soft-nn": (lambda: losses.SoftNearestNeighborLoss(temperature=0.5),
                lambda ql, q, kl, k: reference.soft_nearest_neighbor(ql, q, kl, k, temperature=0.5)),
    "lifted": (lambda: losses.LiftedStructLoss(margin=1.0), lambda ql, q, kl, k: reference.lifted_struct(ql, q, kl, k)),
}


def batches(rng, steps=4, size=6, dim=4, classes=5):
    out = []
    for _ in range(steps):
        x = rng.normal(size=(size, dim))
        out.append((rng.integers(0, classes, size), (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)))
    return out


def simulate(data, memory_size, warmup_steps, wrapped_reference):
    """The XBM rule written out: candidates = [batch; memory] cut to memory_size; memory = candidates."""
    memory_labels, memory = [], []  # newest first
    values = []
    for step, (labels, x) in enumerate(data):
        key_labels = (list(labels) + memory_labels)[:max(memory_size, len(labels))]
        keys = (list(x) + memory)[:max(memory_size, len(labels))]
        values.append(wrapped_reference(list(labels), list(x), key_labels, keys))
        if step >= warmup_steps:
            memory_labels, memory = key_labels[:memory_size], keys[:memory_size]
    return values, memory_labels, memory


@pytest.mark.parametrize("name", list(WRAPPED))
def test_values_over_steps_match_the_written_out_memory_rule(name, rng):
    make, wrapped_reference = WRAPPED[name]
    data = batches(rng)
    xbm = losses.XBM(make(), memory_size=14)
    got = [float(xbm(labels, x)) for labels, x in data]
    want, memory_labels, memory = simulate(data, 14, 0, wrapped_reference)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the memory holds the 14 newest rows, newest first, and how many are filled
    assert int(xbm.memory.filled.numpy()) == 14 and int(xbm.memory.steps.numpy()) == 4
    np.testing.assert_array_equal(xbm.memory.labels.numpy(), memory_labels)
    np.testing.assert_array_equal(xbm.memory.embeddings.numpy(), np.array(memory, np.float32))


def test_first_step_equals_the_plain_loss_and_warm_up_leaves_the_memory_empty(rng):
    data = batches(rng, steps=5)
    make, wrapped_reference = WRAPPED["multisimilarity"]
    plain = make()
    xbm = losses.XBM(make(), memory_size=20, warmup_steps=3)
    for step, (labels, x) in enumerate(data):
        value = float(xbm(labels, x))
        if step <= 3:  # warm-up steps 0-2, then step 3 reads a memory that is still empty
            assert value == pytest.approx(float(plain(labels, x)), rel=1e-6)
            assert int(xbm.memory.filled.numpy()) == (6 if step == 3 else 0)
    want, _, _ = simulate(data, 20, 3, wrapped_reference)
    assert value == pytest.approx(want[-1], rel=1e-5) and value != pytest.approx(float(plain(*data[-1])), rel=1e-3)


def test_evaluation_phase_leaves_the_memory_unchanged(rng):
    (labels, x), (labels2, x2) = batches(rng, steps=2)
    xbm = losses.XBM(losses.TripletLoss(mining="hard"), memory_size=10)
    xbm(labels, x)
    before = xbm.memory.embeddings.numpy().copy()
    with base.training_phase(False):
        xbm(labels2, x2)
    np.testing.assert_array_equal(xbm.memory.embeddings.numpy(), before)
    assert int(xbm.memory.steps.numpy()) == 1


def test_memory_rows_carry_no_gradient_the_batch_does(rng):
    (labels, x), (labels2, x2) = batches(rng, steps=2)
    xbm = losses.XBM(losses.SupConLoss(), memory_size=12)
    xbm(labels, x)
    var = tf.Variable(x2)
    with tf.GradientTape() as tape:
        value = xbm(labels2, var)
    assert np.all(np.isfinite(tape.gradient(value, var).numpy()))
    assert not any(v.trainable for v in xbm.memory.weights)


def test_a_jit_compiled_step_matches_eager_steps(rng):
    data = batches(rng, steps=3)
    eager = losses.XBM(losses.TripletLoss(mining="semi-hard"), memory_size=9)
    compiled = losses.XBM(losses.TripletLoss(mining="semi-hard"), memory_size=9)
    compiled.build(4)
    step = tf.function(lambda a, b: compiled(a, b), jit_compile=True)
    for labels, x in data:
        assert float(step(tf.constant(labels), tf.constant(x))) == pytest.approx(float(eager(labels, x)), rel=1e-5)
    np.testing.assert_allclose(compiled.memory.embeddings.numpy(), eager.memory.embeddings.numpy())


def test_two_replicas_fill_the_memory_with_the_global_batch_and_equal_one_device(two_replicas, rng):
    data = batches(rng, steps=3, size=8)
    one = losses.XBM(losses.MultiSimilarityLoss(epsilon=0.5), memory_size=20)
    want = [float(one(labels, x)) for labels, x in data]
    with two_replicas.scope():
        two = losses.XBM(losses.MultiSimilarityLoss(epsilon=0.5), memory_size=20)
        two.build(4)
    step = tf.function(lambda a, b: two(a, b))
    got = []
    for labels, x in data:
        halves = two_replicas.experimental_distribute_values_from_function(
            lambda ctx, labels=labels, x=x: (labels[4 * ctx.replica_id_in_sync_group:][:4], x[4 * ctx.replica_id_in_sync_group:][:4])
        )
        got.append(float(two_replicas.reduce("SUM", two_replicas.run(step, args=halves), axis=None)))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for copy in two.memory.embeddings.value.values:  # every replica's copy: the global batches, newest first
        np.testing.assert_array_equal(copy.numpy(), one.memory.embeddings.numpy())


# ------------------------------------------------------------- state saved with the model


def encoder(seed=0):
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    return keras.Model(inputs, keras.layers.Dense(16, activation="relu", kernel_initializer=init)(inputs))


@pytest.fixture(scope="module")
def digits():
    split = tfc.data.load_digits()
    return split.x_train[:160].reshape(-1, 64), split.y_train[:160].astype(np.int64)


def embedding_model():
    keras.utils.set_random_seed(0)
    model = tfc.models.EmbeddingModel(encoder(), embedding_dim=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=losses.XBM(losses.TripletLoss(mining="hard"), 48, 1))
    return model


def memory_state(model):
    return [v.numpy().copy() for v in model.loss.memory.weights]


def test_save_weights_restores_the_memory_bit_exactly_and_training_resumes_identically(digits, tmp_path):
    x, y = digits
    model = embedding_model()
    model.fit(x[:64], y[:64], batch_size=16, epochs=1, shuffle=False, verbose=0)
    model.save_weights(tmp_path / "run.weights.h5")
    saved = memory_state(model)
    assert saved[2] == 48 and saved[3] == 4  # filled, steps
    continued = model.fit(x[64:], y[64:], batch_size=16, epochs=1, shuffle=False, verbose=0).history["loss"]

    restored = embedding_model()  # a fresh XBM: its memory is not built until the weights arrive
    assert not restored.loss.memory.built
    restored.optimizer.build(restored.trainable_variables)  # so that its slots load too
    restored.load_weights(tmp_path / "run.weights.h5")
    for a, b in zip(memory_state(restored), saved):
        np.testing.assert_array_equal(a, b)
    resumed = restored.fit(x[64:], y[64:], batch_size=16, epochs=1, shuffle=False, verbose=0).history["loss"]
    assert resumed == pytest.approx(continued, rel=1e-6)
    for a, b in zip(memory_state(restored), memory_state(model)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_keras_file_round_trip_keeps_the_loss_config_and_the_memory(digits, tmp_path):
    x, y = digits
    model = embedding_model()
    model.fit(x[:48], y[:48], batch_size=16, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, losses.XBM) and loaded.loss.get_config() == model.loss.get_config()
    for a, b in zip(memory_state(loaded), memory_state(model)):
        np.testing.assert_array_equal(a, b)


def test_evaluate_does_not_touch_the_memory(digits):
    x, y = digits
    model = embedding_model()
    model.fit(x[:32], y[:32], batch_size=16, epochs=1, shuffle=False, verbose=0)
    before = memory_state(model)
    model.evaluate(x[32:96], y[32:96], batch_size=16, verbose=0)
    for a, b in zip(memory_state(model), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "loss, error",
    [(losses.ContrastiveLoss(), TypeError), (losses.NpairsLoss(), TypeError), (keras.losses.MeanSquaredError(), TypeError)],
    ids=["contrastive", "npairs", "keras-mse"],
)
def test_losses_without_candidates_are_refused(loss, error):
    with pytest.raises(error, match="loss"):
        losses.XBM(loss, memory_size=10)


def test_one_memory_serves_one_embedding_width(rng):
    xbm = losses.XBM(losses.TripletLoss(), memory_size=8)
    xbm([0, 0, 1, 1], rng.normal(size=(4, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="width 3.*width 5"):
        xbm([0, 0, 1, 1], rng.normal(size=(4, 5)).astype(np.float32))


def test_xbm_of_xbm_and_bad_sizes_are_refused():
    inner = losses.XBM(losses.TripletLoss(), 10)
    with pytest.raises(TypeError):
        losses.XBM(inner, memory_size=10)
    with pytest.raises(ValueError, match="memory_size"):
        losses.XBM(losses.TripletLoss(), memory_size=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        losses.XBM(losses.TripletLoss(), memory_size=4, warmup_steps=-1)
