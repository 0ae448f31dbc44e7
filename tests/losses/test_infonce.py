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
# He et al. 2020 (MoCo) eq. 1 from the definition, explicit loops in float64; extra (per-query)
# negatives as in Kalantidis et al. 2020 (MoCHi): appended to that query's denominator.


def reference_info_nce(queries, keys, negatives=None, extra=None, t=0.2):
    n = len(queries)
    total = 0.0
    for i in range(n):
        if negatives is None:  # the other keys of the batch
            negative_vectors = [keys[j] for j in range(n) if j != i]
        else:
            negative_vectors = list(negatives)
        if extra is not None:
            negative_vectors += list(extra[i])
        positive = math.exp(cosine(queries[i], keys[i]) / t)
        negative_mass = sum(math.exp(cosine(queries[i], m) / t) for m in negative_vectors)
        total += math.log1p(negative_mass / positive)  # = -log(positive / (positive + negative_mass)), exactly
    return total / n


def reference_one_directional_nt_xent(z_a, z_b, t):
    """-1/N sum_i log softmax_j(cos(a_i, b_j) / t)[i]: NT-Xent's a -> b direction, cross-view negatives only."""
    n = len(z_a)
    total = 0.0
    for i in range(n):
        logits = [cosine(z_a[i], z_b[j]) / t for j in range(n)]
        total += -(logits[i] - math.log(sum(math.exp(v) for v in logits)))
    return total / n


def batch(rng, n=6, d=5, m=9, extra=0):
    q = rng.normal(size=(n, d))
    k = q + 0.6 * rng.normal(size=(n, d))
    queue = rng.normal(size=(m, d))
    mixed = rng.normal(size=(n, extra, d)) if extra else None
    return q, k, queue, mixed


# ---------------------------------------------------------------- references


@pytest.mark.parametrize("n, m, extra", [(1, 1, 0), (6, 9, 0), (6, 9, 3), (13, 40, 2), (1, 4, 2)])
@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_matches_loop_reference_with_a_queue(n, m, extra, temperature, rng):
    q, k, queue, mixed = batch(rng, n=n, m=m, extra=extra)
    want = reference_info_nce(q, k, queue, mixed, temperature)
    f32 = lambda x: None if x is None else x.astype(np.float32)  # noqa: E731
    got = losses.InfoNCELoss(temperature)(f32(q), f32(k), f32(queue), f32(mixed))
    assert got.dtype == tf.float32
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    np.testing.assert_allclose(float(losses.info_nce_loss(q, k, queue, mixed, temperature)), want, rtol=1e-10)


@pytest.mark.parametrize("n, extra", [(1, 0), (2, 0), (7, 0), (7, 4)])
def test_in_batch_negatives_match_reference_and_one_directional_nt_xent(n, extra, rng):
    q, k, _, mixed = batch(rng, n=n, extra=extra)
    want = reference_info_nce(q, k, None, mixed, 0.1)
    np.testing.assert_allclose(float(losses.info_nce_loss(q, k, extra_negatives=mixed, temperature=0.1)), want, rtol=1e-10)
    if extra == 0:
        np.testing.assert_allclose(want, reference_one_directional_nt_xent(q, k, 0.1), rtol=1e-12)
        # the InfoNCE through the package's compile path (y_true=queries, y_pred=keys) is the same value
        np.testing.assert_allclose(float(losses.InfoNCELoss(0.1).call(q, k)), want, rtol=1e-10)


