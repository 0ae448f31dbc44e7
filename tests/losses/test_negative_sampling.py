import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses

# -------------------------------------------------------------- reference
# Mikolov et al. 2013, eq. 4, from the definition: -log sigma(x) - sum_j log sigma(-y_j)
# per pair, averaged; explicit loops in float64.


def log_sigmoid(t):
    t = float(t)
    return -np.log1p(np.exp(-t)) if t >= 0 else t - np.log1p(np.exp(t))


def reference_negative_sampling(positive, negative):
    total = 0.0
    for x, row in zip(positive, negative):
        total += -log_sigmoid(x) - sum(log_sigmoid(-y) for y in row)
    return total / len(positive)


@pytest.mark.parametrize("batch, k", [(1, 1), (7, 5), (32, 15)])
@pytest.mark.parametrize("spread", [0.5, 5.0, 40.0])
def test_matches_reference(batch, k, spread, rng):
    positive = (spread * rng.normal(size=batch)).astype(np.float32)
    negative = (spread * rng.normal(size=(batch, k))).astype(np.float32)
    got = float(losses.NegativeSamplingLoss()(positive, negative))
    np.testing.assert_allclose(got, reference_negative_sampling(positive, negative), rtol=1e-5)


def test_hand_derived_values():
    # All logits 0: every sigmoid is 1/2, so (1 + k) log 2 per pair.
    assert float(losses.negative_sampling_loss([0.0, 0.0], [[0.0] * 4] * 2)) == pytest.approx(5 * np.log(2))
    # A confident right answer costs ~0, a confident wrong one ~|logit| per term.
    assert float(losses.negative_sampling_loss([30.0], [[-30.0, -30.0]])) < 1e-12
    assert float(losses.negative_sampling_loss([-30.0], [[30.0]])) == pytest.approx(60.0, rel=1e-6)


def test_column_positive_logits_and_gradient_signs():
    positive = tf.Variable([[0.5], [-1.0]])  # [B, 1] is accepted
    negative = tf.Variable([[0.2, -0.3], [1.0, 2.0]])
    with tf.GradientTape() as tape:
        value = losses.negative_sampling_loss(positive, negative)
    grad_pos, grad_neg = tape.gradient(value, [positive, negative])
    # d/dx softplus(-x) = -sigma(-x) < 0 (raise the positive), d/dy softplus(y) = sigma(y) > 0 (lower negatives)
    np.testing.assert_allclose(grad_pos.numpy()[:, 0], -1 / (1 + np.exp([0.5, -1.0])) / 2, rtol=1e-6)
    np.testing.assert_allclose(grad_neg.numpy(), 1 / (1 + np.exp(-negative.numpy())) / 2, rtol=1e-6)


def test_huge_logits_stay_finite():
    positive = tf.Variable([1e30, -1e30])
    negative = tf.Variable([[-1e30], [1e30]])
    with tf.GradientTape() as tape:
        value = losses.negative_sampling_loss(positive, negative)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(g.numpy())) for g in tape.gradient(value, [positive, negative]))


def test_two_replicas_give_the_global_mean(two_replicas, rng):
    positive = rng.normal(size=8).astype(np.float32)
    negative = rng.normal(size=(8, 3)).astype(np.float32)

    def local_slice(ctx):
        r = ctx.replica_id_in_sync_group
        return positive[4 * r : 4 * r + 4], negative[4 * r : 4 * r + 4]

    values = two_replicas.run(
        tf.function(losses.negative_sampling_loss),
        args=two_replicas.experimental_distribute_values_from_function(local_slice),
    )
    total = float(two_replicas.reduce("SUM", values, axis=None))
    np.testing.assert_allclose(total, reference_negative_sampling(positive, negative), rtol=1e-5)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="positive_logits.*negative_logits"):
        losses.negative_sampling_loss(np.zeros(3), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="negative_logits"):
        losses.negative_sampling_loss(np.zeros(3), np.zeros(3))


def test_config_round_trip():
    loss = losses.NegativeSamplingLoss(name="w2v")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is losses.NegativeSamplingLoss and restored.get_config() == loss.get_config()
