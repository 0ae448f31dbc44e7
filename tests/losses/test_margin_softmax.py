"""ArcFace and CosFace against float64 NumPy loops, hand-derived values and the angles 0 and pi."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.losses.reference import unit
from tfcontrast.losses import ArcFaceLoss, CosFaceLoss, arcface_loss, cosface_loss


def np_margin_softmax(labels, embeddings, weights, scale, margined):
    """Mean cross-entropy over logits s cos theta_j, the true class's being s * margined(cos theta_y)."""
    total = 0.0
    for i in range(len(labels)):
        logits = []
        for j in range(len(weights)):
            cos = float(np.clip(unit(embeddings[i]) @ unit(weights[j]), -1.0, 1.0))
            logits.append(scale * (margined(cos) if j == labels[i] else cos))
        top = max(logits)
        total += top + np.log(sum(np.exp(l - top) for l in logits)) - logits[labels[i]]
    return total / len(labels)


def arcface_cos(m, easy_margin=False):
    """ArcFace's true-class cosine through the angle itself (arccos), as the paper writes it."""

    def margined(cos):
        theta = np.arccos(cos)
        if easy_margin:
            return np.cos(theta + m) if cos > 0 else cos
        return np.cos(theta + m) if theta + m < np.pi else cos - m * np.sin(m)

    return margined


def cosface_cos(m):
    return lambda cos: cos - m


def mixed_batch(rng, n=8, classes=5, dim=4):
    """Labels, embeddings and weights with true-class angles spread over [0, pi], some past pi - 0.5."""
    labels = np.arange(n) % classes
    weights = rng.normal(size=(classes, dim))
    sign = np.where(np.arange(n) % 3 == 0, -1.0, 1.0)[:, None]  # every third sample near the opposite
    embeddings = sign * weights[labels] + 0.6 * rng.normal(size=(n, dim))
    return labels, embeddings, weights


def true_class_angles(labels, embeddings, weights):
    return np.array([np.arccos(np.clip(unit(e) @ unit(weights[y]), -1, 1)) for y, e in zip(labels, embeddings)])


@pytest.mark.parametrize("margin, scale, easy", [(0.5, 64.0, False), (0.5, 8.0, False), (0.3, 16.0, True), (0.0, 4.0, False)])
def test_arcface_matches_a_loop(margin, scale, easy, rng):
    labels, emb, weights = mixed_batch(rng)
    theta = true_class_angles(labels, emb, weights)
    assert np.any(theta + 0.5 > np.pi) and np.any(theta < np.pi / 2)  # both ArcFace branches are exercised
    expected = np_margin_softmax(labels, emb, weights, scale, arcface_cos(margin, easy))
    got = arcface_loss(labels, emb, weights, margin, scale, easy_margin=easy)
    assert got.dtype == tf.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    got32 = arcface_loss(labels, emb.astype(np.float32), weights.astype(np.float32), margin, scale, easy)
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-4)


@pytest.mark.parametrize("margin, scale", [(0.35, 64.0), (0.1, 8.0), (0.0, 1.0)])
def test_cosface_matches_a_loop(margin, scale, rng):
    labels, emb, weights = mixed_batch(rng)
    expected = np_margin_softmax(labels, emb, weights, scale, cosface_cos(margin))
    np.testing.assert_allclose(cosface_loss(labels, emb, weights, margin, scale).numpy(), expected, rtol=1e-10)
    got32 = cosface_loss(labels[:, None], emb.astype(np.float32), weights.astype(np.float32), margin, scale)
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-4)


# Four orthogonal classes; the embedding's cosine is 1 with its class, 0 with the others unless stated.
W = np.eye(4)


def test_embedding_on_its_class_weight_has_logit_s_cos_m():
    s, m = 4.0, 0.5
    on_class = np.array([[2.5, 0.0, 0.0, 0.0]])
    # logits (s cos m, 0, 0, 0): loss = log(1 + 3 exp(-s cos m)).
    np.testing.assert_allclose(arcface_loss([0], on_class, W, m, s).numpy(), np.log1p(3 * np.exp(-s * np.cos(m))), rtol=1e-12)
    # CosFace: logits (s (1 - m), 0, 0, 0).
    np.testing.assert_allclose(cosface_loss([0], on_class, W, m, s).numpy(), np.log1p(3 * np.exp(-s * (1 - m))), rtol=1e-12)
    # Margin 0 is the plain normalised softmax: logits (s, 0, 0, 0) for both.
    plain = np.log1p(3 * np.exp(-s))
    np.testing.assert_allclose(arcface_loss([0], on_class, W, 0.0, s).numpy(), plain, rtol=1e-12)
    np.testing.assert_allclose(cosface_loss([0], on_class, W, 0.0, s).numpy(), plain, rtol=1e-12)


def test_arcface_at_right_angle_and_opposite_by_hand():
    s, m = 2.0, 0.5
    # theta = pi/2 (the embedding is class 1's weight, labelled 0): logits (s cos(pi/2 + m) = -s sin m, s, 0, 0).
    t = -s * np.sin(m)
    expected = -np.log(np.exp(t) / (np.exp(t) + np.exp(s) + 2))
    np.testing.assert_allclose(arcface_loss([0], np.array([[0.0, 3.0, 0.0, 0.0]]), W, m, s).numpy(), expected, rtol=1e-12)
    # theta = pi > pi - m: the authors' fallback, logits (s (-1 - m sin m), 0, 0, 0).
    t = s * (-1.0 - m * np.sin(m))
    expected = -np.log(np.exp(t) / (np.exp(t) + 3))
    np.testing.assert_allclose(arcface_loss([0], np.array([[-1.0, 0.0, 0.0, 0.0]]), W, m, s).numpy(), expected, rtol=1e-12)


