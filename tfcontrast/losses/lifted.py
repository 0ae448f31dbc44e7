"""Lifted structured loss: every positive pair against the negatives of both its ends.

Oh Song, Xiang, Jegelka and Savarese, "Deep Metric Learning via Lifted
Structured Feature Embedding", CVPR 2016, in the exact form of TensorFlow
Addons 0.23 (``tfa.losses.lifted_struct_loss``). With Euclidean distances D,
margin m, the positive pairs P (i != j, same label) and the negatives N(i):

    J_ij = log( sum_{k in N(i)} exp(m - D_ik) + sum_{l in N(j)} exp(m - D_jl) ) + D_ij
    L    = 1 / (2 |P|) * sum_{(i, j) in P, unordered} max(J_ij, 0)^2
         = mean over ordered positive pairs of max(J_ij, 0)^2 / 2

(TensorFlow Addons writes ``0.25 * sum over ordered pairs / num_pairs`` with
``num_pairs`` the number of unordered pairs: the same number.) The sums of
exponentials are taken in log space (``log(exp(a_i) + exp(a_j))`` with
``a_i = logsumexp_k (m - D_ik)``), as the Caffe layer and TF Addons shift by
the larger maximum. Distances are not normalised (the paper's embeddings are
not L2-normalised).

Differences from TF Addons: a batch without positive pairs gives 0 with a zero
gradient (TF Addons: 0/0 = NaN) and a batch of a single class gives 0 (TF
Addons: NaN); labels are compared exactly (``int64``); float16/bfloat16
inputs give a float32 loss (TF Addons casts back to the input dtype); under a
strategy the pairs and negatives are those of the global batch, and
:class:`~tfcontrast.losses.XBM` may add a memory (the negatives of a memory
row j come from the whole candidate set: O((batch + memory)^2) distances).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distances, distribute, validation
from tfcontrast.fields import Float
from tfcontrast.losses import base, tfsim, xbm
from tfcontrast.registry import register_loss


def lifted_struct_loss(labels, embeddings, margin: float = 1.0) -> tf.Tensor:
    """TF Addons' lifted structured loss (formula in the module docstring); scalar float32.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids.
        embeddings: ``[batch, dim]`` embeddings (not L2-normalised, as in the paper).
        margin: the margin m (>= 0).

    Example:
        >>> round(float(lifted_struct_loss([0, 0, 1, 1], [[0.0], [1.0], [3.0], [4.0]], margin=1.0)), 4)
        0.1963
    """
    margin = validation.check_non_negative(margin, "margin")
    return lifted_struct_from_candidates(base.anchor_batch(labels, embeddings), margin)


@base.zero_for_empty_batch
def lifted_struct_from_candidates(candidates: base.Candidates, margin: float) -> tf.Tensor:
    """:func:`lifted_struct_loss` of the anchors of ``candidates`` against its keys."""
    d_keys = distances.pairwise_distances(candidates.keys, metric="euclidean")  # [m, m], diagonal 0
    key_negative = tf.not_equal(candidates.key_labels[:, None], candidates.key_labels[None, :])
    exists = candidates.exists()
    if exists is not None:
        key_negative = key_negative & exists & tf.transpose(exists)
    # a_k = log sum_{l in N(k)} exp(m - D_kl), for every candidate k (its negatives' soft maximum).
    soft_max_negative, has_negative = tfsim.masked_logsumexp(margin - d_keys, key_negative)
    rows = tf.range(tf.shape(candidates.embeddings)[0], dtype=tf.int32) + candidates.offset
    anchor_soft_max = tf.gather(soft_max_negative, rows)
    d = tf.gather(d_keys, rows)  # [n, m]: the anchors' rows

    high = tf.maximum(anchor_soft_max[:, None], soft_max_negative[None, :])
    both_ends = high + tf.math.log1p(tf.exp(-tf.abs(anchor_soft_max[:, None] - soft_max_negative[None, :])))
    j = both_ends + d
    positive, negative = candidates.masks()
    counted = positive & tf.gather(has_negative, rows)[:, None]
    per_pair = tf.where(counted, 0.5 * tf.square(tf.maximum(j, 0.0)), tf.zeros_like(j))
    share = distribute.replica_share(tf.reduce_sum(per_pair), tf.reduce_sum(tf.cast(positive, j.dtype)))
    return candidates.finish(base.zero_if_degenerate(share, positive, negative))


@keras.saving.register_keras_serializable(package="tfcontrast")
class LiftedStructLoss(base.SimilarityLoss):
    """Lifted structured loss (Oh Song et al., CVPR 2016), drop-in for ``tfa.losses.LiftedStructLoss``.

    Called on ``(labels, embeddings)``; same argument (``margin``) and values
    as TensorFlow Addons 0.23; formula and differences in
    :mod:`tfcontrast.losses.lifted`.

    Args:
        margin: the margin m (>= 0; TF Addons' default 1.0).

    Raises:
        ValueError: ``margin < 0``, embeddings that are not ``[batch, dim]``,
            labels of another length.

    Example:
        >>> model.compile(optimizer="adam", loss=tfc.losses.LiftedStructLoss(margin=1.0))  # doctest: +SKIP
    """

    function = staticmethod(lifted_struct_loss)
    from_candidates = staticmethod(lifted_struct_from_candidates)

    def __init__(self, margin: float = 1.0, name: str = "lifted_struct_loss", **kwargs):
        super().__init__(name=name, margin=validation.check_non_negative(margin, "margin"), **kwargs)


register_loss(
    "lifted_struct",
    LiftedStructLoss,
    inputs="labels",
    summary="lifted structured loss (Oh Song et al., CVPR 2016), TF Addons' LiftedStructLoss",
    fields=xbm.memory_fields(
        {"margin": Float(doc="margin m of the negatives' log-sum-exp (L2 distances), >= 0", within="[0, inf)")}
    ),
    build=xbm.with_memory(LiftedStructLoss),
)
