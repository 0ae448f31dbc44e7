import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import distances


def reference_distance(u, v, metric):
    """One distance, written from the definitions with explicit loops (float64)."""
    dot = sum(float(x) * float(y) for x, y in zip(u, v))
    if metric == "inner_product":
        return -dot
    if metric == "cosine":
        nu = max(np.sqrt(sum(float(x) ** 2 for x in u)), 1e-6)
        nv = max(np.sqrt(sum(float(y) ** 2 for y in v)), 1e-6)
        return 1.0 - dot / (nu * nv)
    sq = sum((float(x) - float(y)) ** 2 for x, y in zip(u, v))
    return sq if metric == "sqeuclidean" else np.sqrt(sq)


def reference_matrix(a, b, metric):
    return np.array([[reference_distance(u, v, metric) for v in b] for u in a])


@pytest.mark.parametrize("metric", distances.METRICS)
@pytest.mark.parametrize("n, m, dim", [(1, 1, 1), (5, 3, 4), (9, 12, 16)])
def test_matches_loop_reference(metric, n, m, dim, rng):
    a = rng.normal(size=(n, dim)).astype(np.float32)
    b = rng.normal(size=(m, dim)).astype(np.float32)
    got = distances.pairwise_distances(a, b, metric=metric).numpy()
    assert got.shape == (n, m) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_matrix(a, b, metric), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean", "euclidean"])
def test_self_distances_have_exact_zero_diagonal(metric, rng):
    a = rng.normal(size=(6, 5)).astype(np.float32) * 100
    d = distances.pairwise_distances(a, metric=metric).numpy()
    assert np.all(np.diag(d) == 0.0)
    np.testing.assert_allclose(d, d.T, rtol=1e-5)
    np.testing.assert_allclose(d, reference_matrix(a, a, metric) * (1 - np.eye(6)), rtol=1e-5, atol=1e-3)


def test_hand_values():
    # a = (3, 4), b = (0, 0), (3, 0):
    #   euclidean: 5, 4;  sqeuclidean: 25, 16;  inner product: -0, -9;
    #   cosine to (3, 0): 1 - 9 / (5 * 3) = 0.4;  to the zero vector: 1 - 0 = 1.
    a = [[3.0, 4.0]]
    b = [[0.0, 0.0], [3.0, 0.0]]
    pd = distances.pairwise_distances
    np.testing.assert_allclose(pd(a, b, "euclidean").numpy(), [[5.0, 4.0]])
    np.testing.assert_allclose(pd(a, b, "sqeuclidean").numpy(), [[25.0, 16.0]])
    np.testing.assert_allclose(pd(a, b, "inner_product").numpy(), [[0.0, -9.0]])
    np.testing.assert_allclose(pd(a, b, "cosine").numpy(), [[1.0, 0.4]], rtol=1e-6)


def test_euclidean_gradient_is_finite_and_zero_at_zero_distance():
    x = tf.Variable([[1.0, 2.0], [1.0, 2.0], [4.0, 6.0]])
    with tf.GradientTape() as tape:
        d = distances.pairwise_distances(x, metric="euclidean")
        total = tf.reduce_sum(d)
    grad = tape.gradient(total, x).numpy()
    assert np.all(np.isfinite(grad))
    # Only the pairs at distance 5 pull: d/dx0 of 2 * (|x0 - x2|) = 2 * (x0 - x2) / 5.
    np.testing.assert_allclose(grad[0], 2 * np.array([-3.0, -4.0]) / 5, rtol=1e-6)
    np.testing.assert_allclose(grad[2], 2 * 2 * np.array([3.0, 4.0]) / 5, rtol=1e-6)


@pytest.mark.parametrize("metric", distances.METRICS)
def test_zero_and_identical_embeddings_have_finite_gradients(metric):
    x = tf.Variable(tf.zeros([4, 3]))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(distances.pairwise_distances(x, x + 0.0, metric=metric))
    assert np.all(np.isfinite(tape.gradient(total, x).numpy()))


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("metric", distances.METRICS)
def test_half_precision_is_computed_in_float32(dtype, metric, rng):
    a = rng.normal(size=(4, 8)).astype(np.float32)
    got = distances.pairwise_distances(tf.cast(a, dtype), metric=metric)
    assert got.dtype == tf.float32
    exact = distances.pairwise_distances(tf.cast(tf.cast(a, dtype), tf.float32), metric=metric)
    np.testing.assert_array_equal(got.numpy(), exact.numpy())


def test_compiles_with_xla(rng):
    a = rng.normal(size=(5, 3)).astype(np.float32)
    compiled = tf.function(lambda x: distances.pairwise_distances(x, metric="euclidean"), jit_compile=True)
    np.testing.assert_allclose(compiled(a).numpy(), distances.pairwise_distances(a, metric="euclidean").numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(a=np.ones((2, 3)), metric="manhattan"), "metric"),
        (dict(a=np.ones(3)), r"`a`.*rank 2.*\(3,\)"),
        (dict(a=np.ones((2, 3)), b=np.ones((2, 4))), r"`a` and `b`.*\(2, 3\).*\(2, 4\)"),
        (dict(a=np.ones((2, 3)), b=np.ones((2, 3, 1))), r"`b`.*rank 2"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distances.pairwise_distances(**kwargs)
