"""Pairwise distance matrices between embeddings.

Every metric follows one convention, used across the package (losses, the
in-graph lookup layer and the faiss index): **smaller is closer**.

=================  ===========================================  ==========
metric             d(a, b)                                      range
=================  ===========================================  ==========
``cosine``         1 - <a, b> / (||a|| ||b||)                   [0, 2]
``sqeuclidean``    ||a - b||^2                                  [0, inf)
``euclidean``      ||a - b||                                    [0, inf)
``inner_product``  -<a, b>  (negated so that smaller is closer)  (-inf, inf)
=================  ===========================================  ==========

The Euclidean distance has an infinite derivative at 0 (d sqrt(x)/dx at
x = 0); here its gradient is 0 wherever the squared distance is 0, so a batch
holding identical embeddings trains without NaN. float16 and bfloat16 inputs
are computed in float32 (mixed-precision safe); float64 stays float64.

Example:
    >>> import tfcontrast as tfc
    >>> a = [[1.0, 0.0], [0.0, 2.0]]
    >>> tfc.distances.pairwise_distances(a, metric="euclidean").numpy().round(3)
    array([[0.   , 2.236],
           [2.236, 0.   ]], dtype=float32)
"""

from __future__ import annotations

import tensorflow as tf

from tfcontrast import validation

METRICS = ("cosine", "sqeuclidean", "euclidean", "inner_product")

# Squared distances at or below this are treated as exactly 0 by `euclidean`,
# which keeps sqrt's derivative bounded (at most 0.5 / sqrt(1e-12) = 5e5).
_SQRT_FLOOR = 1e-12


def _norm_floor_squared(dtype: tf.DType) -> float:
    """Squared floor on ||x|| when normalising: the gradient at x = 0 is 1 / floor.

    float16 gets a floor of 1e-3 so that gradient (1e3) stays below float16's
    maximum, 65504, on its way back into half-precision activations; float32,
    float64 and bfloat16 (float32's range) get 1e-6.
    """
    return 1e-6 if dtype == tf.float16 else 1e-12


def l2_normalize(x, axis: int = -1) -> tf.Tensor:
    """``x / max(||x||, floor)`` computed in float32 for half inputs; a zero vector stays zero.

    The floor is 1e-6 (1e-3 for float16 inputs, so that the gradient at 0 fits
    in float16).
    """
    x = tf.convert_to_tensor(x)
    floor_squared = _norm_floor_squared(x.dtype)
    return tf.math.l2_normalize(validation.to_float(x, "x"), axis=axis, epsilon=floor_squared)


def pairwise_distances(a, b=None, metric: str = "cosine") -> tf.Tensor:
    """Distance matrix ``D[i, j] = d(a_i, b_j)`` for the metric named.

    Args:
        a: ``[n, dim]`` embeddings.
        b: ``[m, dim]`` embeddings, or ``None`` for ``b = a``. With ``b=None``
            the diagonal is exactly 0 for every metric but ``inner_product``
            (whose self-distance is ``-||a_i||^2``).
        metric: one of ``"cosine"``, ``"sqeuclidean"``, ``"euclidean"``,
            ``"inner_product"``.

    Returns:
        ``[n, m]`` float32 tensor (float64 for float64 inputs).

    Raises:
        ValueError: unknown metric, an input that is not rank 2, or inputs whose
            dimensions differ.
    """
    validation.check_choice(metric, METRICS, "metric")
    a = tf.convert_to_tensor(a)
    floor_squared = _norm_floor_squared(a.dtype)
    a = validation.to_float(a, "a")
    validation.check_rank(a, 2, "a")
    self_distances = b is None
    if self_distances:
        b = a
    else:
        b = tf.cast(validation.to_float(b, "b"), a.dtype)
        validation.check_rank(b, 2, "b")
        validation.check_same_dim(a, b, -1, ("a", "b"))

    if metric == "inner_product":
        return -tf.matmul(a, b, transpose_b=True)
    if metric == "cosine":
        a_n = tf.math.l2_normalize(a, axis=-1, epsilon=floor_squared)
        b_n = a_n if self_distances else tf.math.l2_normalize(b, axis=-1, epsilon=floor_squared)
        d = tf.clip_by_value(1.0 - tf.matmul(a_n, b_n, transpose_b=True), 0.0, 2.0)
    else:
        d = squared_euclidean(a, b)
        if metric == "euclidean":
            d = safe_sqrt(d)
    if self_distances:
        d = tf.linalg.set_diag(d, tf.zeros(tf.shape(d)[:1], d.dtype))
    return d


def squared_euclidean(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """||a_i||^2 + ||b_j||^2 - 2 <a_i, b_j>, clamped at 0 (cancellation can go negative)."""
    a_sq = tf.reduce_sum(tf.square(a), axis=1, keepdims=True)
    b_sq = tf.reduce_sum(tf.square(b), axis=1, keepdims=True)
    d = a_sq - 2.0 * tf.matmul(a, b, transpose_b=True) + tf.transpose(b_sq)
    return tf.maximum(d, 0.0)


def safe_sqrt(x: tf.Tensor) -> tf.Tensor:
    """sqrt(x) with value and gradient 0 where x <= 1e-12 (never inf * 0 = NaN).

    The inner ``where`` keeps sqrt's argument away from 0, so its derivative is
    finite; the outer one selects 0, so that derivative is multiplied by 0.
    """
    is_zero = x <= _SQRT_FLOOR
    root = tf.sqrt(tf.where(is_zero, tf.ones_like(x), x))
    return tf.where(is_zero, tf.zeros_like(x), root)