def test_gradient_matches_finite_differences_of_the_reference(rng):
    q, k, queue, mixed = batch(rng, n=4, d=3, m=5, extra=2)
    for negatives in (None, queue):
        a, b = tf.Variable(q), tf.Variable(k)
        with tf.GradientTape() as tape:
            value = losses.info_nce_loss(a, b, negatives, mixed, 0.3)
        grad_q, grad_k = tape.gradient(value, [a, b])
        want_q = numerical_gradient(lambda x: reference_info_nce(x, k, negatives, mixed, 0.3), q)
        want_k = numerical_gradient(lambda x: reference_info_nce(q, x, negatives, mixed, 0.3), k)
        np.testing.assert_allclose(grad_q.numpy(), want_q, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(grad_k.numpy(), want_k, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------- hand cases


def test_queue_of_orthogonal_vectors_has_the_hand_derived_value():
    # q_i = k_i = e_i (i < 2) and a queue of e_2 .. e_5, all orthogonal to every query:
    # positive logit 1/t, four negative logits 0, so L = -log(e^{1/t} / (e^{1/t} + 4)) = log(1 + 4 e^{-1/t}).
    eye = np.eye(6, dtype=np.float32)
    for t in (0.1, 0.5, 1.0):
        got = float(losses.info_nce_loss(eye[:2] * 3.0, eye[:2], eye[2:], temperature=t))
        assert got == pytest.approx(math.log1p(4 * math.exp(-1 / t)), rel=1e-6)
    # a queue entry equal to the key doubles the positive mass: log(1 + (4 + e^{1/t}) e^{-1/t}) = log(2 + 4 e^{-1/t})
    queue = np.concatenate([eye[2:], eye[:1]])
    got = float(losses.info_nce_loss(eye[:1], eye[:1], queue, temperature=0.5))
    assert got == pytest.approx(math.log(2 + 4 * math.exp(-2)), rel=1e-6)


def test_small_losses_keep_their_relative_precision():
    # t = 0.05 and orthogonal negatives: L = log(1 + 4 e^{-20}) ~ 8.2e-9, below float32's epsilon next to 1
    # (a naive -log(p / (p + n)) gives 0 there).
    eye = np.eye(6, dtype=np.float32)
    got = float(losses.info_nce_loss(eye[:1], eye[:1], eye[2:], temperature=0.05))
    assert got == pytest.approx(4 * math.exp(-20), rel=1e-5)


# ---------------------------------------------------------------- extra (synthetic) negatives


def test_extra_negatives_carry_no_gradient_and_hard_ones_raise_the_loss(rng):
    q, k, queue, _ = batch(rng, n=5, m=20)
    q, k, queue = (v.astype(np.float32) for v in (q, k, queue))
    # MoCHi-like hard negatives: normalised mixtures of the query with queue entries (query weight < 0.5).
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    qu = queue / np.linalg.norm(queue, axis=1, keepdims=True)
    hard = 0.45 * qn[:, None, :] + 0.55 * qu[None, :3, :]
    hard = tf.Variable(hard / np.linalg.norm(hard, axis=2, keepdims=True))
    queue_var = tf.Variable(queue)
    query = tf.Variable(q)
    with tf.GradientTape(persistent=True) as tape:
        mixed = losses.info_nce_loss(query, k, queue_var, hard)
        plain = losses.info_nce_loss(query, k, queue_var)
    assert float(mixed) > float(plain)
    assert tape.gradient(mixed, hard) is None and tape.gradient(mixed, queue_var) is None
    # the query still gets the gradient of the extra logits
    assert not np.allclose(tape.gradient(mixed, query).numpy(), tape.gradient(plain, query).numpy())
    # mean similarity of the synthetic negatives to their query exceeds the queue's
    sim_extra = np.einsum("nd,nmd->nm", qn, hard.numpy()).mean()
    assert sim_extra > (qn @ qu.T).mean()


# ---------------------------------------------------------------- blocked mode, distribution, dtypes


@pytest.mark.parametrize("negatives", ["queue", "in-batch"])
@pytest.mark.parametrize("block_size", [1, 3, 64])
def test_blocked_equals_dense_in_value_and_gradient(negatives, block_size, rng):
    q, k, queue, mixed = batch(rng, n=7, m=11, extra=2)
    queue = queue if negatives == "queue" else None
    a, b = tf.Variable(q.astype(np.float32)), tf.Variable(k.astype(np.float32))

    def value_and_grads(block):
        with tf.GradientTape() as tape:
            value = losses.info_nce_loss(a, b, queue, mixed, 0.2, block_size=block)
        return value, tape.gradient(value, [a, b])

    dense, dense_grads = value_and_grads(None)
    blocked, blocked_grads = value_and_grads(block_size)
    np.testing.assert_allclose(float(blocked), float(dense), rtol=1e-6)
    for got, want in zip(blocked_grads, dense_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("negatives", ["in-batch", "queue"])
def test_two_replicas_equal_one_device(two_replicas, negatives, rng):
    q, k, _, _ = batch(rng, n=8, d=5)
    queue = tf.constant(rng.normal(size=(10, 6)).astype(np.float32)) if negatives == "queue" else None

    def loss_fn(queries, keys, mixed):  # one extra negative per query, split across replicas with its query
        return losses.info_nce_loss(queries, keys, queue, mixed[:, None, :], 0.2, block_size=3)

    value = assert_replicas_equal_one_device(two_replicas, loss_fn, [q, k, rng.normal(size=(8, 5))], rng, out_dim=6)
    assert value > 0


def test_half_precision_and_xla(rng):
    q, k, queue, mixed = batch(rng, n=6, m=8, extra=2)
    want = reference_info_nce(q, k, queue, mixed, 0.2)
    for dtype in (tf.float16, tf.bfloat16):
        cast = lambda x: tf.cast(x * 100.0, dtype)  # noqa: E731  (large half inputs: normalised in float32)
        value = losses.InfoNCELoss()(cast(q), cast(k), cast(queue), cast(mixed))
        assert value.dtype == tf.float32
        np.testing.assert_allclose(float(value), want, rtol=0.05)
    f32 = [tf.constant(v.astype(np.float32)) for v in (q, k, queue, mixed)]
    compiled = tf.function(lambda *v: losses.info_nce_loss(*v, temperature=0.2, block_size=4), jit_compile=True)
    np.testing.assert_allclose(float(compiled(*f32)), want, rtol=1e-5)


def test_config_round_trip(rng):
    q, k, queue, _ = batch(rng)
    restored = assert_config_round_trip(losses.InfoNCELoss(temperature=0.07, block_size=128), q, k, negatives=queue)
    assert (restored.temperature, restored.block_size) == (0.07, 128)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.InfoNCELoss(temperature=0.0), "temperature"),
        (lambda: losses.InfoNCELoss(block_size=0), "block_size"),
        (lambda: losses.info_nce_loss(np.ones((3, 4)), np.ones((2, 4))), r"`queries` and `keys`"),
        (lambda: losses.info_nce_loss(np.ones((3, 4)), np.ones((3, 4)), np.ones((5, 3))), r"`queries` and `negatives`"),
        (lambda: losses.info_nce_loss(np.ones((3, 4)), np.ones((3, 4)), np.ones((0, 4))), r"`negatives` is empty"),
        (lambda: losses.info_nce_loss(np.ones((3, 4)), np.ones((3, 4)), np.ones(4)), r"`negatives`.*rank 2"),
        (lambda: losses.info_nce_loss(np.ones((3, 4)), np.ones((3, 4)), None, np.ones((2, 1, 4))), r"extra_negatives"),
        (lambda: losses.info_nce_loss(np.ones((3, 4)), np.ones((3, 4)), None, np.ones((3, 4))), r"extra_negatives.*rank 3"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
