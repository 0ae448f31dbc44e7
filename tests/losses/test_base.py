"""The return contract every label loss shares (tfcontrast.losses.base), checked on each of them.

Every class derived from ``SimilarityLoss`` and exported by ``tfcontrast.losses``
must appear in ``EXAMPLES`` (a test fails otherwise), so a new loss is picked
up by all the contract tests below.
"""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses
from tfcontrast.losses import base

# kind of y_true -> a (y_true, y_pred) example for a batch of n rows
EXAMPLES = {
    losses.TripletLoss: ("class", lambda: losses.TripletLoss(margin=0.3, mining="semi-hard")),
    losses.TripletSemiHardLoss: ("class", lambda: losses.TripletSemiHardLoss(margin=0.4)),
    losses.TripletHardLoss: ("class", lambda: losses.TripletHardLoss(margin=0.6, soft=True)),
    losses.SupConLoss: ("class", lambda: losses.SupConLoss(temperature=0.2)),
    losses.MultiSimilarityLoss: ("class", lambda: losses.MultiSimilarityLoss(distance="l2", epsilon=0.5)),
    losses.CircleLoss: ("class", lambda: losses.CircleLoss(gamma=16.0)),
    losses.PNLoss: ("class", lambda: losses.PNLoss(distance="sql2", margin=0.5)),
    losses.SoftNearestNeighborLoss: ("class", lambda: losses.SoftNearestNeighborLoss(temperature=0.5)),
    losses.LiftedStructLoss: ("class", lambda: losses.LiftedStructLoss(margin=1.5)),
    losses.XBM: ("class", lambda: losses.XBM(losses.MultiSimilarityLoss(), memory_size=32)),
    losses.NpairsLoss: ("similarity", losses.NpairsLoss),
    losses.NpairsMultilabelLoss: ("multi_hot", losses.NpairsMultilabelLoss),
    losses.ContrastiveLoss: ("pair", lambda: losses.ContrastiveLoss(margin=1.5)),
}
BATCH_LOSSES = [cls for cls, (kind, _) in EXAMPLES.items() if kind != "pair"]


def example(kind, rng, n=8, dim=4):
    """(y_true, y_pred) of the kind, float32."""
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    if kind == "class":
        return np.arange(n) % 3, x
    if kind == "similarity":
        return np.arange(n) % 3, (x @ x.T * 3).astype(np.float32)
    if kind == "multi_hot":
        return multi_hot(rng, n), (x @ x.T * 3).astype(np.float32)
    return (np.arange(n) % 2).astype(np.float32), rng.uniform(0, 2, n).astype(np.float32)


def multi_hot(rng, n, classes=3):
    """Random 0/1 rows, each with at least one label."""
    rows = (rng.uniform(size=(n, classes)) < 0.4).astype(np.float32)
    rows[np.arange(n), np.arange(n) % classes] = 1.0
    return rows


def loss_ids(cls):
    return cls.__name__


