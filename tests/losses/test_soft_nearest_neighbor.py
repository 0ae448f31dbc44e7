"""SoftNearestNeighborLoss: TF Similarity's values, computed in log space (finite where it gives NaN)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.losses import reference
from tfcontrast import losses


@pytest.mark.parametrize("distance", ["sql2", "l2", "cosine"])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_matches_the_loop_reference(distance, temperature, rng):
    labels = rng.integers(0, 3, 10)
    labels[3] = 11  # no positive: contributes 0, counted in the mean
    x = rng.normal(size=(10, 4)).astype(np.float32)
    if distance == "cosine":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    got = float(losses.SoftNearestNeighborLoss(distance, temperature)(labels, x))
    want = reference.soft_nearest_neighbor(labels, x, distance=distance, temperature=temperature)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_hand_derived():
    # 1-D points 0, 1 (class 0) and 3 (class 1), sql2, T = 1:
    # anchor 0: e^-1 / (e^-1 + e^-9); anchor 1: e^-1 / (e^-1 + e^-4); anchor 2 has no positive. Mean over 3.
    r0 = math.exp(-1) / (math.exp(-1) + math.exp(-9))
    r1 = math.exp(-1) / (math.exp(-1) + math.exp(-4))
    want = (-math.log(1e-9 + r0) - math.log(1e-9 + r1)) / 3
    got = losses.soft_nearest_neighbor_loss([0, 0, 1], [[0.0], [1.0], [3.0]])
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_small_temperatures_are_finite_and_correct_where_tf_similarity_gives_nan():
    labels = np.array([0, 0, 1, 1])
    x = np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 0.0], [7.0, 0.0]], np.float32)  # sql2 distances >= 4
    t = 0.01
    # TF Similarity's computation in float32: every exp(-d / t) <= exp(-400) underflows: 0 / 0
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) / np.float32(t)
    negexp = np.exp(-d) * (1 - np.eye(4, dtype=np.float32))
    with np.errstate(invalid="ignore"):
        tf_similarity = -np.log(np.float32(1e-9) + (negexp * (labels[:, None] == labels[None])).sum(1) / negexp.sum(1))
    assert np.all(np.isnan(tf_similarity))
    got = float(losses.SoftNearestNeighborLoss(temperature=t)(labels, x))
    want = reference.soft_nearest_neighbor(labels, x, distance="sql2", temperature=t)  # float64 exps: finite
    assert np.isfinite(got) and got == pytest.approx(want, rel=1e-5)
    # and a gradient that is finite too
    var = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = losses.soft_nearest_neighbor_loss(labels, var, temperature=t)
    assert np.all(np.isfinite(tape.gradient(value, var).numpy()))


def test_the_eps_caps_each_anchor_at_minus_log_1e_9():
    # positives far, negatives close: log r_i -> -inf; -log(1e-9 + r_i) -> 20.72
    x = np.array([[0.0], [100.0], [0.1], [100.1]], np.float32)
    got = float(losses.soft_nearest_neighbor_loss([0, 0, 1, 1], x, temperature=0.1))
    assert got == pytest.approx(-math.log(1e-9), rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [(dict(temperature=0.0), "temperature"), (dict(distance="l1"), "distance")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        losses.SoftNearestNeighborLoss(**kwargs)
