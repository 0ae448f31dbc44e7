"""Issue 11, S9: pairwise distances on rows whose squared norm overflows float32."""

import numpy as np
import pytest
import tensorflow as tf

import tfcontrast as tfc

pairwise = tfc.distances.pairwise_distances


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "inner_product"])
def test_s9_eager_calls_refuse_rows_that_overflow(metric):
    # Before: norms of 1e20 gave inf / NaN euclidean distances with zero gradient.
    a = np.array([[1.0, 0.0], [1e20, 1e20]], np.float32)
    with pytest.raises(ValueError, match=r"`a` has 1 row\(s\) whose squared norm overflows float32 .* first rows \[1\]"):
        pairwise(a, metric=metric)
    with pytest.raises(ValueError, match=r"`b` has 1 row\(s\)"):
        pairwise(a[:1], a, metric=metric)


@pytest.mark.parametrize("compiled", [False, True])
def test_s9_cosine_and_normalisation_are_right_for_any_finite_magnitude(compiled):
    # Before: a row at 1e20 normalised to zero, so its cosine distance was 1 whatever its direction.
    a = tf.constant([[1.0, 0.0], [1e20, 1e20], [-1e30, 0.0]], tf.float32)
    call = tf.function if compiled else (lambda f: f)
    d = call(lambda x: pairwise(x, metric="cosine"))(a).numpy()
    np.testing.assert_allclose(d, [[0, 1 - 0.5**0.5, 2], [1 - 0.5**0.5, 0, 1 + 0.5**0.5], [2, 1 + 0.5**0.5, 0]], atol=1e-6)
    unit = call(tfc.distances.l2_normalize)(a).numpy()
    np.testing.assert_allclose(unit, [[1, 0], [0.5**0.5, 0.5**0.5], [-1, 0]], rtol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(a)
        total = tf.reduce_sum(tfc.distances.l2_normalize(a) * tf.constant([[0.3, 0.7]]))
    grad = tape.gradient(total, a).numpy()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[0], [0.0, 0.7], atol=1e-7)  # d(x/|x|)/dx at (1, 0), projected


def test_s9_the_largest_accepted_rows_give_finite_distances_and_gradients():
    a = tf.constant([[6e18, 0.0], [-6e18, 1.0], [0.0, 0.0]], tf.float32)
    for metric in ("euclidean", "sqeuclidean", "cosine", "inner_product"):
        with tf.GradientTape() as tape:
            tape.watch(a)
            d = pairwise(a, metric=metric)
            total = tf.reduce_sum(d / tf.reduce_max(tf.abs(d)))
        grad = tape.gradient(total, a)
        assert np.all(np.isfinite(d.numpy())) and np.all(np.isfinite(grad.numpy())), metric
    np.testing.assert_allclose(pairwise(a, metric="euclidean").numpy()[0, 1], 1.2e19, rtol=1e-6)
    # float64 has its own, much larger range.
    assert np.isfinite(pairwise(np.array([[1e20, 1e20]]), metric="euclidean").numpy()).all()


def test_s9_graphs_pay_nothing_and_keep_the_documented_result():
    a = tf.constant([[1.0, 0.0], [1e20, 1e20]], tf.float32)
    euclidean = tf.function(lambda x: pairwise(x, metric="euclidean"))(a).numpy()
    assert not np.isfinite(euclidean[0, 1])  # non-finite: a loss over it is non-finite, not silently finite
