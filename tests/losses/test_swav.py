import math

import numpy as np
import pytest
import tensorflow as tf

from tests.losses.checks import (
    assert_config_round_trip,
    assert_replicas_equal_one_device,
    numerical_gradient,
)
from tfcontrast import losses

# ---------------------------------------------------------------- references
# Caron et al. 2020 from the definition (Sinkhorn-Knopp as in the paper's pseudo-code, in the
# linear domain), explicit loops in float64.


def reference_sinkhorn(scores, epsilon, iterations):
    b_size, k_size = len(scores), len(scores[0])
    q = [[math.exp(scores[b][k] / epsilon) for b in range(b_size)] for k in range(k_size)]  # [K, B]
    total = sum(sum(row) for row in q)
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        for k in range(k_size):  # every prototype (row) to 1/K
            row_sum = sum(q[k])
            q[k] = [v / row_sum / k_size for v in q[k]]
        for b in range(b_size):  # every sample (column) to 1/B
            column_sum = sum(q[k][b] for k in range(k_size))
            for k in range(k_size):
                q[k][b] = q[k][b] / column_sum / b_size
    return np.array([[q[k][b] * b_size for k in range(k_size)] for b in range(b_size)])


def reference_cross_entropy(codes, scores, temperature):
    """mean_b -sum_k q[b, k] log softmax(scores[b] / t)[k]."""
    total = 0.0
    for q_row, s_row in zip(codes, scores):
        log_normaliser = math.log(sum(math.exp(s / temperature) for s in s_row))
        total += -sum(q * (s / temperature - log_normaliser) for q, s in zip(q_row, s_row))
    return total / len(codes)


def reference_swav(crops, temperature=0.1, epsilon=0.05, iterations=3, code_crops=(0, 1), codes=None):
    """Mean over (code crop, other crop) pairs; ``codes`` fixed from outside for gradient checks."""
    if codes is None:
        codes = {c: reference_sinkhorn(crops[c], epsilon, iterations) for c in code_crops}
    terms = [reference_cross_entropy(codes[c], crops[v], temperature)
             for c in code_crops for v in range(len(crops)) if v != c]
    return sum(terms) / len(terms)


def prototype_scores(rng, batch, dim, prototypes, crops):
    """Cosines of normalised projections (each crop a noisy copy) with normalised prototypes: [crops][batch, K]."""
    c = rng.normal(size=(dim, prototypes))
    c /= np.linalg.norm(c, axis=0, keepdims=True)
    base = rng.normal(size=(batch, dim))
    out = []
    for _ in range(crops):
        z = base + 0.7 * rng.normal(size=(batch, dim))
        out.append((z / np.linalg.norm(z, axis=1, keepdims=True)) @ c)
    return out


# ---------------------------------------------------------------- Sinkhorn


@pytest.mark.parametrize("batch, prototypes", [(1, 3), (6, 4), (16, 30), (40, 7)])
@pytest.mark.parametrize("epsilon, iterations", [(0.05, 3), (0.05, 1), (0.3, 10), (1.0, 2)])
def test_sinkhorn_matches_loop_reference(batch, prototypes, epsilon, iterations, rng):
    scores = prototype_scores(rng, batch, 8, prototypes, 1)[0]
    want = reference_sinkhorn(scores, epsilon, iterations)
    got = losses.sinkhorn(scores.astype(np.float32), epsilon, iterations)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(losses.sinkhorn(scores, epsilon, iterations).numpy(), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("epsilon, iterations", [(0.05, 300), (0.1, 100), (0.5, 30)])
def test_marginals_converge_to_one_over_k_and_one_over_b(epsilon, iterations, rng):
    batch, prototypes = 32, 10
    scores = prototype_scores(rng, batch, 8, prototypes, 1)[0]
    q = losses.sinkhorn(scores, epsilon, iterations).numpy() / batch  # before the final * B
    for k in range(prototypes):
        assert abs(sum(q[b, k] for b in range(batch)) - 1 / prototypes) < 1e-6
    for b in range(batch):
        assert abs(sum(q[b, k] for k in range(prototypes)) - 1 / batch) < 1e-6
    q32 = losses.sinkhorn(scores.astype(np.float32), epsilon, iterations).numpy() / batch
    np.testing.assert_allclose(q32.sum(axis=0), 1 / prototypes, atol=1e-6)
    np.testing.assert_allclose(q32.sum(axis=1), 1 / batch, atol=1e-6)


def test_one_dominant_prototype_gives_spread_codes_not_one_hot(rng):
    batch, prototypes = 32, 10
    scores = rng.uniform(-0.1, 0.1, size=(batch, prototypes)).astype(np.float32)
    scores[:, 0] = 0.9  # prototype 0 is every sample's favourite by far
    assert tf.nn.softmax(scores / 0.05).numpy()[:, 0].min() > 0.999  # the plain softmax is one-hot
    codes = losses.sinkhorn(scores).numpy()  # the paper's 3 iterations
    usage = codes.mean(axis=0)
    np.testing.assert_allclose(usage, 1 / prototypes, atol=2e-3)
    assert codes.max() < 0.7 and (np.argmax(codes, axis=1) != 0).mean() > 0.5  # most samples go elsewhere


def test_large_scores_do_not_overflow_and_shifts_cancel(rng):
    scores = prototype_scores(rng, 12, 8, 6, 1)[0].astype(np.float32)
    base = losses.sinkhorn(scores, 0.05, 5).numpy()
    # exp(1000 / 0.05) overflows any float; per-prototype offsets cancel exactly (the first row normalisation).
    shifted = scores + 1000.0 + rng.uniform(-50, 50, size=(1, 6))
    got = losses.sinkhorn(shifted.astype(np.float32), 0.05, 5).numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, base, atol=2e-3)  # float32 spacing at 1000 is 6e-5, times 1/epsilon
    tiny_epsilon = losses.sinkhorn(scores, 1e-4, 3).numpy()
    assert np.all(np.isfinite(tiny_epsilon)) and np.allclose(tiny_epsilon.sum(axis=1), 1.0, atol=1e-5)


