"""NpairsLoss / NpairsMultilabelLoss: TF Addons 0.23's values, its own test example included."""

import numpy as np
import pytest
import tensorflow as tf

from tests.losses import reference
from tfcontrast import losses

# TF Addons' tests (tensorflow_addons/losses/tests/npairs_test.py): batch 4, hidden size 2.
F = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], np.float32)
SIMILARITY = F @ F.T
MULTI_HOT = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]], np.int64)


def test_tf_addons_unweighted_example_gives_0_253856():
    assert float(losses.NpairsLoss()(np.array([0, 1, 2, 3], np.int64), SIMILARITY)) == pytest.approx(0.253856, abs=1e-6)
    assert float(losses.npairs_loss([0, 1, 2, 3], SIMILARITY)) == pytest.approx(0.253856, abs=1e-6)


def test_tf_addons_single_label_multilabel_example_gives_0_253856_dense_and_sparse():
    one_hot = np.eye(4, dtype=np.int64)
    loss = losses.NpairsMultilabelLoss()
    assert float(loss(one_hot, SIMILARITY)) == pytest.approx(0.253856, abs=1e-6)
    assert float(loss(tf.sparse.from_dense(one_hot), SIMILARITY)) == pytest.approx(0.253856, abs=1e-6)


def test_tf_addons_multilabel_example_gives_1_420522_dense_and_sparse():
    loss = losses.NpairsMultilabelLoss()
    assert float(loss(MULTI_HOT, SIMILARITY)) == pytest.approx(1.420522, abs=1e-6)
    assert float(loss(tf.sparse.from_dense(MULTI_HOT), SIMILARITY)) == pytest.approx(1.420522, abs=1e-6)
    assert reference.npairs_multilabel(MULTI_HOT, SIMILARITY) == pytest.approx(1.420522, abs=1e-6)


@pytest.mark.parametrize("n, classes", [(6, 6), (10, 3), (9, 2)])
def test_npairs_matches_the_loop_reference(n, classes, rng):
    labels = rng.integers(0, classes, n)
    logits = (rng.normal(size=(n, n)) * 2).astype(np.float32)
    np.testing.assert_allclose(float(losses.npairs_loss(labels, logits)), reference.npairs(labels, logits), rtol=1e-5)


@pytest.mark.parametrize("n, classes", [(6, 4), (11, 7)])
def test_multilabel_matches_the_loop_reference(n, classes, rng):
    multi_hot = (rng.uniform(size=(n, classes)) < 0.35).astype(np.float32)
    multi_hot[:, 0] = np.maximum(multi_hot[:, 0], rng.uniform(size=n) < 0.5)
    logits = (rng.normal(size=(n, n)) * 2).astype(np.float32)
    want = reference.npairs_multilabel(multi_hot, logits)
    np.testing.assert_allclose(float(losses.npairs_multilabel_loss(multi_hot, logits)), want, rtol=1e-5)


def test_rows_without_labels_are_left_out_where_tf_addons_gives_nan():
    multi_hot = MULTI_HOT.copy()
    multi_hot[3] = 0  # no label: TF Addons divides 0 by 0
    got = float(losses.npairs_multilabel_loss(multi_hot, SIMILARITY))
    assert np.isfinite(got)
    assert got == pytest.approx(reference.npairs_multilabel(multi_hot, SIMILARITY), rel=1e-6)


def test_large_int64_labels_stay_distinct():
    labels = np.array([2**24, 2**24 + 1, 2**24 + 2, 2**24 + 3], np.int64)  # one float32 value for TF Addons
    assert float(losses.NpairsLoss()(labels, SIMILARITY)) == pytest.approx(0.253856, abs=1e-6)


def test_gradient_of_the_logits_is_softmax_minus_target():
    logits = tf.Variable(SIMILARITY)
    with tf.GradientTape() as tape:
        value = losses.npairs_loss([0, 0, 1, 2], logits)
    target = np.array([[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    softmax = np.exp(SIMILARITY) / np.exp(SIMILARITY).sum(1, keepdims=True)
    np.testing.assert_allclose(tape.gradient(value, logits).numpy(), (softmax - target) / 4, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.npairs_loss([0, 1, 2], SIMILARITY), "3 entries but the embeddings hold 4"),
        (lambda: losses.npairs_loss([0, 1, 2, 3], SIMILARITY[:, :3]), "y_pred.*3 columns"),
        (lambda: losses.npairs_loss([0, 1, 2, 3], SIMILARITY[0]), "y_pred.*rank 2"),
        (lambda: losses.npairs_multilabel_loss(MULTI_HOT * 2, SIMILARITY), "0 or 1"),
        (lambda: losses.npairs_multilabel_loss(MULTI_HOT[:3], SIMILARITY), "y_true.*y_pred"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
