import math

import numpy as np
import pytest
import tensorflow as tf

from tests.losses.checks import (
    assert_config_round_trip,
    assert_half_precision_computes_in_float32,
    assert_replicas_equal_one_device,
    correlated_views,
    hadamard,
    numerical_gradient,
)
from tfcontrast import losses

# ---------------------------------------------------------------- reference
# Bardes, Ponce and LeCun 2022 (the authors' code) from the definition, explicit loops in float64.


def reference_terms(z_a, z_b, epsilon=1e-4):
    n, d = len(z_a), len(z_a[0])
    invariance = sum((z_a[i][j] - z_b[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)

    def variance_and_covariance(z):
        means = [sum(z[i][j] for i in range(n)) / n for j in range(d)]
        cov = [[sum((z[k][i] - means[i]) * (z[k][j] - means[j]) for k in range(n)) / (n - 1) for j in range(d)]
               for i in range(d)]
        hinge = sum(max(0.0, 1.0 - math.sqrt(cov[j][j] + epsilon)) for j in range(d)) / d
        off = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
        return hinge, off

    var_a, cov_a = variance_and_covariance(z_a)
    var_b, cov_b = variance_and_covariance(z_b)
    return invariance, (var_a + var_b) / 2, cov_a + cov_b


def reference_vicreg(z_a, z_b, sim=25.0, var=25.0, cov=1.0, epsilon=1e-4):
    inv_term, var_term, cov_term = reference_terms(z_a, z_b, epsilon)
    return sim * inv_term + var * var_term + cov * cov_term


def small_views(rng, n, d):
    """Views whose dimensions have standard deviations on both sides of 1 (so the hinge is active for some)."""
    z_a, z_b = correlated_views(rng, n, d)
    return 0.6 * z_a, 0.6 * z_b


@pytest.mark.parametrize("n, d", [(2, 1), (7, 3), (16, 8), (33, 5)])
@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (2.0, 3.0, 0.5)])
def test_matches_loop_reference(n, d, weights, rng):
    z_a, z_b = small_views(rng, n, d)
    want = reference_vicreg(z_a, z_b, *weights)
    got = losses.VICRegLoss(*weights)(z_a.astype(np.float32), z_b.astype(np.float32))
    assert got.dtype == tf.float32
    np.testing.assert_allclose(float(got), want, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(float(losses.vicreg_loss(z_a, z_b, *weights)), want, rtol=1e-10)  # float64 path


def test_terms_match_the_reference_and_an_epsilon_change(rng):
    z_a, z_b = small_views(rng, 9, 4)
    for epsilon in (1e-4, 0.3):
        got = losses.vicreg_terms(z_a, z_b, epsilon)
        np.testing.assert_allclose([float(t) for t in got], reference_terms(z_a, z_b, epsilon), rtol=1e-10)


def test_gradient_matches_finite_differences_of_the_reference(rng):
    z_a, z_b = small_views(rng, 5, 3)
    a, b = tf.Variable(z_a), tf.Variable(z_b)
    with tf.GradientTape() as tape:
        value = losses.vicreg_loss(a, b)
    grad_a, grad_b = tape.gradient(value, [a, b])
    np.testing.assert_allclose(
        grad_a.numpy(), numerical_gradient(lambda x: reference_vicreg(x, z_b), z_a), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        grad_b.numpy(), numerical_gradient(lambda x: reference_vicreg(z_a, x), z_b), rtol=1e-5, atol=1e-6
    )


# ---------------------------------------------------------------- hand cases


def test_identical_views_have_zero_invariance(rng):
    z = rng.normal(size=(10, 4)).astype(np.float32)
    terms = losses.vicreg_terms(z, z)
    assert float(terms.invariance) == 0.0
    assert float(losses.vicreg_loss(z, z)) == pytest.approx(25 * float(terms.variance) + float(terms.covariance))


def test_spread_decorrelated_identical_views_cost_nothing():
    # Hadamard columns times 2: mean 0, orthogonal (Cov off-diagonal 0), unbiased variance 4 * 8 / 7 > 1 (hinge 0).
    z = 2.0 * hadamard(8)[:, 1:].astype(np.float32)
    assert float(losses.vicreg_loss(z, z)) == pytest.approx(0.0, abs=1e-6)


def test_collapsed_views_pay_the_full_variance_hinge():
    # Constant views: Var = 0, std = sqrt(1e-4) = 0.01, hinge 0.99 per dimension and view; no covariance.
    z = np.full((6, 3), 0.7, np.float32)
    assert float(losses.vicreg_loss(z, z)) == pytest.approx(25 * 0.99, rel=1e-6)
    assert float(losses.vicreg_loss(z, z + 1.0)) == pytest.approx(25 * 1.0 + 25 * 0.99, rel=1e-6)


def test_duplicated_dimension_pays_its_squared_covariance():
    # z = [x, x] with unbiased Var(x) = v: Cov = [[v, v], [v, v]], sum_{i != j} Cov^2 / d = 2 v^2 / 2 = v^2 per view.
    x = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.var(x, ddof=1)
    z = np.stack([x, x], axis=1)
    assert float(losses.vicreg_terms(z, z).covariance) == pytest.approx(2 * v**2, rel=1e-12)


# ---------------------------------------------------------------- properties


def test_two_replicas_equal_one_device(two_replicas, rng):
    z_a, z_b = small_views(rng, 8, 5)
    loss = assert_replicas_equal_one_device(two_replicas, losses.vicreg_loss, [z_a, z_b], rng, out_dim=4)
    assert loss > 0


def test_invariant_to_batch_order_and_shared_shift(rng):
    z_a, z_b = small_views(rng, 12, 4)
    base = float(losses.vicreg_loss(z_a, z_b))
    perm = rng.permutation(12)
    shift = rng.normal(size=4) * 5
    np.testing.assert_allclose(float(losses.vicreg_loss(z_a[perm], z_b[perm])), base, rtol=1e-10)
    np.testing.assert_allclose(float(losses.vicreg_loss(z_a + shift, z_b + shift)), base, rtol=1e-10)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_inputs_compute_in_float32(dtype, rng):
    assert_half_precision_computes_in_float32(losses.VICRegLoss(), reference_vicreg, small_views(rng, 16, 4), dtype)


def test_gradients_are_finite_for_constant_views():
    z = tf.Variable(tf.fill([4, 3], 2.0))
    with tf.GradientTape() as tape:
        value = losses.vicreg_loss(z, z + 0.0)
    assert np.all(np.isfinite(tape.gradient(value, z).numpy()))


def test_compiles_under_xla(rng):
    z_a, z_b = (tf.constant(v, tf.float32) for v in small_views(rng, 8, 4))
    compiled = tf.function(lambda a, b: losses.vicreg_loss(a, b), jit_compile=True)
    np.testing.assert_allclose(float(compiled(z_a, z_b)), float(losses.vicreg_loss(z_a, z_b)), rtol=1e-5)


def test_config_round_trip(rng):
    loss = losses.VICRegLoss(sim_weight=10.0, var_weight=5.0, cov_weight=0.5, epsilon=1e-3)
    restored = assert_config_round_trip(loss, *small_views(rng, 6, 3))
    assert (restored.sim_weight, restored.var_weight, restored.cov_weight, restored.epsilon) == (10.0, 5.0, 0.5, 1e-3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.VICRegLoss(sim_weight=-1.0), "sim_weight"),
        (lambda: losses.VICRegLoss(var_weight=float("nan")), "var_weight"),
        (lambda: losses.VICRegLoss(cov_weight=-0.1), "cov_weight"),
        (lambda: losses.VICRegLoss(epsilon=0.0), "epsilon"),
        (lambda: losses.vicreg_loss(np.ones((3, 4)), np.ones((2, 4))), r"`z_a` and `z_b`"),
        (lambda: losses.vicreg_loss(np.ones((1, 4)), np.ones((1, 4))), r"at least 2 examples"),
        (lambda: losses.vicreg_loss(np.ones((2, 2, 2)), np.ones((2, 2, 2))), r"`z_a`.*rank 2"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