def test_codes_carry_no_gradient(rng):
    scores = tf.Variable(prototype_scores(rng, 6, 4, 5, 1)[0].astype(np.float32))
    with tf.GradientTape() as tape:
        codes = losses.sinkhorn(scores)
        value = tf.reduce_sum(codes * tf.range(5, dtype=tf.float32))
    assert tape.gradient(value, scores) is None


def test_queue_rows_join_the_problem_but_get_no_codes(rng):
    scores = prototype_scores(rng, 20, 8, 6, 1)[0]
    queue, batch = scores[:12], scores[12:]
    want = reference_sinkhorn(scores, 0.1, 4)[12:]
    np.testing.assert_allclose(losses.sinkhorn(batch, 0.1, 4, queue_scores=queue).numpy(), want, rtol=1e-9)


def test_queue_mask_leaves_out_the_unfilled_rows(rng):
    """A queue still filling up: the masked rows take no part, exactly as if they were not there."""
    scores = prototype_scores(rng, 20, 8, 6, 1)[0].astype(np.float32)
    queue, batch = scores[:12], scores[12:]
    mask = np.arange(12) < 5
    want = losses.sinkhorn(batch, 0.1, 4, queue_scores=queue[mask]).numpy()
    got = losses.sinkhorn(batch, 0.1, 4, queue_scores=queue, queue_mask=mask).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    nothing = losses.sinkhorn(batch, 0.1, 4, queue_scores=queue, queue_mask=np.zeros(12, bool)).numpy()
    np.testing.assert_allclose(nothing, losses.sinkhorn(batch, 0.1, 4).numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="queue_mask"):
        losses.sinkhorn(batch, 0.1, 4, queue_mask=mask)


