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

**Range.** ``cosine`` and :func:`l2_normalize` are scale-invariant and
handle every finite row, however large (a row is divided by its largest
entry before it is normalised). For ``euclidean``, ``sqeuclidean`` and
``inner_product`` every row must have a squared norm finite in the compute
dtype with room to spare: ``||x||^2 <= max / 8`` (float32: ``||x|| <=
6.5e18``; float64: ``||x|| <= 4.7e153``), so that ``||a||^2 + ||b||^2 - 2
<a, b>`` cannot overflow. Called eagerly (NumPy inputs, evaluation,
callbacks, a loss called outside ``fit``), :func:`pairwise_distances` checks
this and raises ``ValueError`` naming the argument (before, a row at 1e20
gave inf / NaN distances with zero gradient). Inside a ``tf.function``
(every ``fit`` step) nothing is checked, so compiled steps pay nothing: such
a row then gives inf or NaN distances (a non-finite loss, which
``keras.callbacks.TerminateOnNaN`` catches). NaN and inf inputs are not
refused here; they propagate into the result.

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
    in float16). Rows whose largest entry exceeds 1 in magnitude are first
    divided by it (the result does not depend on that scale, nor does its
    gradient), so every finite row normalises correctly, even one whose
    squared norm overflows the dtype (``||x|| = 1e30`` in float32).
    """
    x = tf.convert_to_tensor(x)
    floor_squared = _norm_floor_squared(x.dtype)
    x = validation.to_float(x, "x")
    return tf.math.l2_normalize(x / _row_scale(x, axis), axis=axis, epsilon=floor_squared)


def _row_scale(x: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """``max(max_j |x_j|, 1)`` per row, without gradient (normalisation is scale-invariant)."""
    return tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(x), axis=axis, keepdims=True), 1.0))


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
        ValueError: unknown metric, an input that is not rank 2, inputs whose
            dimensions differ, or (eagerly) a finite row whose squared norm
            overflows (module docstring, "Range").
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
    if metric != "cosine":  # cosine is scale-invariant: any finite row normalises (l2_normalize)
        if not self_distances:
            check_norm_range(b, "b")
        check_norm_range(a, "a")

    if metric == "inner_product":
        return -tf.matmul(a, b, transpose_b=True)
    if metric == "cosine":
        a_n = tf.math.l2_normalize(a / _row_scale(a), axis=-1, epsilon=floor_squared)
        b_n = a_n if self_distances else tf.math.l2_normalize(b / _row_scale(b), axis=-1, epsilon=floor_squared)
        d = tf.clip_by_value(1.0 - tf.matmul(a_n, b_n, transpose_b=True), 0.0, 2.0)
    else:
        d = squared_euclidean(a, b)
        if metric == "euclidean":
            d = safe_sqrt(d)
    if self_distances:
        d = tf.linalg.set_diag(d, tf.zeros(tf.shape(d)[:1], d.dtype))
    return d


def check_norm_range(x: tf.Tensor, name: str, axis: int = -1) -> None:
    """Eagerly: ``ValueError`` if a finite row of ``x`` has ``||x||^2 > max / 8`` of its dtype. In a graph: nothing.

    Rows holding NaN or inf are left alone (they propagate; see the module docstring).
    """
    if not tf.executing_eagerly():
        return
    limit = x.dtype.max / 8
    finite = tf.reduce_all(tf.math.is_finite(x), axis=axis)
    squared = tf.reduce_sum(tf.square(tf.where(tf.math.is_finite(x), x, tf.zeros_like(x))), axis=axis)
    too_large = finite & ~(squared <= limit)
    if bool(tf.reduce_any(too_large)):
        rows = tf.where(tf.reshape(too_large, [-1]))[:, 0].numpy()
        raise ValueError(
            f"`{name}` has {len(rows)} row(s) whose squared norm overflows {x.dtype.name} distances (||x|| must be "
            f"<= {float(limit) ** 0.5:.3g}), first rows {rows[:5].tolist()}; rescale the embeddings."
        )


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
