import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses


def reference_contrastive(y, d, margin):
    """Hadsell et al. 2006 / tfa.losses.ContrastiveLoss, one pair at a time (float64)."""
    total = 0.0
    for yi, di in zip(y, d):
        yi, di = float(yi), float(di)
        total += yi * di**2 + (1 - yi) * max(margin - di, 0.0) ** 2
    return total / len(y)


@pytest.mark.parametrize("n", [1, 7, 50])
@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0, 3.0])
def test_matches_reference(n, margin, rng):
    y = rng.integers(0, 2, size=n).astype(np.float32)
    d = rng.uniform(0, 2, size=n).astype(np.float32)
    got = float(losses.ContrastiveLoss(margin)(y, d))
    np.testing.assert_allclose(got, reference_contrastive(y, d, margin), rtol=1e-5, atol=1e-7)


def test_hand_derived():
    # similar at 0.5: 0.25; dissimilar at 0.5: (1 - 0.5)^2 = 0.25; dissimilar at 2: 0 -> mean 0.5/3
    assert float(losses.ContrastiveLoss(1.0)([1.0, 0.0, 0.0], [0.5, 0.5, 2.0])) == pytest.approx(0.5 / 3)
    np.testing.assert_allclose(losses.contrastive_loss([1.0, 0.0, 0.0], [0.5, 0.5, 2.0]).numpy(), [0.25, 0.25, 0.0])


def test_column_shapes_and_sample_weight():
    loss = losses.ContrastiveLoss(1.0)
    column = float(loss(np.array([[1.0], [0.0]]), np.array([[0.5], [0.5]])))
    assert column == pytest.approx(0.25)
    # sample weights as in tfa (Keras reduction): (1 * 0.25 + 3 * 0.25) / 2
    assert float(loss([1.0, 0.0], [0.5, 0.5], sample_weight=[1.0, 3.0])) == pytest.approx(0.5)


def test_gradient_pulls_similar_and_pushes_dissimilar():
    d = tf.Variable([0.5, 0.5, 2.0])
    with tf.GradientTape() as tape:
        value = losses.ContrastiveLoss(1.0)([1.0, 0.0, 0.0], d)
    # d/dd of y d^2 = 2d (=1), of (m - d)^2 = -2(m - d) (=-1), beyond the margin 0; mean over 3.
    np.testing.assert_allclose(tape.gradient(value, d).numpy(), [1 / 3, -1 / 3, 0.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision(dtype):
    value = losses.contrastive_loss(tf.constant([1, 0], dtype), tf.constant([200.0, 0.1], dtype))
    assert value.dtype == tf.float32 and np.all(np.isfinite(value.numpy()))
    assert float(value[0]) == pytest.approx(40000.0)


def test_compiles_under_xla():
    f = tf.function(lambda y, d: losses.contrastive_loss(y, d, 0.7), jit_compile=True)
    np.testing.assert_allclose(f(tf.constant([1.0, 0.0]), tf.constant([0.3, 0.2])).numpy(), [0.09, 0.25], rtol=1e-6)


def test_trains_a_model_with_compile_and_fit(rng):
    # distance = |w| * |x1 - x2|, a one-parameter "network": similar pairs pull w down.
    x = rng.normal(size=(64, 1)).astype(np.float32)
    inputs = keras.Input([1])
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=losses.ContrastiveLoss(margin=1.0))
    history = model.fit(np.abs(x), np.ones(64, np.float32), epochs=3, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.ContrastiveLoss(margin=-1.0), "margin"),
        (lambda: losses.contrastive_loss([1.0, 0.0], [0.5, 0.5, 0.5]), r"`y_true` and `y_pred`.*\(2,\).*\(3,\)"),
        (lambda: losses.contrastive_loss(np.ones((2, 2)), np.ones((2, 2))), r"`y_pred`.*one value per pair.*\(2, 2\)"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