def test_sinkhorn_with_a_queue_on_two_replicas_equals_one_device(two_replicas, rng):
    # Each replica holds 4 of the 8 samples and the same 4 queue rows: one problem of 4 + 8 samples.
    scores = prototype_scores(rng, 12, 6, 5, 1)[0].astype(np.float32)
    queue, batch = scores[:4], scores[4:]
    want = losses.sinkhorn(scores, 0.1, 3).numpy()[4:]
    per_replica = two_replicas.experimental_distribute_values_from_function(
        lambda ctx: batch[4 * ctx.replica_id_in_sync_group :][:4]
    )
    codes = two_replicas.run(tf.function(lambda s: losses.sinkhorn(s, 0.1, 3, queue_scores=queue)), args=(per_replica,))
    got = np.concatenate([c.numpy() for c in two_replicas.experimental_local_results(codes)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- the loss


@pytest.mark.parametrize("crops, code_crops", [(2, (0, 1)), (5, (0, 1)), (4, (0,)), (3, (2, 0))])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_loss_matches_loop_reference(crops, code_crops, temperature, rng):
    scores = prototype_scores(rng, 10, 8, 7, crops)
    want = reference_swav(scores, temperature, 0.05, 3, code_crops)
    loss = losses.SwAVLoss(temperature=temperature, code_crops=code_crops)
    got = loss([s.astype(np.float32) for s in scores])
    assert got.dtype == tf.float32
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    np.testing.assert_allclose(float(losses.swav_loss(scores, temperature, code_crops=code_crops)), want, rtol=1e-9)


def test_two_crops_is_the_papers_symmetric_formula(rng):
    s_a, s_b = prototype_scores(rng, 6, 5, 4, 2)
    q_a, q_b = reference_sinkhorn(s_a, 0.05, 3), reference_sinkhorn(s_b, 0.05, 3)
    t = 0.1
    log_p = lambda s: s / t - np.log(np.exp(s / t).sum(axis=1, keepdims=True))  # noqa: E731
    want = -0.5 * np.mean(np.sum(q_a * log_p(s_b), axis=1) + np.sum(q_b * log_p(s_a), axis=1))
    np.testing.assert_allclose(float(losses.swav_loss([s_a, s_b])), want, rtol=1e-9)


def test_gradient_matches_finite_differences_with_codes_held_fixed(rng):
    scores = prototype_scores(rng, 4, 5, 3, 3)
    codes = {c: reference_sinkhorn(scores[c], 0.05, 3) for c in (0, 1)}
    variables = [tf.Variable(s) for s in scores]
    with tf.GradientTape() as tape:
        value = losses.swav_loss(variables)
    grads = tape.gradient(value, variables)
    for v in range(3):
        def f(x, v=v):
            return reference_swav([x if i == v else s for i, s in enumerate(scores)], codes=codes)
        np.testing.assert_allclose(grads[v].numpy(), numerical_gradient(f, scores[v]), rtol=1e-5, atol=1e-8)


def test_loss_with_a_queue_uses_the_queue_codes(rng):
    scores = prototype_scores(rng, 16, 6, 5, 3)
    queues = prototype_scores(rng, 10, 6, 5, 2)
    codes = {c: reference_sinkhorn(np.concatenate([queues[c], scores[c]]), 0.05, 3)[10:] for c in (0, 1)}
    want = reference_swav(scores, codes=codes)
    np.testing.assert_allclose(float(losses.SwAVLoss()(scores, queue_scores=queues)), want, rtol=1e-5)
    partial = {0: codes[0], 1: reference_sinkhorn(scores[1], 0.05, 3)}  # a queue for the first code crop only
    np.testing.assert_allclose(
        float(losses.swav_loss(scores, queue_scores=[queues[0], None])), reference_swav(scores, codes=partial), rtol=1e-9
    )


def test_two_replicas_equal_one_device(two_replicas, rng):
    inputs = prototype_scores(rng, 8, 6, 12, 3)  # [8, 12] inputs go through a dense layer to 7 "prototypes"
    loss = assert_replicas_equal_one_device(
        two_replicas, lambda *s: losses.swav_loss(list(s), 0.2, 0.3, 3), inputs, rng, out_dim=7
    )
    assert loss > 0


def test_mixed_precision_and_compiled(rng):
    scores = prototype_scores(rng, 8, 6, 5, 3)
    want = reference_swav(scores)
    for dtype in (tf.float16, tf.bfloat16):
        value = losses.SwAVLoss()([tf.cast(s, dtype) for s in scores])
        assert value.dtype == tf.float32 and np.isfinite(float(value))
        np.testing.assert_allclose(float(value), want, rtol=0.05)  # inputs rounded to half precision
    compiled = tf.function(lambda *s: losses.swav_loss(list(s)), jit_compile=True)
    np.testing.assert_allclose(float(compiled(*[s.astype(np.float32) for s in scores])), want, rtol=1e-5)


def test_config_round_trip(rng):
    loss = losses.SwAVLoss(temperature=0.2, epsilon=0.03, sinkhorn_iterations=5, code_crops=(1, 0))
    restored = assert_config_round_trip(loss, prototype_scores(rng, 6, 4, 5, 3))
    assert restored.code_crops == (1, 0) and restored.sinkhorn_iterations == 5


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.SwAVLoss(temperature=0.0), "temperature"),
        (lambda: losses.SwAVLoss(epsilon=-1.0), "epsilon"),
        (lambda: losses.SwAVLoss(sinkhorn_iterations=0), "iterations"),
        (lambda: losses.SwAVLoss(code_crops=()), "code_crops"),
        (lambda: losses.SwAVLoss(code_crops=(0, 0)), "code_crops"),
        (lambda: losses.SwAVLoss(code_crops=(0, -1)), "code_crops"),
        (lambda: losses.sinkhorn(np.ones(3)), r"`scores`.*rank 2"),
        (lambda: losses.sinkhorn(np.ones((3, 4)), queue_scores=np.ones((2, 5))), r"`scores` and `queue_scores`"),
        (lambda: losses.swav_loss([np.ones((3, 4))]), r"at least 2"),
        (lambda: losses.swav_loss(np.ones((2, 3, 4))), r"list of at least 2"),
        (lambda: losses.swav_loss([np.ones((3, 4)), np.ones((2, 4))]), r"`scores\[0\]` and `scores\[1\]`"),
        (lambda: losses.swav_loss([np.ones((3, 4))] * 2, code_crops=(0, 2)), r"code_crops.*2 given"),
        (lambda: losses.swav_loss([np.ones((3, 4))] * 2, queue_scores=[None]), r"queue_scores.*one entry"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
