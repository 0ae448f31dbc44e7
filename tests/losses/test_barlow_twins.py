import math

import hypothesis
import hypothesis.strategies as st
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
from tfcontrast.losses import barlow_twins

# ---------------------------------------------------------------- reference
# Zbontar et al. 2021 from the definition, explicit loops in float64.


def reference_standardise(z):
    n, d = len(z), len(z[0])
    out = np.zeros((n, d))
    for j in range(d):
        mean = sum(z[i][j] for i in range(n)) / n
        variance = sum((z[i][j] - mean) ** 2 for i in range(n)) / n  # biased, as BatchNorm
        for i in range(n):
            out[i, j] = (z[i][j] - mean) / math.sqrt(variance + 1e-5)
    return out


def reference_barlow_twins(z_a, z_b, lambda_):
    a, b = reference_standardise(z_a), reference_standardise(z_b)
    n, d = a.shape
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += (1.0 - c) ** 2 if i == j else lambda_ * c**2
    return loss


@pytest.mark.parametrize("n, d", [(2, 1), (7, 3), (16, 8), (33, 5)])
@pytest.mark.parametrize("lambda_", [0.0, 5e-3, 0.5])
def test_matches_loop_reference(n, d, lambda_, rng):
    z_a, z_b = correlated_views(rng, n, d)
    want = reference_barlow_twins(z_a, z_b, lambda_)
    got = losses.BarlowTwinsLoss(lambda_)(z_a.astype(np.float32), z_b.astype(np.float32))
    assert got.dtype == tf.float32
    np.testing.assert_allclose(float(got), want, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(float(losses.barlow_twins_loss(z_a, z_b, lambda_)), want, rtol=1e-10)  # float64 path


def test_gradient_matches_finite_differences_of_the_reference(rng):
    z_a, z_b = correlated_views(rng, 5, 3)
    a, b = tf.Variable(z_a), tf.Variable(z_b)
    with tf.GradientTape() as tape:
        value = losses.barlow_twins_loss(a, b, 0.1)
    grad_a, grad_b = tape.gradient(value, [a, b])
    np.testing.assert_allclose(
        grad_a.numpy(), numerical_gradient(lambda x: reference_barlow_twins(x, z_b, 0.1), z_a), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        grad_b.numpy(), numerical_gradient(lambda x: reference_barlow_twins(z_a, x, 0.1), z_b), rtol=1e-5, atol=1e-7
    )


# ---------------------------------------------------------------- hand cases


def test_decorrelated_standardised_identical_views_give_zero():
    # Columns 1..7 of an 8x8 Hadamard matrix: mean 0, biased variance 1, mutually orthogonal.
    # Then z_n = z / sqrt(1 + 1e-5), C = I / (1 + 1e-5): L = d (1e-5 / (1 + 1e-5))^2 ~ 7e-10, for any lambda_.
    z = hadamard(8)[:, 1:].astype(np.float32)
    want = 7 * (1e-5 / (1 + 1e-5)) ** 2
    for lambda_ in (5e-3, 1.0):
        assert float(losses.barlow_twins_loss(z, z, lambda_)) == pytest.approx(want, abs=1e-9)
    # The same columns shifted and rescaled per dimension (BatchNorm removes both) still give ~0.
    shifted = z * np.float32([1, 2, 3, 4, 5, 6, 7]) - np.float32(3.0)
    assert float(losses.barlow_twins_loss(shifted, z)) < 1e-6


def test_anti_correlated_views_give_four_per_dimension():
    # z_b = -z_a: C = -I / (1 + 1e-5), L = d (1 + 1 / (1 + 1e-5))^2 ~ 4 d.
    z = hadamard(8)[:, 1:4].astype(np.float32)
    assert float(losses.barlow_twins_loss(z, -z)) == pytest.approx(3 * (1 + 1 / (1 + 1e-5)) ** 2, rel=1e-6)


def test_redundant_dimensions_pay_lambda_per_off_diagonal_entry():
    # Two copies of one standardised column in both views: C = [[c, c], [c, c]], c = 1 / (1 + 1e-5):
    # L = 2 (1 - c)^2 + lambda_ * 2 c^2.
    column = hadamard(8)[:, 1:2]
    z = np.concatenate([column, column], axis=1).astype(np.float32)
    c = 1 / (1 + 1e-5)
    assert float(losses.barlow_twins_loss(z, z, 0.25)) == pytest.approx(2 * (1 - c) ** 2 + 0.25 * 2 * c**2, rel=1e-6)


def test_cross_correlation_is_the_identity_for_decorrelated_views():
    z = hadamard(16)[:, 1:6]
    np.testing.assert_allclose(barlow_twins.cross_correlation(z, z).numpy(), np.eye(5) / (1 + 1e-5), atol=1e-12)


# ---------------------------------------------------------------- properties


@hypothesis.settings(max_examples=10, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**16))
def test_invariant_to_per_dimension_affine_maps_and_batch_order(seed):
    rng = np.random.default_rng(seed)
    z_a, z_b = correlated_views(rng, 12, 4)
    base = float(losses.barlow_twins_loss(z_a, z_b))
    scale, shift = rng.uniform(1.0, 5.0, size=4), rng.normal(size=4) * 10
    perm = rng.permutation(12)
    # Exact but for the 1e-5 added to each variance, which the rescaling changes relative to it.
    np.testing.assert_allclose(float(losses.barlow_twins_loss(z_a * scale + shift, z_b)), base, rtol=1e-3)
    np.testing.assert_allclose(float(losses.barlow_twins_loss(z_a[perm], z_b[perm])), base, rtol=1e-10)


