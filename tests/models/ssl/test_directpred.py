import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.models import DirectPred

from .conftest import fixed_views, mlp_encoder


def reference_directpred(f, eps):
    """W_p = U diag(sqrt(max(s, 0) / max s) + eps) U^T from numpy's eigh (float64)."""
    s, u = np.linalg.eigh(np.asarray(f, np.float64))
    p = np.sqrt(np.maximum(s, 0) / np.maximum(s, 0).max()) + eps
    return (u * p) @ u.T


def step_projections(model, v1, v2):
    """The online projections the next train step will compute (training-mode BN)."""
    both = tf.concat([v1, v2], axis=0)
    return model.projector(model.encoder(both, training=True), training=True).numpy().astype(np.float64)


@pytest.mark.parametrize("variant", ["directpred", "directcopy"])
def test_correlation_and_predictor_follow_the_closed_form(variant, digits_flat):
    v1, v2 = fixed_views(digits_flat[:32])
    model = DirectPred(mlp_encoder(), projection_dim=8, hidden_dim=16, rho=0.3, eps=0.01, variant=variant)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.train_on_batch(v1, v2)  # so that F_old != 0
    f_old = model.correlation.numpy().astype(np.float64)
    f = step_projections(model, v1, v2)
    model.train_on_batch(v1, v2)

    f_new = 0.3 * f_old + 0.7 * (f.T @ f) / len(f)
    np.testing.assert_allclose(model.correlation.numpy(), f_new, rtol=1e-4, atol=1e-6)
    if variant == "directpred":
        want = reference_directpred(model.correlation.numpy(), 0.01)
    else:
        corr = model.correlation.numpy().astype(np.float64)
        want = corr / np.sqrt((corr**2).sum()) + 0.01 * np.eye(8)
    # float32 eigenvectors of nearly equal eigenvalues carry ~5e-5 of rounding (entries are ~0.2)
    np.testing.assert_allclose(model.predictor.kernel.numpy(), want, rtol=1e-4, atol=1e-4)


def test_predictor_is_set_not_trained_and_refreshed_every_freq_steps(digits_flat):
    v1, v2 = fixed_views(digits_flat[:32])
    model = DirectPred(mlp_encoder(), projection_dim=8, hidden_dim=16, freq=3)
    assert id(model.predictor.kernel) not in {id(v) for v in model.trainable_variables}
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    kernels = []
    for _ in range(7):
        model.train_on_batch(v1, v2)
        kernels.append(model.predictor.kernel.numpy())
    # refreshed at steps 0, 3 and 6 (counted before the step), unchanged in between
    for k in (1, 2, 4, 5):
        np.testing.assert_array_equal(kernels[k], kernels[k - 1])
    for k in (3, 6):
        assert not np.allclose(kernels[k], kernels[k - 1])
    np.testing.assert_allclose(kernels[6], reference_directpred(model.correlation.numpy(), 0.01), rtol=1e-4, atol=1e-4)


def test_zero_correlation_gives_eps_identity():
    model = DirectPred(mlp_encoder(), projection_dim=4, hidden_dim=8, eps=0.05)
    np.testing.assert_allclose(model.predictor_from(tf.zeros([4, 4])).numpy(), 0.05 * np.eye(4), atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rho=1.0), "rho"),
        (dict(eps=-0.01), "eps"),
        (dict(freq=0), "freq"),
        (dict(variant="directcopies"), "variant"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DirectPred(mlp_encoder(), projection_dim=4, hidden_dim=8, **kwargs)
