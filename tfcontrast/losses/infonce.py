"""InfoNCE with a queue of negatives (MoCo) and optional synthetic hard negatives (MoCHi).

He, Fan, Wu, Xie and Girshick, "Momentum Contrast for Unsupervised Visual
Representation Learning", CVPR 2020; Chen, Fan, Girshick and He, "Improved
Baselines with Momentum Contrastive Learning" (MoCo v2), arXiv 2020. For
L2-normalised queries q_i, their keys k_i and negatives n_j (MoCo's queue),

    L = mean_i -log( exp(q_i.k_i / t) / (exp(q_i.k_i / t) + sum_j exp(q_i.n_j / t)) ).

With ``negatives=None`` the negatives of q_i are the other keys k_j (j != i) of
the *global* batch: the one-directional, cross-view form of NT-Xent (queries
from one view, every key from the other), as in MoCo v3 and CLIP.

Hard negative mixing (Kalantidis, Sariyildiz, Pion, Weinzaepfel and Larlus,
"Hard Negative Mixing for Contrastive Learning", NeurIPS 2020): each query
may bring ``extra_negatives[i]`` (``[M, d]``, e.g. mixtures of its hardest
queue entries), added to its own denominator only. They are constants: no
gradient flows into them (the query still gets the gradient of their logits).

Numerics as in :mod:`tfcontrast.losses.ntxent`: with ``lse_i`` the log-sum-exp
of the negative logits, ``-log(e^p / (e^p + e^lse)) = softplus(lse - p)``, so a
small loss is never the difference of two large numbers; the log-sum-exp over
the queue goes through :func:`~tfcontrast.losses.ntxent.masked_logsumexp`,
whose ``block_size`` mode bounds peak memory for huge queues.

Under a ``tf.distribute`` strategy, with ``negatives=None`` the keys of every
replica are gathered (with their gradient); a queue is used as given (MoCo
keeps the same queue on every replica). Each replica returns its share of the
global mean, so R replicas equal one device holding the global batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distances, distribute, validation
from tfcontrast.losses.ntxent import _check_block_size, masked_logsumexp


def _negative_logsumexp(queries, keys, negatives, temperature, block_size):
    """``(positive logits, log-sum-exp of the negative logits)`` per query, both ``[n]``."""
    positive_logit = tf.reduce_sum(queries * keys, axis=1) / temperature
    if negatives is None:
        all_keys, offset = distribute.gather(keys)
        own_key = (tf.range(tf.shape(queries)[0], dtype=tf.int32) + offset)[:, None]
        return positive_logit, masked_logsumexp(queries, all_keys, own_key, temperature, block_size)
    nothing_excluded = tf.zeros([tf.shape(queries)[0], 0], tf.int32)
    return positive_logit, masked_logsumexp(queries, negatives, nothing_excluded, temperature, block_size)


def info_nce_loss(
    queries,
    keys,
    negatives=None,
    extra_negatives=None,
    temperature: float = 0.2,
    block_size: int | None = None,
) -> tf.Tensor:
    """InfoNCE of queries against their keys and a set of negatives; scalar float32.

    Args:
        queries: ``[n, d]`` (normalised inside; any float dtype).
        keys: ``[n, d]``, key i the positive of query i (normalised inside).
            MoCo passes the momentum encoder's keys, which carry no gradient;
            here gradients flow into whatever is passed.
        negatives: ``None`` (the other keys of the global batch are the
            negatives), or ``[m, d]`` negatives shared by every query, e.g.
            MoCo's queue (normalised inside; no gradient flows into them).
        extra_negatives: optional ``[n, M, d]`` negatives of each query alone
            (MoCHi's synthetic hard negatives; normalised inside; no gradient).
        temperature: softmax temperature t > 0 (MoCo v2: 0.2).
        block_size: ``None`` (dense), or rows of queries per block: peak
            memory grows with ``block_size * m`` instead of ``n * m``.

    Returns:
        The loss (this replica's share under a strategy).

    Example:
        >>> q, k = tf.random.normal([8, 16]), tf.random.normal([8, 16])
        >>> queue = tf.random.normal([64, 16])
        >>> float(info_nce_loss(q, q, queue)) < float(info_nce_loss(q, k, queue))
        True
    """
    temperature = validation.check_positive(temperature, "temperature")
    block_size = _check_block_size(block_size)
    queries, keys = validation.as_paired_rows(queries, keys, ("queries", "keys"))
    queries = distances.l2_normalize(queries)
    keys = tf.cast(distances.l2_normalize(keys), queries.dtype)
    if negatives is not None:
        negatives = validation.to_float(negatives, "negatives")
        validation.check_rank(negatives, 2, "negatives")
        validation.check_same_dim(queries, negatives, 1, ("queries", "negatives"))
        if negatives.shape[0] == 0:
            raise ValueError("`negatives` is empty: pass at least one negative, or None for the in-batch keys.")
        negatives = tf.cast(distances.l2_normalize(tf.stop_gradient(negatives)), queries.dtype)

    positive_logit, lse = _negative_logsumexp(queries, keys, negatives, temperature, block_size)
    if extra_negatives is not None:
        extra = validation.to_float(extra_negatives, "extra_negatives")
        validation.check_rank(extra, 3, "extra_negatives")
        if extra.shape[0] not in (None, queries.shape[0]) or extra.shape[2] not in (None, queries.shape[1]):
            raise ValueError(
                f"`extra_negatives` must be [n, M, d] for queries of shape {queries.shape}, got shape {extra.shape}."
            )
        extra = tf.cast(distances.l2_normalize(tf.stop_gradient(extra)), queries.dtype)
        extra_lse = tf.reduce_logsumexp(tf.einsum("nd,nmd->nm", queries, extra) / temperature, axis=1)
        lse = tf.reduce_logsumexp(tf.stack([lse, extra_lse], axis=1), axis=1)
    local_sum = tf.reduce_sum(tf.nn.softplus(lse - positive_logit))
    return distribute.replica_share(local_sum, tf.shape(queries)[0])


@keras.saving.register_keras_serializable(package="tfcontrast")
class InfoNCELoss(keras.losses.Loss):
    """MoCo's InfoNCE, called as ``loss(queries, keys, negatives=None, extra_negatives=None)``.

    For L2-normalised queries q_i, keys k_i and negatives n_j,
    ``L = mean_i -log(exp(q_i.k_i/t) / (exp(q_i.k_i/t) + sum_j exp(q_i.n_j/t)))``.

    * ``negatives=[m, d]`` (MoCo's queue, the same on every replica): shared
      negatives, no gradient into them;
    * ``negatives=None``: the other keys of the global batch (gathered across
      replicas) are the negatives, the cross-view form of NT-Xent;
    * ``extra_negatives=[n, M, d]``: per-query negatives appended to query i's
      denominator only, with no gradient into them (MoCHi's synthetic hard
      negatives, Kalantidis et al., NeurIPS 2020).

    The class is called directly (a batch-level loss: no ``sample_weight``);
    through ``compile`` it receives ``(queries, keys)`` and uses the in-batch
    negatives.

    Args:
        temperature: softmax temperature t > 0 (MoCo v1: 0.07, v2: 0.2).
        block_size: ``None`` (dense) or query rows per block, for queues whose
            ``[n, m]`` logit matrix should not be held at once.

    Raises:
        ValueError: ``temperature <= 0``, a bad ``block_size``, queries and
            keys that are not ``[n, d]`` of one shape, negatives of another
            dimension, extra negatives that are not ``[n, M, d]``.

    Example:
        >>> loss = InfoNCELoss(temperature=0.2)
        >>> q, k, queue = tf.random.normal([8, 16]), tf.random.normal([8, 16]), tf.random.normal([256, 16])
        >>> loss(q, k, negatives=queue).shape
        TensorShape([])
    """

    def __init__(
        self,
        temperature: float = 0.2,
        block_size: int | None = None,
        name: str = "info_nce_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.temperature = validation.check_positive(temperature, "temperature")
        self.block_size = _check_block_size(block_size)

    def __call__(self, queries, keys, negatives=None, extra_negatives=None):
        with tf.name_scope(self.name):
            return info_nce_loss(queries, keys, negatives, extra_negatives, self.temperature, self.block_size)

    def call(self, y_true, y_pred):
        return info_nce_loss(y_true, y_pred, temperature=self.temperature, block_size=self.block_size)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "block_size": self.block_size}
