"""Facts every self-supervised method must satisfy, checked for each one."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.models import BYOL, DirectPred, SimCLR, SimSiam

from .conftest import bn_encoder, fixed_views, mlp_encoder

METHODS = {
    "simclr": lambda enc, **kw: SimCLR(enc, projection_dim=16, temperature=0.2, **kw),
    "byol": lambda enc, **kw: BYOL(enc, projection_dim=16, hidden_dim=32, **kw),
    "directpred": lambda enc, **kw: DirectPred(enc, projection_dim=16, hidden_dim=32, **kw),
    "simsiam": lambda enc, **kw: SimSiam(enc, projection_dim=16, **kw),
}


def noisy_views(images):
    """In-step augmentation for tests: two draws of additive Gaussian noise."""
    return tuple(images + tf.random.normal(tf.shape(images), stddev=0.2) for _ in range(2))


@pytest.mark.parametrize("name", list(METHODS))
def test_a_few_dozen_steps_lower_the_loss(name, digits_flat):
    """The loss falls on held-out fixed views.

    BYOL and DirectPred regress a moving target and DirectPred's predictor
    starts near the identity (where online = target gives a low loss), so in
    40 steps their loss falls only with a target that follows the online
    network quickly (tau_base = 0.9; 0.99 gives DirectPred 0.97 -> 1.22 here).
    Without learning, the target (a copy of the online network) would not move.
    """
    keras.utils.set_random_seed(0)
    fast_target = {"tau_base": 0.9} if name in ("byol", "directpred") else {}
    model = METHODS[name](mlp_encoder(), augment=noisy_views, **fast_target)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    views = fixed_views(digits_flat[:128], seed=1)
    before = model.evaluate(*views, batch_size=64, verbose=0, return_dict=True)["loss"]
    model.fit(digits_flat, batch_size=64, epochs=10, verbose=0)  # 40 steps
    after = model.evaluate(*views, batch_size=64, verbose=0, return_dict=True)["loss"]
    # Loss ranges: NT-Xent >= 0 (log 2N at chance), BYOL 2 x [0, 4], SimSiam [-1, 1].
    assert after < before - 0.1, (before, after)


@pytest.mark.parametrize("name", list(METHODS))
def test_jit_compiled_step_matches_the_graph_step(name, digits_flat):
    v1, v2 = fixed_views(digits_flat[:32])
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(3)
        model = METHODS[name](mlp_encoder(seed=3), total_steps=10) if name in ("byol", "directpred") else METHODS[name](mlp_encoder(seed=3))
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
        logs = [model.train_on_batch(v1, v2, return_dict=True) for _ in range(2)]
        results.append((logs, [w.numpy() for w in model.encoder.weights]))
    (graph_logs, graph_w), (xla_logs, xla_w) = results
    for g, x in zip(graph_logs, xla_logs):
        assert np.isfinite(x["loss"]) and x["loss"] == pytest.approx(g["loss"], rel=1e-4, abs=1e-5)
    for g, x in zip(graph_w, xla_w):
        np.testing.assert_allclose(x, g, rtol=1e-3, atol=1e-5)


@pytest.fixture
def bfloat16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", list(METHODS))
def test_trains_under_mixed_bfloat16(name, digits_flat, bfloat16_policy):
    model = METHODS[name](bn_encoder())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(fixed_views(digits_flat[:64]), batch_size=32, epochs=2, verbose=0)
    assert all(np.isfinite(v) for values in history.history.values() for v in values)
    assert model.encoder.compute_dtype == "bfloat16"
    for w in model.weights:
        assert np.all(np.isfinite(w.numpy())), w.path
    if name == "directpred":
        assert model.correlation.dtype == "float32" and model.predictor.kernel.dtype == "float32"


@pytest.mark.parametrize("name", list(METHODS))
def test_fit_under_two_replicas_keeps_replicas_identical(name, two_replicas, digits_flat):
    with two_replicas.scope():
        model = METHODS[name](bn_encoder())
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(fixed_views(digits_flat[:64]), batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    for w in model.weights:
        copies = two_replicas.experimental_local_results(w.value)
        np.testing.assert_array_equal(copies[0].numpy(), copies[1].numpy(), err_msg=w.path)


def test_simclr_two_replicas_equal_one_replica_on_the_global_batch(two_replicas, digits_flat):
    v1, v2 = fixed_views(digits_flat[:16])
    single = SimCLR(mlp_encoder(seed=5), projection_dim=8, temperature=0.2)
    with two_replicas.scope():
        mirrored = SimCLR(mlp_encoder(seed=5), projection_dim=8, temperature=0.2)
    mirrored.set_weights(single.get_weights())
    results = []
    for model in (single, mirrored):
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        history = model.fit(tf.data.Dataset.from_tensors((v1, v2)), epochs=1, verbose=0)
        results.append((history.history["loss"][0], history.history["proj_std"][0], model.get_weights()))
    (loss_1, std_1, w_1), (loss_2, std_2, w_2) = results
    assert loss_2 == pytest.approx(loss_1, rel=1e-5)
    assert std_2 == pytest.approx(std_1, rel=1e-5)
    for a, b in zip(w_1, w_2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


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
