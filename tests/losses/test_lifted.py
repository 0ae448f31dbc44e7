"""LiftedStructLoss: TF Addons 0.23's lifted_struct_loss, against a loop and hand-derived values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.losses import reference
from tfcontrast import losses


@pytest.mark.parametrize("n, dim, classes", [(6, 3, 2), (12, 5, 4), (15, 2, 6)])
@pytest.mark.parametrize("margin", [0.0, 1.0, 2.5])
def test_matches_the_loop_reference(n, dim, classes, margin, rng):
    labels = rng.integers(0, classes, n)
    x = (rng.normal(size=(n, dim)) * 1.5).astype(np.float32)  # not normalised, as in the paper
    got = float(losses.LiftedStructLoss(margin)(labels, x))
    np.testing.assert_allclose(got, reference.lifted_struct(labels, x, margin=margin), rtol=1e-5, atol=1e-7)


def test_hand_derived():
    # 1-D points 0, 1 (class 0), 3, 4 (class 1), margin 1. N(0) = {3, 4}, N(1) = {2, 3}, ...
    # J_01 = log(e^{1-3} + e^{1-4} + e^{1-2} + e^{1-3}) + 1; J_23 = log(e^{1-3} + e^{1-2} + e^{1-4} + e^{1-3}) + 1
    j = math.log(2 * math.exp(-2) + math.exp(-3) + math.exp(-1)) + 1
    want = 0.5 * j**2  # every (ordered) positive pair has the same J: mean of J^2 / 2
    got = losses.lifted_struct_loss([0, 0, 1, 1], [[0.0], [1.0], [3.0], [4.0]], margin=1.0)
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(0.19627, abs=1e-5)


def test_far_negatives_give_zero_and_close_ones_a_positive_loss():
    far = [[0.0], [0.1], [50.0], [50.1]]
    assert float(losses.lifted_struct_loss([0, 0, 1, 1], far)) == 0.0
    assert float(losses.lifted_struct_loss([0, 1, 0, 1], far)) > 1.0


@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [4, 4, 4, 4]], ids=["no-positive", "one-class"])
def test_degenerate_batches_give_zero_where_tf_addons_gives_nan(labels, rng):
    x = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        value = losses.lifted_struct_loss(labels, x)
    assert float(value) == 0.0
    grad = tape.gradient(value, x)
    assert grad is None or np.all(grad.numpy() == 0.0)


def test_gradient_matches_finite_differences(rng):
    labels = np.array([0, 0, 1, 1, 1, 2])
    x = rng.normal(size=(6, 3))
    var = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = losses.lifted_struct_loss(labels, var, margin=2.0)
    grad = tape.gradient(value, var).numpy()
    eps, numeric = 1e-6, np.zeros_like(x)
    for i in range(6):
        for k in range(3):
            up, down = x.copy(), x.copy()
            up[i, k] += eps
            down[i, k] -= eps
            numeric[i, k] = (reference.lifted_struct(labels, up, margin=2.0) - reference.lifted_struct(labels, down, margin=2.0)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def test_bad_margin_is_named():
    with pytest.raises(ValueError, match="margin"):
        losses.LiftedStructLoss(margin=-1.0)
