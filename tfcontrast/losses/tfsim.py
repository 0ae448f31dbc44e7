"""TensorFlow Similarity's conventions, shared by its drop-in losses.

TensorFlow Similarity 0.17.1 (Keras 2 only) defines its losses on its own
distances and helpers; its drop-ins here (:class:`MultiSimilarityLoss`,
:class:`CircleLoss`, :class:`PNLoss`, :class:`SoftNearestNeighborLoss`) give
the same values because they follow the same definitions, written anew:

* **Distances**, by TF Similarity's names (case-insensitive, its aliases too):

  ==========  ==========================  =================================
  name        aliases                     d(a, b)
  ==========  ==========================  =================================
  ``cosine``                              ``max(1 - <a, b>, 0)``: no normalisation, the
                                          cosine distance of L2-normalised
                                          embeddings (as TF Similarity requires)
  ``l2``      ``euclidean``,              ``sqrt(||a||^2 - 2<a, b> + ||b||^2)``
              ``pythagorean``
  ``sql2``    ``sqeuclidean``,            ``max(||a||^2 - 2<a, b> + ||b||^2, 0)``
              ``squared_euclidean``
  ==========  ==========================  =================================

  The self-distance is not forced to 0 (TF Similarity computes it with the
  same formula). ``l2`` takes the square root with a zero gradient below
  1e-12 (TF Similarity: below 1e-18), so the two differ only for pairs closer
  than 1e-6.
* **Masked extremes** (:func:`masked_max`, :func:`masked_min`): the extreme over
  the mask and its first index; where the mask is empty, TF Similarity's fill:
  the row minimum - 1e-6 (for a max) or the row maximum + 1e-6 (for a min), and
  index 0.
* **Its "logsumexp"** is ``log(1 + sum_mask exp(x))`` (:func:`log1p_sum_exp`),
  computed here with a shift that never overflows or underflows (TF Similarity
  shifts by the unmasked row maximum, which gives ``-inf`` when the masked
  values lie ~100 below it in float32).
"""

from __future__ import annotations

import tensorflow as tf

from tfcontrast import distances
from tfcontrast.fields import Choice

# TF Similarity's names for the three distances its losses use, and their aliases.
DISTANCES = {
    "cosine": "cosine",
    "l2": "l2",
    "euclidean": "l2",
    "pythagorean": "l2",
    "sql2": "sql2",
    "sqeuclidean": "sql2",
    "squared_euclidean": "sql2",
}

NAMES = ("cosine", "l2", "sql2")
"""The canonical names (what a config's ``distance`` key takes)."""

DISTANCE_FIELD = Choice(NAMES, doc="cosine = max(1 - <a, b>, 0) of unit embeddings | l2 | sql2 (TF Similarity's names)")
"""The ``distance`` key of the drop-ins' registered ``loss`` sections (default: each constructor's)."""

_FILL = 1e-6  # TF Similarity's offset for the fill of an empty mask


def canonical_distance(distance: str, name: str = "distance") -> str:
    """``"cosine"``, ``"l2"`` or ``"sql2"`` for a TF Similarity distance name (case-insensitive)."""
    key = distance.lower().strip() if isinstance(distance, str) else distance
    if key not in DISTANCES:
        raise ValueError(
            f"`{name}` must be one of {tuple(DISTANCES)} (TensorFlow Similarity's names), got {distance!r}."
        )
    return DISTANCES[key]


def pairwise(queries: tf.Tensor, keys: tf.Tensor, distance: str) -> tf.Tensor:
    """``[n, m]`` TF Similarity distances from every query to every key (``distance`` canonical)."""
    if distance == "cosine":
        return tf.maximum(1.0 - tf.matmul(queries, keys, transpose_b=True), 0.0)
    squared = distances.squared_euclidean(queries, keys)
    return distances.safe_sqrt(squared) if distance == "l2" else squared