def test_two_replicas_equal_one_device(two_replicas, rng):
    z_a, z_b = correlated_views(rng, 8, 5)
    loss = assert_replicas_equal_one_device(two_replicas, lambda a, b: losses.barlow_twins_loss(a, b, 0.1), [z_a, z_b], rng)
    assert loss > 0


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_inputs_compute_in_float32(dtype, rng):
    assert_half_precision_computes_in_float32(
        losses.BarlowTwinsLoss(), lambda a, b: reference_barlow_twins(a, b, 5e-3), correlated_views(rng, 16, 4), dtype
    )


def test_constant_dimensions_and_single_example_stay_finite(rng):
    z = tf.Variable(np.concatenate([np.ones((6, 1)), rng.normal(size=(6, 2))], axis=1).astype(np.float32))
    with tf.GradientTape() as tape:
        value = losses.barlow_twins_loss(z, z * 2.0)
    assert np.isfinite(float(value)) and np.all(np.isfinite(tape.gradient(value, z).numpy()))
    # one example: everything standardises to 0, C = 0, L = d
    assert float(losses.barlow_twins_loss([[1.0, 2.0, 3.0]], [[3.0, 2.0, 1.0]])) == pytest.approx(3.0)


def test_compiles_under_xla(rng):
    z_a, z_b = (tf.constant(v, tf.float32) for v in correlated_views(rng, 8, 4))
    compiled = tf.function(lambda a, b: losses.barlow_twins_loss(a, b), jit_compile=True)
    np.testing.assert_allclose(float(compiled(z_a, z_b)), float(losses.barlow_twins_loss(z_a, z_b)), rtol=1e-5)


def test_config_round_trip(rng):
    restored = assert_config_round_trip(losses.BarlowTwinsLoss(lambda_=0.02), *correlated_views(rng, 6, 3))
    assert restored.lambda_ == 0.02


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.BarlowTwinsLoss(lambda_=-1.0), "lambda_"),
        (lambda: losses.barlow_twins_loss(np.ones((3, 4)), np.ones((2, 4))), r"`z_a` and `z_b`"),
        (lambda: losses.barlow_twins_loss(np.ones((3, 4)), np.ones((3, 5))), r"`z_a` and `z_b`"),
        (lambda: losses.barlow_twins_loss(np.ones(4), np.ones(4)), r"`z_a`.*rank 2"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
