"""CircleLoss: TF Similarity 0.17.1's values, against a loop and the paper's definitions."""

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
@pytest.mark.parametrize("gamma, margin", [(80.0, 0.4), (16.0, 0.25), (1.0, 0.0)])
def test_matches_the_loop_reference(distance, gamma, margin, rng):
    labels = rng.integers(0, 3, 11)
    labels[0] = 9  # no positive: left out of the sum, counted in the mean
    x = unit_rows(rng, 11, 4)
    got = float(losses.CircleLoss(distance=distance, gamma=gamma, margin=margin)(labels, x))
    want = reference.circle(labels, x, distance=distance, gamma=gamma, margin=margin)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_weights_and_margins_are_the_papers_on_cosine_similarities(seed):
    """Sun et al. eq. 4-8 with O_p = 1 + m, O_n = -m, D_p = 1 - m, D_n = m; TF Similarity adds the two logs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 9)
    x = unit_rows(rng, 9, 3)
    terms = reference.circle_paper_terms(labels, x, gamma=2.0, margin=0.25)
    valid = [i for i in range(9) if any(labels[j] == labels[i] for j in range(9) if j != i)
             and any(labels[j] != labels[i] for j in range(9))]
    tf_similarity_form = sum(math.log1p(terms[i][0]) + math.log1p(terms[i][1]) for i in valid) / 9
    paper_form = sum(math.log1p(terms[i][0] * terms[i][1]) for i in valid) / 9
    got = float(losses.circle_loss(labels, x, gamma=2.0, margin=0.25))
    np.testing.assert_allclose(got, tf_similarity_form, rtol=1e-5)
    assert got - paper_form > 0.05  # the documented difference: log(1+a) + log(1+b) > log(1+ab)


def test_hand_derived():
    # 1-D points 0, 0.5 (class 0), 1 (class 1), "l2", gamma 1, margin 0.4.
    # anchor 0: positive d 0.5: a_p = 0.9, l_p = -0.9 (0.4 - 0.5) = 0.09; negative d 1: a_n = 0.4, l_n = 0.4 (0.6 - 1) = -0.16
    # anchor 1: positive d 0.5 -> l_p = 0.09; negative d 0.5: a_n = 0.9, l_n = 0.9 (0.6 - 0.5) = 0.09
    # anchor 2: no positive -> 0. Mean over 3 anchors.
    want = (math.log1p(math.exp(0.09)) + math.log1p(math.exp(-0.16)) + 2 * math.log1p(math.exp(0.09))) / 3
    got = losses.circle_loss([0, 0, 1], [[0.0], [0.5], [1.0]], distance="l2", gamma=1.0, margin=0.4)
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_large_gamma_is_finite_and_the_loss_separates_classes():
    emb = tf.math.l2_normalize([[1.0, 0.0], [0.95, 0.05], [0.0, 1.0], [0.05, 0.95]], axis=1)
    good, bad = float(losses.circle_loss([0, 0, 1, 1], emb)), float(losses.circle_loss([0, 1, 0, 1], emb))
    assert np.isfinite(bad) and good < 1e-3 < bad


@pytest.mark.parametrize("kwargs, match", [(dict(distance="ip"), "distance"), (dict(gamma=0.0), "gamma"),
                                           (dict(margin=-0.1), "margin")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        losses.CircleLoss(**kwargs)