def rowwise(a: tf.Tensor, b: tf.Tensor, distance: str) -> tf.Tensor:
    """``[n]`` TF Similarity distances ``d(a_i, b_i)`` (the same formulas as :func:`pairwise`)."""
    inner = tf.reduce_sum(a * b, axis=1)
    if distance == "cosine":
        return tf.maximum(1.0 - inner, 0.0)
    squared = tf.maximum(tf.reduce_sum(tf.square(a), axis=1) - 2.0 * inner + tf.reduce_sum(tf.square(b), axis=1), 0.0)
    return distances.safe_sqrt(squared) if distance == "l2" else squared


def masked_max(d: tf.Tensor, mask: tf.Tensor, exists: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Row-wise ``(max over mask, its first index)``; empty rows: ``(row min - 1e-6, 0)``.

    ``exists`` (``[1, m]`` or ``[n, m]`` bool) limits the row minimum to the
    keys that exist (a memory's empty slots do not).
    """
    return _masked_extreme(d, mask, exists, largest=True)


def masked_min(d: tf.Tensor, mask: tf.Tensor, exists: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Row-wise ``(min over mask, its first index)``; empty rows: ``(row max + 1e-6, 0)``."""
    return _masked_extreme(d, mask, exists, largest=False)


def _masked_extreme(d, mask, exists, largest: bool):
    sign = 1.0 if largest else -1.0
    signed = sign * d
    lowest = tf.constant(-float("inf"), d.dtype)
    candidates = tf.where(mask, signed, lowest)
    # One extra column of -inf keeps argmax's axis non-empty (an empty batch); it never wins a non-empty row.
    padded = tf.concat([candidates, tf.fill([tf.shape(d)[0], 1], lowest)], axis=1)
    index = tf.argmax(padded, axis=1, output_type=tf.int32)
    value = sign * tf.gather(tf.concat([signed, tf.zeros_like(padded[:, :1])], axis=1), index, batch_dims=1)
    present = signed if exists is None else tf.where(exists, signed, -lowest)
    fill = sign * (tf.reduce_min(present, axis=1) - _FILL)  # min - 1e-6 for a max, max + 1e-6 for a min
    has_any = tf.reduce_any(mask, axis=1)
    return tf.where(has_any, value, fill), tf.where(has_any, index, tf.zeros_like(index))


def log1p_sum_exp(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Row-wise ``log(1 + sum_{j in mask} exp(x_ij))``: 0 for an empty row, finite value and gradient.

    Shifted by ``c = max(0, max_mask x)`` (no gradient): ``c + log(exp(-c) +
    sum exp(x - c))``, whose sum lies in [1, m + 1].
    """
    lowest = tf.constant(-float("inf"), x.dtype)
    masked = tf.where(mask, x, lowest)
    shift = tf.stop_gradient(tf.maximum(tf.reduce_max(masked, axis=1, keepdims=True), 0.0))
    terms = tf.where(mask, tf.exp(tf.where(mask, x, shift) - shift), tf.zeros_like(x))
    return tf.squeeze(shift, 1) + tf.math.log(tf.exp(-tf.squeeze(shift, 1)) + tf.reduce_sum(terms, axis=1))


def masked_logsumexp(x: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Row-wise ``(log sum_{j in mask} exp(x_ij), row has an entry)``; empty rows give 0 (finite gradient)."""
    has_any = tf.reduce_any(mask, axis=1)
    masked_max_x = tf.reduce_max(tf.where(mask, x, tf.constant(-float("inf"), x.dtype)), axis=1, keepdims=True)
    shift = tf.stop_gradient(tf.where(has_any[:, None], masked_max_x, tf.zeros_like(masked_max_x)))
    terms = tf.where(mask, tf.exp(tf.where(mask, x, shift) - shift), tf.zeros_like(x))
    total = tf.reduce_sum(terms, axis=1)
    lse = tf.squeeze(shift, 1) + tf.math.log(tf.where(has_any, total, tf.ones_like(total)))
    return lse, has_any