def test_every_exported_label_loss_is_covered():
    exported = {obj for obj in vars(losses).values() if inspect.isclass(obj) and issubclass(obj, base.SimilarityLoss)}
    assert exported - {base.SimilarityLoss} == set(EXAMPLES)


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=loss_ids)
def test_class_equals_its_function_and_config_round_trips(cls, rng):
    kind, make = EXAMPLES[cls]
    loss = make()
    y, p = example(kind, rng)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is cls and restored.get_config() == loss.get_config()
    assert float(restored(y, p)) == pytest.approx(float(make()(y, p)), rel=1e-6)
    if cls.function is not None:
        want = cls.function(y, p, **loss.arguments)
        assert float(loss(y, p)) == pytest.approx(float(tf.reduce_mean(want)), rel=1e-6)


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=loss_ids)
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(cls, dtype, rng):
    kind, make = EXAMPLES[cls]
    y, p = example(kind, rng)
    half = tf.cast(p, dtype)
    value = make()(y, half)
    assert value.dtype == tf.float32 and np.isfinite(float(value))
    # the same as float32 inputs holding the half-precision values
    assert float(value) == pytest.approx(float(make()(y, tf.cast(half, tf.float32))), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("cls", BATCH_LOSSES, ids=loss_ids)
@pytest.mark.parametrize("fill", [0.0, 1.0], ids=["zero", "identical"])
def test_zero_or_identical_embeddings_have_finite_gradients(cls, fill, rng):
    kind, make = EXAMPLES[cls]
    y, _ = example(kind, rng)
    p = tf.Variable(tf.fill([8, 8] if kind != "class" else [8, 4], fill))
    with tf.GradientTape() as tape:
        value = make()(y, p)
    grad = tape.gradient(value, p)
    assert np.isfinite(float(value))
    assert grad is None or np.all(np.isfinite(grad.numpy()))


@pytest.mark.parametrize("cls", BATCH_LOSSES, ids=loss_ids)
def test_batch_losses_refuse_sample_weight(cls, rng):
    kind, make = EXAMPLES[cls]
    y, p = example(kind, rng)
    with pytest.raises(ValueError, match="sample_weight"):
        make()(y, p, sample_weight=np.ones(8))


@pytest.mark.parametrize("cls", [c for c in BATCH_LOSSES if c is not losses.XBM], ids=loss_ids)
def test_compiled_under_xla_value_and_gradient_match_eager(cls, rng):
    kind, make = EXAMPLES[cls]
    loss = make()
    y, p = example(kind, rng)

    def value_and_grad(p):
        with tf.GradientTape() as tape:
            tape.watch(p)
            value = loss(y, p)
        return value, tape.gradient(value, p)

    want_value, want_grad = value_and_grad(tf.constant(p))
    got_value, got_grad = tf.function(value_and_grad, jit_compile=True)(tf.constant(p))
    np.testing.assert_allclose(float(got_value), float(want_value), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_grad.numpy(), want_grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [c for c in BATCH_LOSSES if c is not losses.XBM], ids=loss_ids)
def test_two_replicas_equal_one_device_on_the_global_batch(cls, two_replicas, rng):
    """Value and gradient summed over 2 replicas (6 rows each) = one device holding the 12 rows."""
    kind, make = EXAMPLES[cls]
    loss = make()
    n = 12
    y, x = example("class", rng, n=n)
    if kind == "multi_hot":
        y = multi_hot(rng, n)
    with two_replicas.scope():
        w = tf.Variable(rng.normal(size=(4, 4)).astype(np.float32))

    def loss_and_grad(y, x, columns):
        with tf.GradientTape() as tape:
            z = x @ w
            if kind in ("similarity", "multi_hot"):
                # anchors of this replica x positives of the global batch, as the npairs docstring says
                z = tf.matmul(z, columns @ w, transpose_b=True)
            value = loss(y, z)
        return value, tape.gradient(value, w)

    want_value, want_grad = loss_and_grad(tf.constant(y), tf.constant(x), tf.constant(x))
    halves = two_replicas.experimental_distribute_values_from_function(
        lambda ctx: (y[6 * ctx.replica_id_in_sync_group:][:6], x[6 * ctx.replica_id_in_sync_group:][:6], x)
    )
    values, grads = two_replicas.run(tf.function(loss_and_grad), args=halves)
    np.testing.assert_allclose(float(two_replicas.reduce("SUM", values, axis=None)), float(want_value), rtol=1e-5)
    np.testing.assert_allclose(
        two_replicas.reduce("SUM", grads, axis=None).numpy(), want_grad.numpy(), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("cls", BATCH_LOSSES, ids=loss_ids)
def test_empty_batch_gives_zero_in_every_mode(cls):
    kind, make = EXAMPLES[cls]
    y = tf.zeros([0, 3]) if kind == "multi_hot" else tf.zeros([0], tf.int64)
    p = tf.zeros([0, 0]) if kind in ("similarity", "multi_hot") else tf.zeros([0, 16])
    for mode in ("eager", "graph", "xla"):
        loss = make()  # a fresh XBM memory per mode

        def value_and_grad(y, p):
            with tf.GradientTape() as tape:
                tape.watch(p)
                value = loss(y, p)
            return value, tape.gradient(value, p)

        call = value_and_grad if mode == "eager" else tf.function(value_and_grad, jit_compile=(mode == "xla"))
        value, grad = call(y, p)
        assert float(value) == 0.0 and (grad is None or grad.shape == p.shape), mode
