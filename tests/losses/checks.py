"""Shared checks for the batch-statistic losses: finite differences and replicas == one device."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf


def hadamard(n: int) -> np.ndarray:
    """The ``n x n`` Sylvester Hadamard matrix (n a power of 2): +-1 entries, orthogonal columns."""
    h = np.array([[1.0]])
    while len(h) < n:
        h = np.block([[h, h], [h, -h]])
    return h


def correlated_views(rng, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Two float64 ``[n, d]`` views: per-dimension scales and offsets, the second a noisy copy of the first."""
    z_a = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    return z_a, z_a + 0.5 * rng.normal(size=(n, d))


def numerical_gradient(f, x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Central finite differences of the float64 scalar function ``f`` at ``x``."""
    x = np.array(x, np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = (f(plus) - f(minus)) / (2 * step)
    return grad


def assert_replicas_equal_one_device(strategy, loss_fn, inputs, rng, out_dim: int = 6, rtol: float = 1e-4):
    """R replicas holding B/R rows of every input give the loss and gradients of one device holding B.

    Each input ``[B, in]`` goes through one shared dense weight ``w`` (``x @
    w``) and ``loss_fn(*projections)`` gives the loss. Checked: the sum over
    replicas of the returned values equals the one-device loss; the gradients
    w.r.t. ``w`` summed over replicas (what the optimizer applies) equal the
    one-device gradient; each replica's gradient w.r.t. its own projections
    equals its rows of the one-device gradient (or is ``None`` on both).
    Returns the one-device loss.
    """
    inputs = [np.asarray(x, np.float32) for x in inputs]
    batch = inputs[0].shape[0]
    replicas = strategy.num_replicas_in_sync
    assert batch % replicas == 0
    with strategy.scope():
        w = tf.Variable(rng.normal(size=(inputs[0].shape[1], out_dim)).astype(np.float32))

    def value_and_grads(*xs):
        with tf.GradientTape() as tape:
            projections = [x @ w for x in xs]
            tape.watch(projections)
            value = loss_fn(*projections)
        grad_w, *grad_p = tape.gradient(value, [w] + projections)
        return value, grad_w, grad_p

    want_value, want_w, want_p = value_and_grads(*[tf.constant(x) for x in inputs])
    rows = batch // replicas

    def local_rows(ctx):
        start = rows * ctx.replica_id_in_sync_group
        return [x[start : start + rows] for x in inputs]

    per_replica = strategy.experimental_distribute_values_from_function(local_rows)
    values, grads_w, grads_p = strategy.run(tf.function(value_and_grads), args=per_replica)
    got = float(strategy.reduce("SUM", values, axis=None))
    np.testing.assert_allclose(got, float(want_value), rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(strategy.reduce("SUM", grads_w, axis=None).numpy(), want_w.numpy(), rtol=rtol, atol=1e-6)
    for k, want in enumerate(want_p):
        if want is None:  # an input the loss passes no gradient to (e.g. synthetic negatives)
            assert grads_p[k] is None
            continue
        local = [g.numpy() for g in strategy.experimental_local_results(grads_p[k])]
        np.testing.assert_allclose(np.concatenate(local), want.numpy(), rtol=rtol, atol=1e-6)
    return float(want_value)


def assert_config_round_trip(loss, *args, **kwargs):
    """Keras serialisation restores the class and config of ``loss``, and the same value on ``args``."""
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    assert float(restored(*args, **kwargs)) == pytest.approx(float(loss(*args, **kwargs)))
    return restored


def assert_half_precision_computes_in_float32(loss, reference, views, dtype, rtol: float = 1e-4):
    """``loss`` on ``views`` cast to ``dtype`` returns float32 and the float64 ``reference`` of the rounded inputs."""
    value = loss(*[tf.cast(v, dtype) for v in views])
    assert value.dtype == tf.float32
    rounded = [tf.cast(tf.cast(v, dtype), tf.float64).numpy() for v in views]
    np.testing.assert_allclose(float(value), reference(*rounded), rtol=rtol)
