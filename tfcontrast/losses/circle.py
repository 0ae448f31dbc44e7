"""Circle loss: pair similarities re-weighted by how far each is from its optimum.

Sun, Cheng, Zhang, Zhang, Zheng, Wang and Wei, "Circle Loss: A Unified
Perspective of Pair Similarity Optimization", CVPR 2020. Written, as
TensorFlow Similarity 0.17.1 writes it, on a distance d (cosine: d = 1 - s)
with margin m and scale gamma; for anchor i with positives P(i) and
negatives N(i):

    weights:  a_p = max(m + d_ip, 0),           a_n = max(1 + m - d_in, 0)
    logits:   l_p = -gamma a_p (m - d_ip),      l_n = gamma a_n (1 - m - d_in)
    L_i = log(1 + sum_{p in P(i)} exp(l_p)) + log(1 + sum_{n in N(i)} exp(l_n))   if P(i), N(i) non-empty, else 0
    L   = mean_i L_i      (over every anchor of the global batch)

The paper's loss is ``log(1 + sum_n exp(l_n) sum_p exp(l_p))``; TF Similarity
(and so this drop-in) adds the two ``log(1 + ...)`` terms instead, which
bounds the loss below by each term separately. Same argument names, defaults
and values as ``tensorflow_similarity.losses.CircleLoss``. Differences: its
``logsumexp`` can return ``-inf`` (shift by the unmasked row maximum); here
the value is always finite; labels are compared exactly; under a strategy the
candidates are the global batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.fields import Float
from tfcontrast.losses import base, tfsim, xbm
from tfcontrast.registry import register_loss


def circle_loss(labels, embeddings, distance: str = "cosine", gamma: float = 80.0, margin: float = 0.4) -> tf.Tensor:
    """Circle loss (formula in the module docstring); scalar float32.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids.
        embeddings: ``[batch, dim]`` embeddings, L2-normalised for ``"cosine"``.
        distance: ``"cosine"``, ``"l2"`` or ``"sql2"``; the loss expects distances in [0, 2].
        gamma: scale (> 0); large values make each ``log(1 + sum exp)`` a hard maximum.
        margin: relaxation margin m (>= 0).

    Example:
        >>> emb = tf.math.l2_normalize([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], axis=1)
        >>> float(circle_loss([0, 0, 1, 1], emb)) < float(circle_loss([0, 1, 0, 1], emb))
        True
    """
    arguments = _check_arguments(distance, gamma, margin)
    return circle_from_candidates(base.anchor_batch(labels, embeddings), *arguments)


@base.zero_for_empty_batch
def circle_from_candidates(candidates: base.Candidates, distance, gamma, margin) -> tf.Tensor:
    """:func:`circle_loss` of the anchors of ``candidates`` against its keys."""
    d = tfsim.pairwise(candidates.embeddings, candidates.keys, tfsim.canonical_distance(distance))
    positive, negative = candidates.masks()
    valid = tf.reduce_any(positive, axis=1) & tf.reduce_any(negative, axis=1)
    positive_weight = tf.maximum(margin + d, 0.0)
    negative_weight = tf.maximum(1.0 + margin - d, 0.0)
    positive_logit = -gamma * positive_weight * (margin - d)
    negative_logit = gamma * negative_weight * ((1.0 - margin) - d)
    per_anchor = tfsim.log1p_sum_exp(positive_logit, positive) + tfsim.log1p_sum_exp(negative_logit, negative)
    per_anchor = tf.where(valid, per_anchor, tf.zeros_like(per_anchor))
    anchors = tf.cast(tf.shape(d)[0], d.dtype)
    return candidates.finish(distribute.replica_share(tf.reduce_sum(per_anchor), anchors))


def _check_arguments(distance, gamma, margin):
    tfsim.canonical_distance(distance)
    return distance, validation.check_positive(gamma, "gamma"), validation.check_non_negative(margin, "margin")


@keras.saving.register_keras_serializable(package="tfcontrast")
class CircleLoss(base.SimilarityLoss):
    """Circle loss (Sun et al., CVPR 2020), drop-in for TF Similarity's ``CircleLoss``.

    Called on ``(labels, embeddings)``; formula and differences in
    :mod:`tfcontrast.losses.circle`.

    Args:
        distance: ``"cosine"`` (default; embeddings L2-normalised), ``"l2"`` or ``"sql2"``.
        gamma: scale (TF Similarity's default 80.0).
        margin: relaxation margin (0.4).

    Raises:
        ValueError: an unknown distance, ``gamma <= 0`` or ``margin < 0``.

    Example:
        >>> model.compile(optimizer="adam", loss=tfc.losses.CircleLoss(gamma=80.0, margin=0.4))  # doctest: +SKIP
    """

    function = staticmethod(circle_loss)
    from_candidates = staticmethod(circle_from_candidates)

    def __init__(
        self, distance: str = "cosine", gamma: float = 80.0, margin: float = 0.4, name: str = "circle_loss", **kwargs
    ):
        distance, gamma, margin = _check_arguments(distance, gamma, margin)
        super().__init__(name=name, distance=distance, gamma=gamma, margin=margin, **kwargs)


register_loss(
    "circle",
    CircleLoss,
    inputs="labels",
    summary="circle loss (Sun et al., CVPR 2020), TF Similarity's CircleLoss",
    fields=xbm.memory_fields({
        "distance": tfsim.DISTANCE_FIELD,
        "gamma": Float(doc="scale of the similarities, > 0", within="(0, inf)"),
        "margin": Float(doc="relaxation margin m (optima: 1 - m positives, m negatives), >= 0", within="[0, inf)"),
    }),
    build=xbm.with_memory(CircleLoss),
)
