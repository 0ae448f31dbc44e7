"""Proxy-Anchor and ProxyNCA against float64 NumPy loops and hand-derived values."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.losses.reference import unit
from tfcontrast.losses import ProxyAnchorLoss, ProxyNCALoss, proxy_anchor_loss, proxy_nca_loss


def np_proxy_anchor(labels, embeddings, proxies, margin, alpha):
    """Kim et al. 2020, eq. 4: one loop over proxies, one over the batch."""
    num_classes = len(proxies)
    positive_total, negative_total, proxies_with_positives = 0.0, 0.0, 0
    for c in range(num_classes):
        positive_sum, negative_sum, has_positive = 0.0, 0.0, False
        for i in range(len(labels)):
            s = unit(embeddings[i]) @ unit(proxies[c])
            if labels[i] == c:
                positive_sum += np.exp(-alpha * (s - margin))
                has_positive = True
            else:
                negative_sum += np.exp(alpha * (s + margin))
        if has_positive:
            positive_total += np.log(1.0 + positive_sum)
            proxies_with_positives += 1
        negative_total += np.log(1.0 + negative_sum)
    return positive_total / proxies_with_positives + negative_total / num_classes


def np_proxy_nca(labels, embeddings, proxies, temperature):
    """Softmax over -||x^ - p^_j||^2 / T, positive in the denominator; mean over the batch."""
    total = 0.0
    for i in range(len(labels)):
        x = unit(embeddings[i])
        exps = []
        for c in range(len(proxies)):
            squared = np.sum((x - unit(proxies[c])) ** 2)
            exps.append(np.exp(-squared / temperature))
        total += -np.log(exps[labels[i]] / sum(exps))
    return total / len(labels)


LABELS = np.array([0, 0, 2, 2, 2, 4, 0])  # classes 1, 3 and 5 of 6 are absent from the batch


@pytest.mark.parametrize("margin, alpha", [(0.1, 32.0), (0.0, 1.0), (0.5, 8.0)])
def test_proxy_anchor_matches_a_loop(margin, alpha, rng):
    emb, proxies = rng.normal(size=(7, 5)), rng.normal(size=(6, 5))
    expected = np_proxy_anchor(LABELS, emb, proxies, margin, alpha)
    got64 = proxy_anchor_loss(LABELS, emb, proxies, margin, alpha)
    assert got64.dtype == tf.float64
    np.testing.assert_allclose(got64.numpy(), expected, rtol=1e-12)
    got32 = proxy_anchor_loss(LABELS, emb.astype(np.float32), proxies.astype(np.float32), margin, alpha)
    np.testing.assert_allclose(got32.numpy(), expected, rtol=2e-5)


@pytest.mark.parametrize("temperature", [1.0 / 9.0, 1.0, 0.05])
def test_proxy_nca_matches_a_loop(temperature, rng):
    emb, proxies = rng.normal(size=(7, 5)), rng.normal(size=(6, 5))
    expected = np_proxy_nca(LABELS, emb, proxies, temperature)
    np.testing.assert_allclose(proxy_nca_loss(LABELS, emb, proxies, temperature).numpy(), expected, rtol=1e-12)
    got32 = proxy_nca_loss(LABELS[:, None], emb.astype(np.float32), proxies.astype(np.float32), temperature)
    np.testing.assert_allclose(got32.numpy(), expected, rtol=2e-5)


def test_proxy_anchor_by_hand_orthogonal_proxies():
    alpha, margin = 4.0, 0.1
    proxies = np.eye(3)
    # One sample per class, each on its proxy: every proxy has one positive (s = 1) and two negatives (s = 0).
    value = proxy_anchor_loss([0, 1, 2], 3.0 * np.eye(3), proxies, margin, alpha)
    expected = np.log1p(np.exp(-alpha * (1 - margin))) + np.log1p(2 * np.exp(alpha * margin))
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)
    # A single sample of class 0: the positive term averages over the one proxy with a positive (|P+| = 1),
    # the negative term over all three proxies; proxy 0 has no negative (log 1 = 0).
    value = proxy_anchor_loss([0], np.array([[2.0, 0.0, 0.0]]), proxies, margin, alpha)
    expected = np.log1p(np.exp(-alpha * (1 - margin))) + 2.0 * np.log1p(np.exp(alpha * margin)) / 3.0
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)


def test_proxy_nca_by_hand_orthogonal_proxies():
    # On its proxy (d^2 = 0), three others at d^2 = 2: -log(1 / (1 + 3 exp(-2 / T))).
    for t in (1.0, 0.5):
        value = proxy_nca_loss([0], np.array([[5.0, 0.0, 0.0, 0.0]]), np.eye(4), temperature=t)
        np.testing.assert_allclose(value.numpy(), np.log1p(3 * np.exp(-2.0 / t)), rtol=1e-12)
    # Halfway between proxies 0 and 1 (d^2 = 2 - sqrt(2) to both), d^2 = 2 to proxies 2 and 3.
    d_near, d_far = 2.0 - np.sqrt(2.0), 2.0
    expected = -np.log(np.exp(-d_near) / (2 * np.exp(-d_near) + 2 * np.exp(-d_far)))
    np.testing.assert_allclose(proxy_nca_loss([1], np.array([[1.0, 1.0, 0.0, 0.0]]), np.eye(4), 1.0).numpy(), expected, rtol=1e-12)


def test_proxy_anchor_is_computed_in_log_space_for_large_alpha(rng):
    # alpha (1 + margin) = 220: exp overflows float32 (max ~ e^88), not float64; the float32 loss must be finite.
    emb, proxies = rng.normal(size=(7, 5)), rng.normal(size=(6, 5))
    expected = np_proxy_anchor(LABELS, emb, proxies, 0.1, 200.0)
    e32 = tf.Variable(emb.astype(np.float32))
    p32 = tf.Variable(proxies.astype(np.float32))
    with tf.GradientTape() as tape:
        value = proxy_anchor_loss(LABELS, e32, p32, 0.1, 200.0)
    grads = tape.gradient(value, [e32, p32])
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_proxy_anchor_gradient_pulls_positives_and_pushes_negatives():
    # Two classes, one sample of class 0 between both proxies: its gradient step moves it towards proxy 0.
    emb = tf.Variable([[1.0, 1.0]])
    proxies = tf.Variable([[1.0, 0.0], [0.0, 1.0]])
    with tf.GradientTape() as tape:
        value = proxy_anchor_loss([0], emb, proxies, 0.1, 32.0)
    g_emb, g_proxies = tape.gradient(value, [emb, proxies])
    step = -g_emb.numpy()[0]
    assert step[0] > 0 > step[1]
    # Proxy 0 (positive) is pulled up towards the sample; proxy 1 (negative) pushed away from it along x.
    assert -g_proxies.numpy()[0, 1] > 0 and -g_proxies.numpy()[1, 0] < 0


@pytest.mark.parametrize("cls, std", [(ProxyAnchorLoss, np.sqrt(2.0 / 200)), (ProxyNCALoss, 1.0 / 8.0)])
def test_proxies_start_as_in_the_papers_code(cls, std):
    keras.utils.set_random_seed(0)
    head = cls(num_classes=200, embedding_dim=64)
    proxies = head.proxies.numpy()
    assert head.proxies is head.class_weights and proxies.shape == (200, 64) and proxies.dtype == np.float32
    assert abs(proxies.std() - std) < 0.03 * std and abs(proxies.mean()) < 0.03 * std
    # Untruncated normal: about 0.27% of the values lie beyond 3 standard deviations (truncated: none).
    assert 0.001 < np.mean(np.abs(proxies) > 3 * std) < 0.006


def test_classes_compute_their_function_with_their_proxies(rng):
    emb = rng.normal(size=(7, 5)).astype(np.float32)
    anchor = ProxyAnchorLoss(6, 5, margin=0.2, alpha=16.0)
    nca = ProxyNCALoss(6, 5, temperature=0.25)
    np.testing.assert_allclose(
        anchor(LABELS, emb).numpy(), proxy_anchor_loss(LABELS, emb, anchor.proxies.numpy(), 0.2, 16.0).numpy(), rtol=1e-6
    )
    np.testing.assert_allclose(
        nca(LABELS, emb).numpy(), proxy_nca_loss(LABELS, emb, nca.proxies.numpy(), 0.25).numpy(), rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [({"margin": -0.1}, "margin"), ({"alpha": 0.0}, "alpha"), ({"temperature": 0.0}, "temperature")],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        if "temperature" in kwargs:
            ProxyNCALoss(3, 2, **kwargs)
        else:
            ProxyAnchorLoss(3, 2, **kwargs)
    with pytest.raises(ValueError, match=match):
        fn = proxy_nca_loss if "temperature" in kwargs else proxy_anchor_loss
        fn([0], [[1.0, 0.0]], np.eye(2), **kwargs)