def test_arcface_easy_margin_leaves_obtuse_angles_alone():
    s, m = 2.0, 0.5
    obtuse = np.array([[-0.5, np.sqrt(0.75), 0.0, 0.0]])  # theta = 2 pi / 3 from class 0, cos = -0.5
    # Easy margin: cos theta_y <= 0 keeps logit s cos theta_y = -s/2; class 1 at cos = sqrt(0.75).
    logits = np.array([-0.5, np.sqrt(0.75), 0.0, 0.0]) * s
    expected = -np.log(np.exp(logits[0]) / np.sum(np.exp(logits)))
    np.testing.assert_allclose(arcface_loss([0], obtuse, W, m, s, easy_margin=True).numpy(), expected, rtol=1e-12)
    # Without it, theta + m = 2.59 < pi: logit s cos(2 pi / 3 + m).
    logits[0] = s * np.cos(2 * np.pi / 3 + m)
    expected = -np.log(np.exp(logits[0]) / np.sum(np.exp(logits)))
    np.testing.assert_allclose(arcface_loss([0], obtuse, W, m, s).numpy(), expected, rtol=1e-12)


def test_arcface_true_class_logit_never_increases_with_the_angle():
    # Class 0 along x, class 1 along z; the embedding turns from x (theta = 0) to -x (theta = pi) in the x-y plane,
    # so only the true-class logit changes: the loss must rise monotonically, fallback included.
    weights = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    angles = np.linspace(0.0, np.pi, 181)
    emb = np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)
    losses = [float(arcface_loss([0], emb[i : i + 1], weights, 0.5, 4.0)) for i in range(len(angles))]
    assert np.all(np.diff(losses) > 0)
    # Past pi - m the fallback is cos theta - m sin m, below cos(pi) = -1 at the switch (the authors' form).
    switch = np.searchsorted(angles, np.pi - 0.5, side="right")
    assert losses[switch] - losses[switch - 1] > 0.1


@pytest.mark.parametrize("loss", [arcface_loss, cosface_loss], ids=["arcface", "cosface"])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize(
    "vector", [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.3, -0.2, 0.9], [1e-3, 2e-3, -3e-3]], ids=["axis", "exact", "generic", "tiny"]
)
def test_gradient_is_finite_at_theta_zero_and_pi(loss, dtype, vector):
    weight = np.array([vector, [0.0, 0.0, 1.0], [0.5, -0.5, 0.1]])
    for sign, name in ((1.0, "theta=0"), (-1.0, "theta=pi")):
        emb = tf.Variable(sign * np.array([vector]), dtype=dtype)
        weights = tf.Variable(weight, dtype=dtype)
        with tf.GradientTape() as tape:
            value = loss([0], emb, weights, 0.5, 64.0)
        g_emb, g_weights = tape.gradient(value, [emb, weights])
        assert np.isfinite(value.numpy()), name
        assert np.all(np.isfinite(g_emb.numpy())) and np.all(np.isfinite(g_weights.numpy())), name
        assert np.any(g_weights.numpy() != 0), name  # the other classes still receive a gradient


def test_arcface_gradient_near_theta_zero_matches_finite_differences():
    # Slightly off the class weight (theta ~ 1e-3) the derivative of sin theta is large but the gradient is
    # the true one: compare with central differences of the float64 loss.
    weights = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    point = np.array([[1.0, 1e-3, 0.0]])
    var = tf.Variable(point)
    with tf.GradientTape() as tape:
        value = arcface_loss([0], var, weights, 0.5, 8.0)
    grad = tape.gradient(value, var).numpy()
    h = 1e-7
    for k in range(3):
        step = np.zeros_like(point)
        step[0, k] = h
        numeric = (float(arcface_loss([0], point + step, weights, 0.5, 8.0)) - float(arcface_loss([0], point - step, weights, 0.5, 8.0))) / (2 * h)
        np.testing.assert_allclose(grad[0, k], numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls, margin", [(ArcFaceLoss, 0.5), (CosFaceLoss, 0.35)])
def test_classes_use_normal_001_weights_and_their_function(cls, margin, rng):
    keras.utils.set_random_seed(0)
    head = cls(num_classes=300, embedding_dim=64)
    w = head.class_weights.numpy()
    assert head.margin == margin and head.scale == 64.0 and w.shape == (300, 64) and w.dtype == np.float32
    assert abs(w.std() - 0.01) < 3e-4 and abs(w.mean()) < 3e-4
    labels, emb = np.arange(6) % 300, rng.normal(size=(6, 64)).astype(np.float32)
    fn = arcface_loss if cls is ArcFaceLoss else cosface_loss
    np.testing.assert_allclose(head(labels, emb).numpy(), fn(labels, emb, w, margin, 64.0).numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"margin": -0.1}, "margin"), ({"margin": math.pi}, "margin"), ({"scale": 0.0}, "scale"), ({"scale": float("nan")}, "scale")],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ArcFaceLoss(3, 2, **kwargs)
    with pytest.raises(ValueError, match=match):
        arcface_loss([0], [[1.0, 0.0]], np.eye(2), **kwargs)
    if kwargs.get("margin") != math.pi:  # CosFace's margin is a cosine, not an angle: pi is allowed
        with pytest.raises(ValueError, match=match):
            CosFaceLoss(3, 2, **kwargs)
