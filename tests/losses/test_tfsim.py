"""TF Similarity's conventions (tfcontrast.losses.tfsim): distances, masked extremes, log(1 + sum exp)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.losses import reference
from tfcontrast.losses import tfsim


@pytest.mark.parametrize("distance", ["cosine", "l2", "sql2"])
def test_pairwise_and_rowwise_distances_match_a_loop(distance, rng):
    a = rng.normal(size=(5, 3)).astype(np.float32)
    b = rng.normal(size=(4, 3)).astype(np.float32)  # not normalised: cosine is 1 - <a, b>, clipped at 0
    got = tfsim.pairwise(tf.constant(a), tf.constant(b), distance).numpy()
    want = [[reference.tfsim_distance(u, v, distance) for v in b] for u in a]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    rows = tfsim.rowwise(tf.constant(a[:4]), tf.constant(b), distance).numpy()
    np.testing.assert_allclose(rows, [want[i][i] for i in range(4)], rtol=1e-5, atol=1e-5)


def test_cosine_is_not_normalised_as_in_tf_similarity():
    # <(2, 0), (1, 0)> = 2: 1 - 2 < 0 is clipped to 0; a normalised cosine distance would also be 0,
    # but <(0.5, 0), (1, 0)> = 0.5 gives 0.5 where the normalised distance is 0.
    d = tfsim.pairwise(tf.constant([[2.0, 0.0], [0.5, 0.0]]), tf.constant([[1.0, 0.0]]), "cosine").numpy()
    np.testing.assert_allclose(d[:, 0], [0.0, 0.5])


@pytest.mark.parametrize("name, canonical", [("cosine", "cosine"), ("L2", "l2"), (" euclidean ", "l2"),
                                             ("sql2", "sql2"), ("squared_euclidean", "sql2")])
def test_distance_names_and_aliases(name, canonical):
    assert tfsim.canonical_distance(name) == canonical


def test_unknown_distance_is_named():
    with pytest.raises(ValueError, match="distance.*'manhattan'"):
        tfsim.canonical_distance("manhattan")


def test_masked_extremes_follow_tf_similarity_first_index_and_fill():
    d = tf.constant([[3.0, 1.0, 5.0, 5.0], [2.0, 4.0, 0.5, 1.0]])
    mask = tf.constant([[True, False, True, True], [False, False, False, False]])
    for largest, fn in ((True, tfsim.masked_max), (False, tfsim.masked_min)):
        value, index = fn(d, mask)
        for i in range(2):
            row, chosen = d.numpy()[i].tolist(), [j for j in range(4) if mask.numpy()[i, j]]
            want_value, want_index = reference.extreme(row, chosen, largest)
            assert float(value[i]) == pytest.approx(want_value, abs=1e-7) and int(index[i]) == want_index
    # hand-derived: row 0 max over {3, 5, 5} is 5 at its first index 2; row 1 is empty: min(row) - 1e-6, index 0
    value, index = tfsim.masked_max(d, mask)
    assert index.numpy().tolist() == [2, 0] and float(value[1]) == pytest.approx(0.5 - 1e-6, abs=1e-7)


def test_fill_ignores_keys_that_do_not_exist():
    d = tf.constant([[3.0, 1.0, -7.0]])
    exists = tf.constant([[True, True, False]])
    value, _ = tfsim.masked_max(d, tf.zeros([1, 3], tf.bool), exists)
    assert float(value[0]) == pytest.approx(1.0 - 1e-6, abs=1e-7)


def test_log1p_sum_exp_matches_a_loop_and_is_finite_where_tf_similarity_gives_minus_inf():
    x = np.array([[0.5, -1.0, 2.0, 200.0], [-5.0, 3.0, 1.0, 0.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
    mask = np.array([[True, True, True, False], [True, False, False, False], [False] * 4])
    got = tfsim.log1p_sum_exp(tf.constant(x), tf.constant(mask)).numpy()
    want = [reference.log1p_sum_exp([float(v) for v, m in zip(row, mrow) if m]) for row, mrow in zip(x, mask)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # TF Similarity shifts by the *unmasked* row maximum: with 200 in row 0 (not in the mask) and -5 alone in
    # row 1's mask behind a row maximum of 3 that is fine, but a gap of ~100 underflows in float32:
    row = np.array([150.0, -5.0], np.float32)
    shift = row.max()
    with np.errstate(divide="ignore"):
        tfsim_value = np.log(np.exp(-shift) + np.exp(row[1] - shift)) + shift
    assert tfsim_value == -np.inf
    ours = tfsim.log1p_sum_exp(tf.constant(row[None]), tf.constant([[False, True]])).numpy()[0]
    assert ours == pytest.approx(math.log1p(math.exp(-5.0)), rel=1e-6)


def test_log1p_sum_exp_gradient_is_finite_for_empty_rows_and_huge_values():
    x = tf.Variable([[1e4, -1e4, 3.0], [1.0, 2.0, 3.0]])
    mask = tf.constant([[True, True, False], [False, False, False]])
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(tfsim.log1p_sum_exp(x, mask))
    grad = tape.gradient(value, x).numpy()
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)
