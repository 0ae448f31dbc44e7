"""Soft nearest neighbour loss: how much of each point's soft neighbourhood is its own class.

Frosst, Papernot and Hinton, "Analyzing and Improving Representations with
the Soft Nearest Neighbor Loss", ICML 2019. With distance d, temperature T,
positives P(i) (same label, not i) and every other candidate K(i):

    r_i = sum_{p in P(i)} exp(-d_ip / T) / sum_{k in K(i)} exp(-d_ik / T)
    L_i = -log(eps + r_i)         (eps = 1e-9, as TF Similarity adds; 0 if P(i) is empty)
    L   = mean_i L_i              (over every anchor of the global batch)

Computed in log space: ``log r_i = logsumexp_P(-d/T) - logsumexp_K(-d/T)``
and ``L_i = -logaddexp(log eps, log r_i)``, so the loss is finite and exact
for any temperature. TensorFlow Similarity 0.17.1 exponentiates first: with
``"sql2"`` distances of a few units and ``T = 0.01``, every ``exp(-d/T)``
underflows to 0 and its loss is ``0/0 = NaN``; this drop-in returns the
value the formula gives (at most ``-log(1e-9) = 20.72`` per anchor, because of
the eps). Otherwise same argument names, defaults and values as
``tensorflow_similarity.losses.SoftNearestNeighborLoss``; labels are compared
exactly, and under a strategy the candidates are the global batch.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.fields import Float
from tfcontrast.losses import base, tfsim, xbm
from tfcontrast.registry import register_loss

EPS = 1e-9  # TF Similarity's floor inside the log


def soft_nearest_neighbor_loss(labels, embeddings, distance: str = "sql2", temperature: float = 1.0) -> tf.Tensor:
    """Soft nearest neighbour loss (formula in the module docstring); scalar float32.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids.
        embeddings: ``[batch, dim]`` embeddings.
        distance: ``"sql2"`` (default), ``"l2"`` or ``"cosine"``.
        temperature: T > 0.

    Example:
        >>> emb = [[0.0, 0.0], [0.1, 0.0], [3.0, 0.0], [3.1, 0.0]]
        >>> float(soft_nearest_neighbor_loss([0, 0, 1, 1], emb, temperature=0.01)) < 1e-6  # classes far apart
        True
    """
    arguments = _check_arguments(distance, temperature)
    return soft_nearest_neighbor_from_candidates(base.anchor_batch(labels, embeddings), *arguments)


@base.zero_for_empty_batch
def soft_nearest_neighbor_from_candidates(candidates: base.Candidates, distance, temperature) -> tf.Tensor:
    """:func:`soft_nearest_neighbor_loss` of the anchors of ``candidates`` against its keys."""
    d = tfsim.pairwise(candidates.embeddings, candidates.keys, tfsim.canonical_distance(distance))
    logits = -(d / temperature)
    positive, _ = candidates.masks()
    others = ~candidates.is_self()
    exists = candidates.exists()
    if exists is not None:
        others = others & exists
    lse_positive, has_positive = tfsim.masked_logsumexp(logits, positive)
    lse_others, _ = tfsim.masked_logsumexp(logits, others)
    log_ratio = lse_positive - lse_others
    per_anchor = -_logaddexp(tf.constant(math.log(EPS), d.dtype), log_ratio)
    per_anchor = tf.where(has_positive, per_anchor, tf.zeros_like(per_anchor))
    anchors = tf.cast(tf.shape(d)[0], d.dtype)
    return candidates.finish(distribute.replica_share(tf.reduce_sum(per_anchor), anchors))


def _logaddexp(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """``log(exp(a) + exp(b))`` without overflow."""
    high = tf.maximum(a, b)
    return high + tf.math.log1p(tf.exp(-tf.abs(a - b)))


def _check_arguments(distance, temperature):
    tfsim.canonical_distance(distance)
    return distance, validation.check_positive(temperature, "temperature")


@keras.saving.register_keras_serializable(package="tfcontrast")
class SoftNearestNeighborLoss(base.SimilarityLoss):
    """Soft nearest neighbour loss (Frosst et al., ICML 2019), drop-in for TF Similarity's.

    Called on ``(labels, embeddings)``; formula and the difference (finite
    where TF Similarity's underflows to NaN) in
    :mod:`tfcontrast.losses.soft_nearest_neighbor`.

    Args:
        distance: ``"sql2"`` (default), ``"l2"`` or ``"cosine"``.
        temperature: T > 0 (default 1.0).

    Raises:
        ValueError: an unknown distance or ``temperature <= 0``.

    Example:
        >>> loss = SoftNearestNeighborLoss(distance="sql2", temperature=0.01)
        >>> bool(tf.math.is_finite(loss([0, 0, 1, 1], [[0.0, 0.0], [2.0, 0.0], [5.0, 0.0], [7.0, 0.0]])))
        True
    """

    function = staticmethod(soft_nearest_neighbor_loss)
    from_candidates = staticmethod(soft_nearest_neighbor_from_candidates)

    def __init__(self, distance: str = "sql2", temperature: float = 1.0, name: str = "soft_nearest_neighbor_loss", **kwargs):
        distance, temperature = _check_arguments(distance, temperature)
        super().__init__(name=name, distance=distance, temperature=temperature, **kwargs)


register_loss(
    "soft_nearest_neighbor",
    SoftNearestNeighborLoss,
    inputs="labels",
    summary="soft nearest neighbour loss (Frosst et al., ICML 2019), TF Similarity's SoftNearestNeighborLoss",
    fields=xbm.memory_fields({
        "distance": tfsim.DISTANCE_FIELD,
        "temperature": Float(doc="temperature T of exp(-d / T), > 0", within="(0, inf)"),
    }),
    build=xbm.with_memory(SoftNearestNeighborLoss),
)
