"""Mixed precision: what the momentum methods and DirectPred must keep under mixed_float16.

(Every registered method trains under mixed_float16 and mixed_bfloat16 in
tests/models/test_registered_methods.py.) Under ``mixed_float16`` Keras wraps
the optimizer in a ``LossScaleOptimizer`` (``compile(auto_scale_loss=True)``)
and the two-view step multiplies the loss by the scale before differentiating;
the losses, the DirectPred statistics and its eigendecomposition stay float32.
Tiny models: float16 on CPU is emulated.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import ml_collections

from tfcontrast import registry
from tfcontrast.models import DirectPred
from tfcontrast.models.ssl.directpred import directpred_predictor
from tfcontrast.models.ssl.momentum import MomentumModel

from .conftest import bn_encoder, fixed_views

MOMENTUM_METHODS = [spec.name for spec in registry.methods if issubclass(spec.model, MomentumModel)]


def momentum_model(name: str, total_steps: int = 100, **kwargs):
    """The method as its registered builder makes it (MoCHi's mixing keys go to its mixing), on a BN encoder."""
    spec = registry.methods.get(name)
    config = ml_collections.ConfigDict({"model": {**spec.defaults(), **spec.example, **kwargs}, "train": {"steps": total_steps}})
    if spec.build is None:
        return spec.model(bn_encoder(), total_steps=total_steps, **{**spec.example, **kwargs})
    return spec.build(config, bn_encoder(), registry.BuildContext(input_shape=(64,)))


@pytest.fixture
def float16_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _check_directpred_state(model):
    """F and W_p are float32 and W_p is the closed form of F (float64 NumPy eigh)."""
    assert model.correlation.dtype == "float32" and model.predictor.kernel.dtype == "float32"
    f = model.correlation.numpy().astype(np.float64)
    s, u = np.linalg.eigh(0.5 * (f + f.T))
    s = np.maximum(s, 0.0)
    expected = (u * (np.sqrt(s / s.max()) + model.eps)) @ u.T
    np.testing.assert_allclose(model.predictor.kernel.numpy(), expected, atol=2e-4)


def test_directpred_state_stays_float32_and_closed_form_under_mixed_float16(digits_flat, float16_policy):
    """(Every registered method trains under mixed_float16: tests/models/test_registered_methods.py.)"""
    keras.utils.set_random_seed(0)
    model = DirectPred(bn_encoder(), projection_dim=16, hidden_dim=32, total_steps=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(fixed_views(digits_flat[:64]), batch_size=32, epochs=2, verbose=0)
    scale = float(model.optimizer.dynamic_scale.numpy())
    assert np.isfinite(scale) and scale >= 1.0
    _check_directpred_state(model)


def overflowing_step(model, digits_flat):
    """One step at a loss scale of 2^40 (see the test below); returns the trainable weights before it."""
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2.0**40)
    model.compile(optimizer=optimizer)
    v1, v2 = fixed_views(digits_flat[:32])
    before = [w.numpy() for w in model.trainable_weights]
    logs = model.train_on_batch(v1, v2, return_dict=True)
    assert np.isfinite(logs["loss"])
    return before


@pytest.mark.parametrize("name", MOMENTUM_METHODS)
def test_an_overflowing_step_is_skipped_and_the_scale_halved(name, digits_flat, float16_policy):
    """With a loss scale of 2^40 the float16 gradients overflow: Keras must skip the update.

    The scaled loss (about 2^40, finite in float32) drives the float16
    activation gradients past 65504: the LossScaleOptimizer sees non-finite
    gradients, leaves every trainable weight as it was, and halves the scale.
    The predictor rule and the EMA still run on the finite forward pass.
    """
    keras.utils.set_random_seed(1)
    model = momentum_model(name, total_steps=4)
    targets = [w.numpy() for w in model.target_encoder.weights]
    before = overflowing_step(model, digits_flat)
    for a, w in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(w.numpy(), a, err_msg=w.path)
    assert float(model.optimizer.dynamic_scale.numpy()) == 2.0**39
    assert int(model.step.numpy()) == 1
    # the EMA ran: the target's BatchNorm statistics moved with the finite forward pass
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(targets, model.target_encoder.weights))


def test_the_directpred_rule_runs_on_an_overflowing_step(digits_flat, float16_policy):
    keras.utils.set_random_seed(1)
    model = DirectPred(bn_encoder(), projection_dim=16, hidden_dim=32, total_steps=4)
    overflowing_step(model, digits_flat)
    assert np.all(np.isfinite(model.correlation.numpy())) and np.any(model.correlation.numpy() != 0)
    _check_directpred_state(model)


def test_directpred_predictor_is_computed_in_float32_from_half_inputs():
    f = np.diag([4.0, 1.0, 0.0]).astype(np.float16)
    kernel = directpred_predictor(tf.constant(f), eps=0.01)
    assert kernel.dtype == tf.float32
    # p = sqrt(s / max s) + eps = (1, 0.5, 0) + 0.01 on the eigenvectors e1, e2, e3
    np.testing.assert_allclose(np.diag(kernel.numpy()), [1.01, 0.51, 0.01], atol=1e-6)
