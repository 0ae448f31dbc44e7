import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses


def reference_cosine(p, z):
    dot = sum(float(a) * float(b) for a, b in zip(p, z))
    return dot / (max(np.sqrt(sum(float(a) ** 2 for a in p)), 1e-6) * max(np.sqrt(sum(float(b) ** 2 for b in z)), 1e-6))


@pytest.mark.parametrize("n, dim", [(1, 2), (9, 16)])
def test_match_reference(n, dim, rng):
    p = rng.normal(size=(n, dim)).astype(np.float32)
    z = rng.normal(size=(n, dim)).astype(np.float32)
    cos = np.array([reference_cosine(a, b) for a, b in zip(p, z)])
    np.testing.assert_allclose(losses.byol_loss(p, z).numpy(), 2 - 2 * cos, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses.negative_cosine_similarity(p, z).numpy(), -cos, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(losses.BYOLLoss()(p, z)), np.mean(2 - 2 * cos), rtol=1e-5)
    np.testing.assert_allclose(float(losses.SimSiamLoss()(p, z)), np.mean(-cos), rtol=1e-5, atol=1e-6)


def test_hand_derived():
    # orthogonal: cos 0 -> 2;  parallel: cos 1 -> 0;  opposite: cos -1 -> 4
    p = [[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]
    z = [[0.0, 3.0], [2.0, 2.0], [-5.0, 0.0]]
    np.testing.assert_allclose(losses.byol_loss(p, z).numpy(), [2.0, 0.0, 4.0], atol=1e-6)
    np.testing.assert_allclose(losses.negative_cosine_similarity(p, z).numpy(), [0.0, -1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("loss", [losses.BYOLLoss(), losses.SimSiamLoss()], ids=["byol", "simsiam"])
def test_target_side_receives_no_gradient(loss, rng):
    p = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
    z = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        value = loss(p, z)
    grad_p, grad_z = tape.gradient(value, [p, z])
    assert grad_z is None
    assert np.abs(grad_p.numpy()).sum() > 0


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_and_zero_vectors_are_finite(dtype):
    p = tf.Variable(tf.zeros([3, 4]))
    with tf.GradientTape() as tape:
        value = losses.byol_loss(tf.cast(p, dtype), tf.cast(tf.ones([3, 4]) * 1e4, dtype))
    assert value.dtype == tf.float32 and np.all(np.isfinite(value.numpy()))
    assert np.all(np.isfinite(tape.gradient(value, p).numpy()))


def test_compiles_under_xla(rng):
    p, z = rng.normal(size=(2, 5, 3)).astype(np.float32)
    f = tf.function(losses.byol_loss, jit_compile=True)
    np.testing.assert_allclose(f(p, z).numpy(), losses.byol_loss(p, z).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", [losses.byol_loss, losses.negative_cosine_similarity])
def test_bad_input_raises_value_error(fn):
    with pytest.raises(ValueError, match=r"`p` and `z`.*\(2, 3\).*\(2, 4\)"):
        fn(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"`p`.*rank 2"):
        fn(np.ones(3), np.ones(3))
