"""Non-finite values and malformed views in the self-supervised models say what happened.

A NaN pixel used to surface as ``Self-adjoint eigen decomposition was not
successful`` (DirectPred's eigh, the effective-rank metric) after the weights
were NaN, or not at all (BatchNorm and ReLU turned it into a finite loss of a
collapsed model); views of two sizes were reported as "plain images ... has no
augment".
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcontrast as tfc
from tfcontrast.callbacks import NonFiniteError, TerminateOnNonFinite
from tfcontrast.linalg import symmetric_eigh, symmetric_eigvalsh
from tfcontrast.models import DirectPred, SimCLR
from tfcontrast.models.ssl import collapse
from tfcontrast.models.ssl.directpred import directpred_predictor


def linear_encoder(features: int = 8) -> keras.Model:
    """No ReLU, no BatchNorm: a NaN input reaches the representations as NaN."""
    inputs = keras.Input((16,))
    return keras.Model(inputs, keras.layers.Dense(features, kernel_initializer=keras.initializers.GlorotUniform(0))(inputs))


def views_with_a_nan(n: int = 64, bad_row: int = 40):
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=(n, 16)).astype("float32") for _ in range(2))
    a[bad_row, 3] = np.nan
    return tf.data.Dataset.from_tensor_slices((a, b)).batch(16)  # the NaN is in the 3rd batch (step 3)


def test_eigendecompositions_of_a_non_finite_matrix_are_nan_not_an_error():
    m = np.diag([3.0, 2.0, 1.0]).astype("float32")
    s, u = symmetric_eigh(m)
    np.testing.assert_allclose(s.numpy(), [1.0, 2.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(np.abs(u.numpy()), np.eye(3)[:, ::-1], atol=1e-6)
    for bad in (np.nan, np.inf):
        m_bad = m.copy()
        m_bad[1, 2] = bad
        s, u = symmetric_eigh(m_bad)
        assert np.isnan(s.numpy()).all() and np.isnan(u.numpy()).all()
        assert np.isnan(symmetric_eigvalsh(m_bad).numpy()).all()
        assert np.isnan(directpred_predictor(m_bad, eps=0.01).numpy()).all()
        jit = tf.function(symmetric_eigvalsh, jit_compile=True)(m_bad)  # the guard compiles
        assert np.isnan(jit.numpy()).all()
    h = np.ones((10, 4), "float32")
    h[2, 1] = np.nan
    assert np.isnan(float(collapse.effective_rank(h)))  # not 1.0 (p = 0 everywhere once sigma is NaN)


def test_directpred_with_a_nan_input_stops_naming_the_step_instead_of_failing_in_eigh():
    keras.utils.set_random_seed(0)
    model = DirectPred(linear_encoder(), projection_dim=8, hidden_dim=16)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    # without the guard this raised InvalidArgumentError: Self-adjoint eigen decomposition was not successful
    history = model.fit(views_with_a_nan(), epochs=1, verbose=0)
    assert np.isnan(history.history["loss"][0])

    keras.utils.set_random_seed(0)
    model = DirectPred(linear_encoder(), projection_dim=8, hidden_dim=16)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    messages = []
    stopper = TerminateOnNonFinite(out=messages.append)
    model.fit(views_with_a_nan(), epochs=3, verbose=0, callbacks=[stopper])
    assert stopper.step == 3 and len(messages) == 1
    assert messages[0].startswith("non-finite loss/representations at step 3 (epoch 1, batch 3): ")
    assert "loss nan" in messages[0] and "NaN or inf in the inputs" in messages[0]
    assert int(model.optimizer.iterations) == 3  # stopped there, not at the end of the epoch's 4 steps

    keras.utils.set_random_seed(0)
    model = DirectPred(linear_encoder(), projection_dim=8, hidden_dim=16)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    with pytest.raises(NonFiniteError, match=r"non-finite loss/representations at step 3 "):
        model.fit(views_with_a_nan(), epochs=3, verbose=0, callbacks=[TerminateOnNonFinite(raise_error=True)])


def test_a_nan_hidden_by_batchnorm_and_relu_is_found_in_the_weights():
    """The digits CNN turns a NaN pixel into NaN weights and a *finite* loss; the weight check sees it."""
    split = tfc.data.load_digits()
    x = split.x_train[:64].copy()
    x[5, 3, 3, 0] = np.nan
    views = tf.data.Dataset.from_tensor_slices((x, x[::-1].copy())).batch(32)
    keras.utils.set_random_seed(0)
    model = DirectPred(tfc.models.encoders.digits_cnn(features=8, width=4), projection_dim=8, hidden_dim=16)
    model.compile(optimizer="adam")
    stopper = TerminateOnNonFinite(out=lambda message: None)
    history = model.fit(views, epochs=2, verbose=0, callbacks=[stopper])
    assert stopper.step == 1
    assert stopper.message.startswith("non-finite weights after step 1 (epoch 1, batch 1): conv2d")
    assert len(history.history["loss"]) == 1  # stopped in the first epoch

    healthy = TerminateOnNonFinite(raise_error=True)
    keras.utils.set_random_seed(0)
    model = DirectPred(tfc.models.encoders.digits_cnn(features=8, width=4), projection_dim=8, hidden_dim=16)
    model.compile(optimizer="adam")
    model.fit(tf.data.Dataset.from_tensor_slices((split.x_train[:64], split.x_train[64:128])).batch(32), epochs=1,
              verbose=0, callbacks=[healthy])
    assert healthy.message is None and healthy.step is None


def test_views_of_two_sizes_are_named_as_such():
    inputs = keras.Input((None, None, 1))
    encoder = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs)))
    model = SimCLR(encoder, projection_dim=4)
    model.compile(optimizer="sgd")
    big, small = np.zeros((8, 8, 8, 1), "float32"), np.zeros((8, 6, 6, 1), "float32")
    with pytest.raises(ValueError, match=r"two views of different sizes, \[None, 8, 8, 1\] and \[None, 6, 6, 1\]"):
        model.fit(tf.data.Dataset.from_tensor_slices((big, small)).batch(4), epochs=1, verbose=0)
