import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses

# ---------------------------------------------------------------- reference
# Henderson et al. 2017 / sentence-transformers MNRL from the definition: for
# each query a softmax over scale * similarity with every candidate (all
# passages, then all extra negatives), the diagonal as target. Explicit loops,
# float64, nothing shared with the implementation.


def similarity(u, v, kind):
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    dot = sum(a * b for a, b in zip(u, v))
    if kind == "dot":
        return dot
    norm_u = max(np.sqrt(sum(a * a for a in u)), 1e-6)
    norm_v = max(np.sqrt(sum(b * b for b in v)), 1e-6)
    return dot / (norm_u * norm_v)


def reference_mnrl(queries, passages, negatives=(), scale=20.0, kind="cosine"):
    candidates = list(passages) + list(negatives)
    total = 0.0
    for i, q in enumerate(queries):
        logits = [scale * similarity(q, c, kind) for c in candidates]
        top = max(logits)
        log_denominator = top + np.log(sum(np.exp(l - top) for l in logits))
        total += log_denominator - logits[i]
    return total / len(queries)


@pytest.mark.parametrize("n, dim", [(1, 3), (5, 4), (16, 8)])
@pytest.mark.parametrize("scale", [1.0, 20.0, 50.0])
def test_matches_reference(n, dim, scale, rng):
    q = rng.normal(size=(n, dim)).astype(np.float32)
    p = (q + 0.7 * rng.normal(size=(n, dim))).astype(np.float32)
    got = float(losses.MultipleNegativesRankingLoss(scale=scale)(q, p))
    np.testing.assert_allclose(got, reference_mnrl(q, p, scale=scale), rtol=1e-5, atol=1e-6)


def test_matches_reference_with_hard_negatives_and_dot_similarity(rng):
    q = rng.normal(size=(6, 5)).astype(np.float32)
    p = rng.normal(size=(6, 5)).astype(np.float32)
    hard = rng.normal(size=(6, 2, 5)).astype(np.float32)  # two per query, each a candidate for all
    got = losses.multiple_negatives_ranking_loss(q, p, negatives=hard, scale=3.0)
    want = reference_mnrl(q, p, hard.reshape(12, 5), scale=3.0)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    got_dot = losses.multiple_negatives_ranking_loss(q, p, scale=0.5, similarity="dot")
    np.testing.assert_allclose(float(got_dot), reference_mnrl(q, p, scale=0.5, kind="dot"), rtol=1e-5)


def test_hand_derived_values():
    # Orthogonal unit queries = passages, scale 1: each row is -log(e / (e + 1)) = log(1 + 1/e).
    eye = np.eye(2, dtype=np.float32)
    assert float(losses.multiple_negatives_ranking_loss(eye, eye, scale=1.0)) == pytest.approx(np.log1p(np.exp(-1)))
    # Scale only matters through s * cos: identical passages for every query give log(B) at any scale.
    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    same = np.tile([[0.3, -0.2]], (3, 1)).astype(np.float32)
    assert float(losses.multiple_negatives_ranking_loss(q, same, scale=20.0)) == pytest.approx(np.log(3), rel=1e-5)


def test_perfect_pairs_have_small_loss_and_swapped_pairs_large(rng):
    q = np.eye(8, dtype=np.float32)
    perfect = float(losses.multiple_negatives_ranking_loss(q, q))
    swapped = float(losses.multiple_negatives_ranking_loss(q, np.roll(q, 1, axis=0)))
    assert perfect < 1e-6 and swapped > 19.0  # margin of 20 (scale * 1) on every row


def test_gradient_matches_autodiff_of_a_direct_cross_entropy(rng):
    q = tf.constant(rng.normal(size=(5, 3)).astype(np.float32))
    p = tf.constant(rng.normal(size=(5, 3)).astype(np.float32))

    def direct(q, p):
        logits = 20.0 * tf.matmul(tf.math.l2_normalize(q, 1), tf.math.l2_normalize(p, 1), transpose_b=True)
        return tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(tf.range(5), logits, from_logits=True))

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([q, p])
        ours, theirs = losses.multiple_negatives_ranking_loss(q, p), direct(q, p)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-5)
    for x in (q, p):
        np.testing.assert_allclose(tape.gradient(ours, x).numpy(), tape.gradient(theirs, x).numpy(), rtol=1e-4, atol=1e-6)


def test_two_replicas_equal_one_device_on_the_global_batch(two_replicas, rng):
    x_q = rng.normal(size=(8, 5)).astype(np.float32)
    x_p = rng.normal(size=(8, 5)).astype(np.float32)
    x_n = rng.normal(size=(4, 5)).astype(np.float32)
    with two_replicas.scope():
        w = tf.Variable(rng.normal(size=(5, 6)).astype(np.float32))

    def loss_and_grad(x_q, x_p, x_n):
        with tf.GradientTape() as tape:
            value = losses.multiple_negatives_ranking_loss(x_q @ w, x_p @ w, negatives=x_n @ w, scale=5.0)
        return value, tape.gradient(value, w)

    want_value, want_grad = loss_and_grad(tf.constant(x_q), tf.constant(x_p), tf.constant(x_n))

    def local_slice(ctx):
        r = ctx.replica_id_in_sync_group
        return x_q[4 * r : 4 * r + 4], x_p[4 * r : 4 * r + 4], x_n[2 * r : 2 * r + 2]

    per_replica = two_replicas.experimental_distribute_values_from_function(local_slice)
    values, grads = two_replicas.run(tf.function(loss_and_grad), args=per_replica)
    np.testing.assert_allclose(float(two_replicas.reduce("SUM", values, axis=None)), float(want_value), rtol=1e-5)
    got_grad = two_replicas.reduce("SUM", grads, axis=None).numpy()
    np.testing.assert_allclose(got_grad, want_grad.numpy(), rtol=1e-4, atol=1e-6)


def test_float16_inputs_compute_in_float32(rng):
    q = rng.normal(size=(6, 4)).astype(np.float16)
    p = rng.normal(size=(6, 4)).astype(np.float16)
    got = losses.multiple_negatives_ranking_loss(q, p)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(float(got), reference_mnrl(q.astype(np.float64), p.astype(np.float64)), rtol=1e-4)


def test_compiles_with_xla(rng):
    q = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))
    p = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))
    compiled = tf.function(losses.multiple_negatives_ranking_loss, jit_compile=True)
    np.testing.assert_allclose(float(compiled(q, p)), reference_mnrl(q, p), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"scale": 0.0}, "scale"), ({"scale": float("nan")}, "scale"), ({"similarity": "l2"}, "similarity")],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        losses.MultipleNegativesRankingLoss(**kwargs)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="queries.*passages"):
        losses.multiple_negatives_ranking_loss(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="queries.*negatives"):
        losses.multiple_negatives_ranking_loss(np.ones((3, 4)), np.ones((3, 4)), negatives=np.ones((2, 5)))
    with pytest.raises(ValueError, match="rank 2"):
        losses.multiple_negatives_ranking_loss(np.ones((3,)), np.ones((3,)))


def test_config_round_trip_and_keras_file(tmp_path, rng):
    loss = losses.MultipleNegativesRankingLoss(scale=12.5, similarity="dot")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is losses.MultipleNegativesRankingLoss and restored.get_config() == loss.get_config()
    q, p = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    assert float(restored(q, p)) == pytest.approx(float(loss(q, p)))
