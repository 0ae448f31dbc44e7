"""MultiSimilarityLoss: TF Similarity 0.17.1's values, checked against loops and the paper."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.losses import reference
from tfcontrast import losses


def unit_rows(rng, n, dim):
    x = rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("distance", ["cosine", "l2", "sql2"])
@pytest.mark.parametrize(
    "params",
    [dict(), dict(alpha=1.0, beta=10.0, epsilon=0.5, lmda=0.3, center=0.8), dict(epsilon=2.0, beta=5.0)],
    ids=["defaults", "custom", "wide-mining"],
)
@pytest.mark.parametrize("n, classes", [(8, 2), (13, 4)])
def test_matches_the_loop_reference(distance, params, n, classes, rng):
    labels = rng.integers(0, classes, n)
    labels[-1] = classes + 5  # an anchor without positives
    x = unit_rows(rng, n, 5)
    got = float(losses.MultiSimilarityLoss(distance=distance, **params)(labels, x))
    want = reference.multisimilarity(labels, x, distance=distance, **params)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_cosine_with_center_1_is_the_papers_similarity_form(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 10)
    x = unit_rows(rng, 10, 4)
    got = float(losses.multisimilarity_loss(labels, x, epsilon=0.3))
    np.testing.assert_allclose(got, reference.multisimilarity_paper(labels, x, epsilon=0.3), rtol=1e-5, atol=1e-7)


def test_hand_derived():
    # 1-D points 0, 1, 1.5, 4 (labels 0, 0, 1, 1), "l2", epsilon 1, alpha 2, beta 40, lmda 0.5, center 1.
    # anchor 0: P' = {d 1} (1 > 1.5 - 1), N' = {1.5} (< 1 + 1)           -> ½ log(1+e^1) + log(1+e^-40)/40
    # anchor 1: P' = {1},               N' = {0.5} (3 is not < 2)          -> ½ log(1+e^1) + log(1+e^0)/40
    # anchor 2: P' = {2.5},             N' = {1.5, 0.5}                    -> ½ log(1+e^4) + log(1+e^-40+e^0)/40
    # anchor 3: P' = {2.5} (> 3 - 1),   N' = {3} (< 3.5; 4 is not)         -> ½ log(1+e^4) + log(1+e^-100)/40
    want = (
        0.5 * math.log1p(math.e) + math.log1p(math.exp(-40)) / 40
        + 0.5 * math.log1p(math.e) + math.log(2) / 40
        + 0.5 * math.log1p(math.exp(4)) + math.log(2 + math.exp(-40)) / 40
        + 0.5 * math.log1p(math.exp(4)) + math.log1p(math.exp(-100)) / 40
    ) / 4
    got = losses.multisimilarity_loss([0, 0, 1, 1], [[0.0], [1.0], [1.5], [4.0]], distance="l2", epsilon=1.0)
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(1.341517, abs=1e-6)


def test_pairs_mined_away_give_zero_and_the_loss_separates_classes(rng):
    emb = tf.math.l2_normalize([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.05, 0.99]], axis=1)
    # well separated: no positive is farther than the nearest negative - epsilon: every anchor is mined away
    assert float(losses.multisimilarity_loss([0, 0, 1, 1], emb)) == 0.0
    assert float(losses.multisimilarity_loss([0, 1, 0, 1], emb)) > 1.0


def test_finite_for_large_l2_distances_where_tf_similarity_gives_minus_inf():
    # distances ~100: TF Similarity's shift by the unmasked row max (alpha * 100) underflows exp(-shift)
    x = np.array([[0.0], [0.5], [100.0], [100.5]], np.float32)
    got = float(losses.multisimilarity_loss([0, 0, 1, 1], x, distance="l2", epsilon=200.0))
    want = reference.multisimilarity([0, 0, 1, 1], x, distance="l2", epsilon=200.0)
    assert np.isfinite(got) and got == pytest.approx(want, rel=1e-5)


def test_gradient_matches_finite_differences(rng):
    labels = np.array([0, 0, 0, 1, 1, 2, 2])
    x = unit_rows(rng, 7, 3).astype(np.float64)
    loss = losses.MultiSimilarityLoss(epsilon=0.5, beta=10.0)
    var = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = loss.call(labels, var)
    grad = tape.gradient(value, var).numpy()
    eps = 1e-6
    numeric = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            up, down = x.copy(), x.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (reference.multisimilarity(labels, up, epsilon=0.5, beta=10.0)
                             - reference.multisimilarity(labels, down, epsilon=0.5, beta=10.0)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(distance="manhattan"), "distance"), (dict(alpha=0.0), "alpha"), (dict(beta=-1.0), "beta"),
     (dict(epsilon=-0.1), "epsilon"), (dict(lmda=float("nan")), "lmda"), (dict(center=float("inf")), "center")],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        losses.MultiSimilarityLoss(**kwargs)
