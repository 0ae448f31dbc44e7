"""Negative sampling loss of word2vec's skip-gram.

Mikolov, Sutskever, Chen, Corrado and Dean, "Distributed Representations of
Words and Phrases and their Compositionality", NeurIPS 2013, eq. 4: for a
word w_I and an observed context word w_O, with k noise words w_1..w_k drawn
from the unigram distribution raised to the 3/4 power,

    L = -log sigma(v'_{w_O} . v_{w_I}) - sum_{j=1}^{k} log sigma(-v'_{w_j} . v_{w_I}),

averaged over the (w_I, w_O) pairs. In logits, with ``x = v'_O . v_I`` and
``y_j = v'_j . v_I``, each pair contributes ``softplus(-x) + sum_j softplus(y_j)``
(``-log sigma(t) = softplus(-t)``, computed without overflow).

The loss takes the logits, so it is deterministic; drawing the noise words
belongs to the model (:class:`tfcontrast.text.SkipGram`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distribute, validation


def negative_sampling_loss(positive_logits, negative_logits) -> tf.Tensor:
    """Mean over pairs of ``softplus(-x_i) + sum_j softplus(y_ij)``; scalar float32.

    Args:
        positive_logits: ``[B]`` (or ``[B, 1]``) scores ``v'_{w_O} . v_{w_I}`` of the observed pairs.
        negative_logits: ``[B, k]`` scores of the k noise words of each pair.

    Returns:
        The mean over the B pairs (this replica's share of the global mean
        under a ``tf.distribute`` strategy).

    Example:
        >>> round(float(negative_sampling_loss([0.0], [[0.0, 0.0]])), 4)  # 3 log 2
        2.0794
    """
    x = validation.to_float(positive_logits, "positive_logits")
    y = validation.to_float(negative_logits, "negative_logits")
    if x.shape.rank == 2 and x.shape[1] == 1:
        x = tf.reshape(x, [-1])
    validation.check_rank(x, 1, "positive_logits")
    validation.check_rank(y, 2, "negative_logits")
    validation.check_same_dim(x, y, 0, ("positive_logits", "negative_logits"))
    y = tf.cast(y, x.dtype)
    per_pair = tf.nn.softplus(-x) + tf.reduce_sum(tf.nn.softplus(y), axis=1)
    return distribute.replica_share(tf.reduce_sum(per_pair), tf.cast(tf.shape(x)[0], per_pair.dtype))


@keras.saving.register_keras_serializable(package="tfcontrast")
class NegativeSamplingLoss(keras.losses.Loss):
    """Skip-gram negative sampling loss, called as ``loss(positive_logits, negative_logits)``.

    ``positive_logits[i]`` scores the observed (word, context) pair i,
    ``negative_logits[i, j]`` its j-th noise word; see
    :func:`negative_sampling_loss` for the formula (Mikolov et al. 2013).

    Raises:
        ValueError: logits that are not ``[B]`` and ``[B, k]`` with the same B.

    Example:
        >>> loss = NegativeSamplingLoss()
        >>> float(loss([10.0], [[-10.0, -10.0]])) < 1e-3
        True
    """

    def __init__(self, name: str = "negative_sampling_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return negative_sampling_loss(y_true, y_pred)
