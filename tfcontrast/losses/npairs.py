"""N-pair losses on an anchor x positive similarity matrix (softmax over the positives).

Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss
Objective", NeurIPS 2016, in the form of TensorFlow Addons 0.23
(``tfa.losses.npairs_loss`` / ``npairs_multilabel_loss``). ``y_pred`` is the
similarity matrix ``S[i, j] = <anchor_i, positive_j>`` (logits); the target of
row i spreads evenly over the columns that share its label(s):

    T_ij = c_ij / sum_j c_ij,   c_ij = [y_i = y_j]                 (npairs_loss)
                                c_ij = |labels(i) & labels(j)|      (npairs_multilabel_loss, multi-hot rows)
    L_i  = -sum_j T_ij log softmax_j(S_i)  = logsumexp_j S_ij - sum_j T_ij S_ij
    L    = mean_i L_i

On one device ``y_pred`` is ``[batch, batch]``. Under a ``tf.distribute``
strategy each replica passes its anchors' rows against the positives of the
*global* batch, ``[local batch, global batch]`` (for instance
``anchors @ tfc.distribute.gather(positives)[0]^T``); the column labels are
gathered, and the replica returns its share of the global mean: the loss of
one device holding the global batch.

Differences from TF Addons: labels are compared exactly (TF Addons casts them
to ``y_pred``'s dtype: int64 ids >= 2**24 merge in float32); a row with no
matching column (possible with multi-hot rows without labels, or columns of
another batch) contributes nothing and is left out of the mean (TF Addons:
0/0 = NaN); multi-hot entries must be 0 or 1; float16/bfloat16 logits give a
float32 loss.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.losses import base


def npairs_loss(y_true, y_pred) -> tf.Tensor:
    """TF Addons' N-pair loss: softmax cross-entropy of each row of ``y_pred`` against its same-label columns.

    Args:
        y_true: ``[batch]`` (or ``[batch, 1]``) integer class ids of the pairs.
        y_pred: ``[batch, batch]`` similarity logits, anchors x positives
            (``[local, global]`` under a strategy, see the module docstring).

    Returns:
        Scalar float32 loss; NaN if a logit is not finite.

    Example:
        >>> f = tf.constant([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
        >>> round(float(npairs_loss([0, 1, 2, 3], tf.matmul(f, f, transpose_b=True))), 6)
        0.253856
    """
    logits = _logits(y_pred)
    labels, ok = validation.class_labels(y_true, logits.shape[0], name="y_true")
    column_labels, _ = distribute.gather(labels)
    _check_columns(logits, column_labels)
    counts = tf.cast(tf.equal(labels[:, None], column_labels[None, :]), logits.dtype)
    return base.nan_unless(ok, _softmax_cross_entropy(logits, counts))


def npairs_multilabel_loss(y_true, y_pred) -> tf.Tensor:
    """TF Addons' multi-label N-pair loss: targets from label intersections of multi-hot rows.

    Args:
        y_true: ``[batch, num_classes]`` multi-hot rows (0/1), dense or ``tf.SparseTensor``.
        y_pred: ``[batch, batch]`` similarity logits (``[local, global]`` under a strategy).

    Example:
        >>> f = tf.constant([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
        >>> y = [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]]
        >>> round(float(npairs_multilabel_loss(y, tf.matmul(f, f, transpose_b=True))), 6)
        1.420522
    """
    logits = _logits(y_pred)
    if isinstance(y_true, tf.SparseTensor):
        y_true = tf.sparse.to_dense(y_true)
    members, ok = validation.binary_labels(y_true, "y_true")
    validation.check_rank(members, 2, "y_true")
    validation.check_same_dim(members, logits, 0, ("y_true", "y_pred"))
    members = tf.cast(members, logits.dtype)
    column_members, _ = distribute.gather(members)
    _check_columns(logits, column_members)
    counts = tf.matmul(members, column_members, transpose_b=True)
    return base.nan_unless(ok, _softmax_cross_entropy(logits, counts))


def _logits(y_pred) -> tf.Tensor:
    logits = validation.to_float(y_pred, "y_pred")
    validation.check_rank(logits, 2, "y_pred")
    return logits


def _check_columns(logits: tf.Tensor, column_labels: tf.Tensor) -> None:
    columns, expected = logits.shape[1], column_labels.shape[0]
    if columns is not None and expected is not None and columns != expected:
        raise ValueError(
            f"`y_pred` must be [batch, batch] anchors x positives (under a strategy: local anchors x "
            f"the global batch's {expected} positives), got {columns} columns."
        )


def _softmax_cross_entropy(logits: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """Mean over rows with a target of ``-sum_j T_ij log softmax(logits_i)_j``, T = counts / row sum."""
    totals = tf.reduce_sum(counts, axis=1)
    has_target = totals > 0
    target = counts / tf.where(has_target, totals, tf.ones_like(totals))[:, None]
    per_row = tf.reduce_logsumexp(logits, axis=1) - tf.reduce_sum(target * logits, axis=1)
    per_row = tf.where(has_target, per_row, tf.zeros_like(per_row))
    value = distribute.replica_share(tf.reduce_sum(per_row), tf.reduce_sum(tf.cast(has_target, per_row.dtype)))
    return base.nan_unless(validation.all_finite(logits), value)


@keras.saving.register_keras_serializable(package="tfcontrast")
class NpairsLoss(base.SimilarityLoss):
    """N-pair loss (Sohn, NeurIPS 2016), drop-in for ``tfa.losses.NpairsLoss``.

    Called as ``loss(labels, similarity)`` with ``similarity = anchors @
    positives^T`` (``[batch, batch]``); no arguments besides ``name``, as in
    TF Addons. Formula and differences in :mod:`tfcontrast.losses.npairs`.

    Example:
        >>> loss = NpairsLoss()
        >>> a, p = tf.random.normal([4, 8]), tf.random.normal([4, 8])
        >>> loss([0, 1, 2, 3], tf.matmul(a, p, transpose_b=True)).shape
        TensorShape([])
    """

    function = staticmethod(npairs_loss)

    def __init__(self, name: str = "npairs_loss", **kwargs):
        super().__init__(name=name, **kwargs)


@keras.saving.register_keras_serializable(package="tfcontrast")
class NpairsMultilabelLoss(base.SimilarityLoss):
    """Multi-label N-pair loss, drop-in for ``tfa.losses.NpairsMultilabelLoss``.

    Called as ``loss(multi_hot, similarity)``: ``multi_hot`` ``[batch,
    num_classes]`` 0/1 rows, dense or ``tf.SparseTensor``; ``similarity``
    ``[batch, batch]``. Formula and differences in :mod:`tfcontrast.losses.npairs`.

    Raises:
        ValueError: (eagerly) multi-hot entries other than 0 and 1, shapes that disagree.
    """

    function = staticmethod(npairs_multilabel_loss)

    def __init__(self, name: str = "npairs_multilabel_loss", **kwargs):
        super().__init__(name=name, **kwargs)
