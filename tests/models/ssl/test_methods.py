"""Facts of the self-supervised methods beyond the shared contract.

The contract every registered method satisfies (loss falls, .keras round trip,
XLA, mixed float16 / bfloat16, two replicas = one device) is in
``tests/models/test_registered_methods.py``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.models import BYOL, DirectPred, SimCLR, SimSiam

from .conftest import bn_encoder, fixed_views, mlp_encoder


def noisy_views(images):
    """In-step augmentation for tests: two draws of additive Gaussian noise."""
    return tuple(images + tf.random.normal(tf.shape(images), stddev=0.2) for _ in range(2))


@pytest.fixture
def bfloat16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_directpred_statistics_stay_float32_under_mixed_bfloat16(digits_flat, bfloat16_policy):
    model = DirectPred(bn_encoder(), projection_dim=16, hidden_dim=32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(fixed_views(digits_flat[:64]), batch_size=32, epochs=1, verbose=0)
    assert model.correlation.dtype == "float32" and model.predictor.kernel.dtype == "float32"
    assert np.any(model.correlation.numpy() != 0)


class BYOLWithoutPredictor(BYOL):
    def predict_head(self, projections, training):
        return projections


def test_removing_the_predictor_collapses_while_byol_and_directpred_do_not(digits_flat):
    """BYOL without its predictor collapses (Grill et al. 2020, table 5a); the real ones do not.

    Projection std: 0 when collapsed, about 1/sqrt(16) = 0.25 when spread out.
    tau_base = 0 (target = online, as in Tian et al. 2021) makes the collapse
    fast: after 100 steps about 0.04 without the predictor, 0.23 with it.
    """
    stds = {}
    for name, cls in [("no-predictor", BYOLWithoutPredictor), ("byol", BYOL), ("directpred", DirectPred)]:
        keras.utils.set_random_seed(0)
        model = cls(mlp_encoder(), projection_dim=16, hidden_dim=64, tau_base=0.0, augment=noisy_views)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        history = model.fit(digits_flat, batch_size=64, epochs=25, verbose=0)
        stds[name] = history.history["proj_std"][-1]
    assert stds["byol"] > 0.15 and stds["directpred"] > 0.15, stds
    assert stds["no-predictor"] < 0.06 and stds["no-predictor"] < 0.3 * min(stds["byol"], stds["directpred"]), stds


def test_predict_returns_encoder_representations(digits_flat):
    model = SimCLR(mlp_encoder(features=12), projection_dim=8)
    out = model.predict(digits_flat[:10], verbose=0)
    np.testing.assert_allclose(out, model.encoder(digits_flat[:10]).numpy(), rtol=1e-5, atol=1e-6)
    assert out.shape == (10, 12)


def test_plain_images_without_augment_fail_with_a_clear_message(digits_flat):
    model = SimSiam(mlp_encoder(), projection_dim=8)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="no `augment`"):
        model.fit(digits_flat[:32], batch_size=16, epochs=1, verbose=0)


def test_flat_images_with_column_labels_are_augmented_not_taken_for_two_views(digits_flat):
    """(x [B, 64], y [B, 1]) has two rank-2 parts; the labels must not become the second view."""
    seen = []

    def record_and_augment(images):
        seen.append(images.shape[-1])
        return noisy_views(images)

    model = SimCLR(mlp_encoder(), projection_dim=8, augment=record_and_augment)
    model.compile(optimizer="sgd")
    labels = np.arange(32, dtype="float32").reshape(32, 1)
    history = model.fit(digits_flat[:32], labels, batch_size=16, epochs=1, verbose=0)
    assert seen and set(seen) == {64} and np.isfinite(history.history["loss"][0])


def test_augment_must_return_two_views(digits_flat):
    model = SimCLR(mlp_encoder(), projection_dim=8, augment=lambda images: images)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"\(view_1, view_2\) pair"):
        model.fit(digits_flat[:32], batch_size=16, epochs=1, verbose=0)


def test_encoder_must_output_rank_two():
    inputs = keras.Input((8, 8, 1))
    conv = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match=r"\[batch, features\].*\(None, 6, 6, 4\)"):
        SimCLR(conv)
    with pytest.raises(ValueError, match="keras.Model"):
        BYOL(lambda x: x)
