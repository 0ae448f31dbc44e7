import math

import numpy as np
import pytest
import tensorflow as tf

from tests.losses.checks import (
    assert_config_round_trip,
    assert_replicas_equal_one_device,
    numerical_gradient,
)
from tests.losses.reference import cosine
from tfcontrast import losses

# ---------------------------------------------------------------- reference
# PIRL (Misra and van der Maaten 2020) eq. 3 with NPID's noise term, from the definition, explicit loops in
# float64: h(x, m) = e^{x.m/t} / (e^{x.m/t} + N mu); L = mean_i [-log h(q_i, m_i) - sum_j log(1 - h(q_i, n_j))].


def reference_log_noise_mean(queries, negatives, t, mask=None):
    total, count = 0.0, 0
    for i, q in enumerate(queries):
        for j, m in enumerate(negatives):
            if mask is None or mask[i][j]:
                total += math.exp(cosine(q, m) / t)
                count += 1
    return math.log(total / count)


def reference_nce(queries, positives, negatives, t=0.07, log_noise_mean=None, mask=None):
    if log_noise_mean is None:
        log_noise_mean = reference_log_noise_mean(queries, negatives, t, mask)
    noise = len(negatives) * math.exp(log_noise_mean)  # N mu

    def h(x, m):
        e = math.exp(cosine(x, m) / t)
        return e / (e + noise)

    total = 0.0
    for i, q in enumerate(queries):
        total -= math.log(h(q, positives[i]))
        for j, m in enumerate(negatives):
            if mask is None or mask[i][j]:
                total -= math.log(1.0 - h(q, m))
    return total / len(queries)


def batch(rng, n=5, d=4, m=7):
    q = rng.normal(size=(n, d))
    return q, q + 0.5 * rng.normal(size=(n, d)), rng.normal(size=(m, d))


# ---------------------------------------------------------------- references


@pytest.mark.parametrize("n, m", [(1, 1), (5, 7), (12, 30)])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
@pytest.mark.parametrize("log_noise_mean", [None, 0.0, 2.5])
def test_matches_loop_reference(n, m, temperature, log_noise_mean, rng):
    q, p, negatives = batch(rng, n=n, m=m)
    want = reference_nce(q, p, negatives, temperature, log_noise_mean)
    got = losses.NCELoss(temperature)(q.astype(np.float32), p.astype(np.float32), negatives.astype(np.float32),
                                      log_noise_mean)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    np.testing.assert_allclose(float(losses.nce_loss(q, p, negatives, temperature, log_noise_mean)), want, rtol=1e-5)


def test_the_noise_estimate_is_the_log_mean_of_the_exponentials(rng):
    q, _, negatives = batch(rng, n=6, m=9)
    mask = rng.random((6, 9)) < 0.7
    for t in (0.07, 1.0):
        for use_mask in (None, mask):
            got = float(losses.nce_log_noise_mean(q, negatives, t, use_mask))
            assert got == pytest.approx(reference_log_noise_mean(q, negatives, t, use_mask), rel=1e-5)


def test_masked_negatives_leave_the_query_s_sum(rng):
    q, p, negatives = batch(rng, n=4, m=6)
    mask = np.ones((4, 6), bool)
    mask[0, 2] = mask[3, 0] = mask[3, 5] = False
    want = reference_nce(q, p, negatives, 0.2, 0.3, mask)
    np.testing.assert_allclose(float(losses.nce_loss(q, p, negatives, 0.2, 0.3, mask)), want, rtol=1e-6)
    assert want < reference_nce(q, p, negatives, 0.2, 0.3)  # fewer -log(1 - h) terms, each > 0


