"""PNLoss: TF Similarity 0.17.1's mining rules and values, against a loop."""

import math

import numpy as np
import pytest

from tests.losses import reference
from tfcontrast import losses


@pytest.mark.parametrize("positive", ["hard", "easy"])
@pytest.mark.parametrize("negative", ["hard", "semi-hard", "easy"])
@pytest.mark.parametrize("margin", [None, 0.3])
@pytest.mark.parametrize("distance", ["cosine", "l2", "sql2"])
def test_matches_the_loop_reference(positive, negative, margin, distance, rng):
    labels = rng.integers(0, 3, 12)
    labels[:2] = [7, 8]  # two anchors without positives: TF Similarity's fill rule decides their terms
    if distance == "cosine":
        x = rng.normal(size=(12, 4))
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    else:
        x = rng.integers(-3, 4, size=(12, 3)).astype(np.float32)  # exact in float32, self-distances exactly 0
    loss = losses.PNLoss(distance, positive_mining_strategy=positive, negative_mining_strategy=negative, margin=margin)
    want = reference.pn(labels, x, distance, positive, negative, margin)
    np.testing.assert_allclose(float(loss(labels, x)), want, rtol=1e-5, atol=1e-6)


def test_hand_derived_semi_hard_hinge():
    # 1-D points 0, 1, 1.5, 4 (labels 0, 0, 1, 1), "l2", hard positives, semi-hard negatives, margin 1.
    # anchor 0: p = 1 (d 1); negatives farther than 1: {1.5, 4} -> n = 1.5 (d 1.5); d(p, n) = 0.5 -> 1 - 0.5 + 1 = 1.5
    # anchor 1: p = 0 (d 1); farther than 1: {3} -> n = 4 (d 3); d(p, n) = 4 -> min 3 -> 1 - 3 + 1 < 0 -> 0
    # anchor 2: p = 4 (d 2.5); none farther -> farthest negative 0 (d 1.5); d(p, n) = 4 -> 2.5 - 1.5 + 1 = 2
    # anchor 3: p = 1.5 (d 2.5); farther: {4, 3} -> n = 1 (d 3); d(p, n) = 0.5 -> 2.5 - 0.5 + 1 = 3
    x = [[0.0], [1.0], [1.5], [4.0]]
    assert float(losses.pn_loss([0, 0, 1, 1], x, distance="l2", margin=1.0)) == pytest.approx(6.5 / 4)
    soft = (math.log1p(math.exp(0.5)) + math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0)) + math.log1p(math.exp(2.0))) / 4
    assert float(losses.pn_loss([0, 0, 1, 1], x, distance="l2")) == pytest.approx(soft, rel=1e-6)


def test_degenerate_batches_give_zero_unlike_tf_similaritys_fill_values(rng):
    x = rng.normal(size=(4, 3)).astype(np.float32)
    for labels in ([0, 1, 2, 3], [5, 5, 5, 5]):
        assert float(losses.PNLoss(distance="l2")(labels, x)) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(positive_mining_strategy="semi-hard"), "positive_mining_strategy"),
     (dict(negative_mining_strategy="all"), "negative_mining_strategy"),
     (dict(margin=-1.0), "margin"), (dict(distance="snr"), "distance")],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        losses.PNLoss(**kwargs)
