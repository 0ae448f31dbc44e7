"""Multiple negatives ranking loss: in-batch negatives for (query, passage) pairs.

Henderson et al., "Efficient Natural Language Response Suggestion for Smart
Reply", arXiv:1705.00652, 2017; the loss of sentence-transformers'
``MultipleNegativesRankingLoss`` and TF Similarity's ``MultiNegativesRankLoss``.
Query i's positive is passage i; every other passage of the batch (of every
replica under a ``tf.distribute`` strategy) and every extra negative is a
negative. With scale s and similarity sim (cosine by default),

    L = 1/B sum_i -log( exp(s sim(q_i, p_i)) / sum_{c in candidates} exp(s sim(q_i, c)) ),

a cross-entropy over ``s * sim`` whose targets are the diagonal. The
candidates are ``[passages; negatives]`` gathered across replicas, so R
replicas holding B/R pairs each give the loss and gradients of one device
holding all B (each replica returns its share, see :mod:`tfcontrast.distribute`).

Unsupervised SimCSE (Gao, Yao and Chen, EMNLP 2021, eq. 4) is this loss on
two dropout views with ``scale = 1 / temperature``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distances, distribute, validation

SIMILARITIES = ("cosine", "dot")


def multiple_negatives_ranking_loss(
    queries, passages, negatives=None, scale: float = 20.0, similarity: str = "cosine"
) -> tf.Tensor:
    """In-batch softmax ranking loss of ``queries[i]`` against ``passages[i]``; scalar float32.

    Args:
        queries: ``[B, dim]`` query (anchor) embeddings.
        passages: ``[B, dim]`` the positive passage of each query.
        negatives: optional hard negatives ``[M, dim]`` or ``[B, h, dim]``
            (flattened); each is a candidate for every query.
        scale: multiplies the similarities (sentence-transformers: 20 for
            cosine, i.e. a temperature of 0.05).
        similarity: ``"cosine"`` (inputs normalised inside) or ``"dot"``.

    Returns:
        The mean over queries (this replica's share of it under a strategy).

    Example:
        >>> q = tf.constant([[1.0, 0.0], [0.0, 1.0]])
        >>> round(float(multiple_negatives_ranking_loss(q, q, scale=1.0)), 4)  # log(1 + e^-1)
        0.3133
    """
    scale = validation.check_positive(scale, "scale")
    validation.check_choice(similarity, SIMILARITIES, "similarity")
    q, p = validation.to_float(queries, "queries"), validation.to_float(passages, "passages")
    validation.check_rank(q, 2, "queries")
    validation.check_rank(p, 2, "passages")
    for axis in (0, 1):
        validation.check_same_dim(q, p, axis, ("queries", "passages"))
    candidates, offset = distribute.gather(_prepare(p, similarity, q.dtype))
    if negatives is not None:
        n = validation.to_float(negatives, "negatives")
        validation.check_rank(n, (2, 3), "negatives")
        n = tf.reshape(n, [-1, n.shape[-1] or tf.shape(n)[-1]])
        validation.check_same_dim(q, n, -1, ("queries", "negatives"))
        gathered_negatives, _ = distribute.gather(_prepare(n, similarity, q.dtype))
        candidates = tf.concat([candidates, gathered_negatives], axis=0)
    q = _prepare(q, similarity, q.dtype)
    logits = tf.matmul(q, candidates, transpose_b=True) * tf.cast(scale, q.dtype)
    target = tf.range(tf.shape(q)[0], dtype=tf.int32) + offset
    per_query = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
    return distribute.replica_share(tf.reduce_sum(per_query), tf.cast(tf.shape(q)[0], per_query.dtype))


def _prepare(x, similarity: str, dtype) -> tf.Tensor:
    x = distances.l2_normalize(x) if similarity == "cosine" else x
    return tf.cast(x, dtype)


@keras.saving.register_keras_serializable(package="tfcontrast")
class MultipleNegativesRankingLoss(keras.losses.Loss):
    """Multiple negatives ranking loss, called as ``loss(queries, passages)``.

    Row i of ``passages`` is the positive of row i of ``queries``; the other
    passages of the global batch are its negatives (hard negatives can be
    added through :func:`multiple_negatives_ranking_loss`). Train a dual
    encoder on (question, answer), (summary, body) or (query, document)
    pairs; one shared tower or two.

    Args:
        scale: the logits are ``scale * similarity`` (default 20, as in sentence-transformers).
        similarity: ``"cosine"`` or ``"dot"``.

    Raises:
        ValueError: ``scale <= 0``, an unknown ``similarity``, inputs that are
            not ``[B, dim]`` of one shape.

    Example:
        >>> loss = MultipleNegativesRankingLoss(scale=20.0)
        >>> q, p = tf.random.normal([8, 16]), tf.random.normal([8, 16])
        >>> loss(q, p).shape
        TensorShape([])
    """

    def __init__(
        self, scale: float = 20.0, similarity: str = "cosine", name: str = "multiple_negatives_ranking_loss", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.scale = validation.check_positive(scale, "scale")
        self.similarity = validation.check_choice(similarity, SIMILARITIES, "similarity")

    def call(self, y_true, y_pred):
        return multiple_negatives_ranking_loss(y_true, y_pred, scale=self.scale, similarity=self.similarity)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "similarity": self.similarity}