def test_gradient_flows_into_the_queries_only_and_matches_finite_differences(rng):
    q, p, negatives = batch(rng, n=3, d=3, m=4)
    a, b, c = tf.Variable(q), tf.Variable(p), tf.Variable(negatives)
    with tf.GradientTape() as tape:
        value = losses.nce_loss(a, b, c, 0.3, 0.4)
    grad_q, grad_p, grad_n = tape.gradient(value, [a, b, c])
    assert grad_p is None and grad_n is None
    want = numerical_gradient(lambda x: reference_nce(x, p, negatives, 0.3, 0.4), q)
    np.testing.assert_allclose(grad_q.numpy(), want, rtol=1e-5, atol=1e-8)
    # the estimated noise level is a constant too: the gradient is the one at that fixed level
    with tf.GradientTape() as tape:
        value = losses.nce_loss(a, p, negatives, 0.3)
    level = reference_log_noise_mean(q, negatives, 0.3)
    want = numerical_gradient(lambda x: reference_nce(x, p, negatives, 0.3, level), q)
    np.testing.assert_allclose(tape.gradient(value, a).numpy(), want, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------- hand cases


def test_orthogonal_memory_has_the_hand_derived_value():
    # q_i = m_i = e_i (i < 2), N = 4 negatives e_2 .. e_5, orthogonal to every query: every negative logit 0,
    # so the estimated mu = e^0 = 1 and h(pos) = e^{1/t} / (e^{1/t} + 4), h(neg) = 1 / (1 + 4):
    # L = log(1 + 4 e^{-1/t}) + 4 log(5/4).
    eye = np.eye(6, dtype=np.float32)
    for t in (0.1, 0.5, 1.0):
        got = float(losses.nce_loss(eye[:2] * 3.0, eye[:2], eye[2:], temperature=t))
        assert got == pytest.approx(math.log1p(4 * math.exp(-1 / t)) + 4 * math.log(1.25), rel=1e-6)
    # a fixed mu = e^2 instead: N mu = 4 e^2, L = log(1 + 4 e^{2 - 1/t}) + 4 log(1 + 1 / (4 e^2))
    got = float(losses.nce_loss(eye[:2], eye[:2], eye[2:], temperature=0.25, log_noise_mean=2.0))
    assert got == pytest.approx(math.log1p(4 * math.exp(2 - 4)) + 4 * math.log1p(0.25 * math.exp(-2)), rel=1e-6)


def test_small_losses_keep_their_relative_precision():
    # t = 0.02, q = m = e_0 (logit 50), negatives e_1, e_2 (logits 0), mu = e^20 so N mu = 2 e^20:
    # L = log(1 + 2 e^{20 - 50}) + 2 log(1 + 1 / (2 e^20)) ~ 2.1e-9, below float32's epsilon next to 1
    # (a naive -log(h) - log(1 - h) gives exactly 0 there).
    eye = np.eye(3, dtype=np.float32)
    got = float(losses.nce_loss(eye[:1], eye[:1], eye[1:], temperature=0.02, log_noise_mean=20.0))
    want = math.log1p(2 * math.exp(-30)) + 2 * math.log1p(0.5 * math.exp(-20))
    assert got == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------- distribution, dtypes, config, errors


def test_two_replicas_equal_one_device(two_replicas, rng):
    q, p, negatives = batch(rng, n=8, d=5, m=6)
    negatives = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))

    def loss_fn(queries, positives):  # the estimated noise level is global, the loss each replica's share
        return losses.nce_loss(queries, positives, negatives, 0.2)

    assert assert_replicas_equal_one_device(two_replicas, loss_fn, [q, p], rng, out_dim=4) > 0


def test_half_precision_and_xla(rng):
    q, p, negatives = batch(rng, n=6, m=8)
    want = reference_nce(q, p, negatives, 0.2)
    for dtype in (tf.float16, tf.bfloat16):
        value = losses.NCELoss(0.2)(*[tf.cast(x * 50.0, dtype) for x in (q, p, negatives)])
        assert value.dtype == tf.float32
        np.testing.assert_allclose(float(value), want, rtol=0.05)
    compiled = tf.function(lambda *v: losses.nce_loss(*v, temperature=0.2), jit_compile=True)
    np.testing.assert_allclose(float(compiled(*[tf.constant(x, tf.float32) for x in (q, p, negatives)])), want, rtol=1e-5)


def test_config_round_trip(rng):
    q, p, negatives = batch(rng)
    restored = assert_config_round_trip(losses.NCELoss(temperature=0.3), q, p, negatives)
    assert restored.temperature == 0.3


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.ones((2, 3)), np.ones((2, 3)), np.ones((0, 3))), {}, "`negatives` is empty"),
        ((np.ones((2, 3)), np.ones((2, 3)), np.ones((4, 2))), {}, "`queries` and `negatives` must agree"),
        ((np.ones((2, 3)), np.ones((3, 3)), np.ones((4, 3))), {}, "`queries` and `positives` must agree"),
        ((np.ones((2, 3)), np.ones((2, 3)), np.ones((4, 3))), {"negative_mask": np.ones((2, 3), bool)}, "negative_mask"),
        ((np.ones((2, 3)), np.ones((2, 3)), np.ones((4, 3))), {"temperature": 0.0}, "temperature"),
    ],
)
def test_bad_inputs_are_named(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        losses.nce_loss(*args, **kwargs)
