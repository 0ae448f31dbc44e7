"""Multi-similarity loss: pair mining plus soft, weighted positive and negative terms.

Wang, Han, Huang, Dong and Scott, "Multi-Similarity Loss with General Pair
Weighting for Deep Metric Learning", CVPR 2019. Written, as TensorFlow
Similarity 0.17.1 writes it, on a distance d (smaller is closer; for cosine,
similarity S = 1 - d, and ``center = 1`` turns ``d + lmda - center`` into the
paper's ``lmda - S``). For anchor i with positives P(i) and negatives N(i):

    mining:  P'(i) = {p in P(i): d_ip > min_{n in N(i)} d_in - epsilon}
             N'(i) = {n in N(i): d_in < max_{p in P(i)} d_ip + epsilon}
    s_ij  = d_ij + lmda - center
    L_i   = 1/alpha log(1 + sum_{p in P'(i)} exp(alpha s_ip))
          + 1/beta  log(1 + sum_{n in N'(i)} exp(-beta s_in))      if P'(i), N'(i) non-empty, else 0
    L     = mean_i L_i      (over every anchor of the global batch)

Drop-in for ``tensorflow_similarity.losses.MultiSimilarityLoss`` (same
argument names and defaults, same values). Differences, all where TF
Similarity's value is not finite or not defined:

* its ``logsumexp`` shifts by the unmasked row maximum and returns ``-inf``
  when the mined terms lie ~100 below it (large ``l2``/``sql2`` distances);
  here ``log(1 + sum exp)`` is computed with a safe shift, always finite;
* labels are compared exactly as int64 (TF Similarity casts them to float);
* under a strategy the mining sees the global batch (TF Similarity: the
  replica's own), and :class:`~tfcontrast.losses.XBM` may add a memory.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.fields import Float
from tfcontrast.losses import base, tfsim, xbm
from tfcontrast.registry import register_loss


def multisimilarity_loss(
    labels,
    embeddings,
    distance: str = "cosine",
    alpha: float = 2.0,
    beta: float = 40.0,
    epsilon: float = 0.1,
    lmda: float = 0.5,
    center: float = 1.0,
) -> tf.Tensor:
    """Multi-similarity loss (formula in the module docstring); scalar float32.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids.
        embeddings: ``[batch, dim]`` embeddings, L2-normalised for ``"cosine"``.
        distance: ``"cosine"``, ``"l2"`` or ``"sql2"`` (TF Similarity's names).
        alpha: weight of the positive terms (> 0).
        beta: weight of the negative terms (> 0).
        epsilon: mining margin (>= 0).
        lmda: the distance threshold lambda, where a pair's weight turns.
        center: the expected distance (1 for cosine distances in [0, 2]).

    Returns:
        Scalar loss (this replica's share under a strategy).

    Example:
        >>> emb = tf.math.l2_normalize([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], axis=1)
        >>> float(multisimilarity_loss([0, 0, 1, 1], emb)) < float(multisimilarity_loss([0, 1, 0, 1], emb))
        True
    """
    arguments = _check_arguments(distance, alpha, beta, epsilon, lmda, center)
    return multisimilarity_from_candidates(base.anchor_batch(labels, embeddings), *arguments)


@base.zero_for_empty_batch
def multisimilarity_from_candidates(
    candidates: base.Candidates, distance, alpha, beta, epsilon, lmda, center
) -> tf.Tensor:
    """:func:`multisimilarity_loss` of the anchors of ``candidates`` against its keys."""
    d = tfsim.pairwise(candidates.embeddings, candidates.keys, tfsim.canonical_distance(distance))
    positive, negative = candidates.masks()
    exists = candidates.exists()
    nearest_negative, _ = tfsim.masked_min(d, negative, exists)
    farthest_positive, _ = tfsim.masked_max(d, positive, exists)
    hard_positive = positive & (d > (nearest_negative - epsilon)[:, None])
    hard_negative = negative & (d < (farthest_positive + epsilon)[:, None])
    valid = tf.reduce_any(hard_positive, axis=1) & tf.reduce_any(hard_negative, axis=1)

    shifted = d + lmda - center
    positive_term = tfsim.log1p_sum_exp(alpha * shifted, hard_positive) / alpha
    negative_term = tfsim.log1p_sum_exp(-beta * shifted, hard_negative) / beta
    per_anchor = tf.where(valid, positive_term + negative_term, tf.zeros_like(positive_term))
    anchors = tf.cast(tf.shape(d)[0], d.dtype)
    return candidates.finish(distribute.replica_share(tf.reduce_sum(per_anchor), anchors))


def _check_arguments(distance, alpha, beta, epsilon, lmda, center):
    tfsim.canonical_distance(distance)
    return (
        distance,
        validation.check_positive(alpha, "alpha"),
        validation.check_positive(beta, "beta"),
        validation.check_non_negative(epsilon, "epsilon"),
        validation.check_finite(lmda, "lmda"),
        validation.check_finite(center, "center"),
    )


@keras.saving.register_keras_serializable(package="tfcontrast")
class MultiSimilarityLoss(base.SimilarityLoss):
    """Multi-similarity loss (Wang et al., CVPR 2019), drop-in for TF Similarity's.

    Called on ``(labels, embeddings)``; same constructor and values as
    ``tensorflow_similarity.losses.MultiSimilarityLoss`` (formula and the
    deliberate differences in :mod:`tfcontrast.losses.multisimilarity`).

    Args:
        distance: ``"cosine"`` (default; embeddings must be L2-normalised),
            ``"l2"`` or ``"sql2"``.
        alpha: positive weight (TF Similarity's default 2.0).
        beta: negative weight (40.0).
        epsilon: mining margin (0.1).
        lmda: distance threshold lambda (0.5).
        center: expected distance, 1.0 for cosine.

    Raises:
        ValueError: an unknown distance, ``alpha``/``beta`` <= 0, ``epsilon`` < 0,
            non-finite ``lmda``/``center``.

    Example:
        >>> model = tfc.models.EmbeddingModel(encoder, embedding_dim=64)  # doctest: +SKIP
        >>> model.compile(optimizer="adam", loss=tfc.losses.MultiSimilarityLoss())
        >>> model.fit(tfc.data.class_balanced_batches(x, y, 10, 8, steps=1000))
    """

    function = staticmethod(multisimilarity_loss)
    from_candidates = staticmethod(multisimilarity_from_candidates)

    def __init__(
        self,
        distance: str = "cosine",
        alpha: float = 2.0,
        beta: float = 40.0,
        epsilon: float = 0.1,
        lmda: float = 0.5,
        center: float = 1.0,
        name: str = "multisimilarity_loss",
        **kwargs,
    ):
        distance, alpha, beta, epsilon, lmda, center = _check_arguments(distance, alpha, beta, epsilon, lmda, center)
        super().__init__(
            name=name, distance=distance, alpha=alpha, beta=beta, epsilon=epsilon, lmda=lmda, center=center, **kwargs
        )


def _finite(value) -> str | None:
    return None if math.isfinite(value) else f"must be finite, got {value!r}"


register_loss(
    "multi_similarity",
    MultiSimilarityLoss,
    inputs="labels",
    summary="multi-similarity loss (Wang et al., CVPR 2019), TF Similarity's MultiSimilarityLoss",
    fields=xbm.memory_fields({
        "distance": tfsim.DISTANCE_FIELD,
        "alpha": Float(doc="weight (scale) of the positive terms, > 0", within="(0, inf)"),
        "beta": Float(doc="weight (scale) of the negative terms, > 0", within="(0, inf)"),
        "epsilon": Float(doc="pair mining margin, >= 0", within="[0, inf)"),
        "lmda": Float(doc="similarity threshold lambda: the loss weighs pairs by d + lmda - center", check=_finite),
        "center": Float(doc="centre of the distances (1.0 for cosine), see lmda", check=_finite),
    }),
    build=xbm.with_memory(MultiSimilarityLoss),
)
