"""Noise-contrastive estimation against memory-bank negatives: PIRL's loss.

Misra and van der Maaten, "Self-Supervised Learning of Pretext-Invariant
Representations", CVPR 2020 (eq. 2-3), with the estimator of Wu, Xiong, Yu
and Lin, "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", CVPR 2018 (NPID), after Gutmann and Hyvarinen's NCE
(AISTATS 2010). For an L2-normalised representation x, its positive m (the
memory entry of its own image) and N negatives m_j drawn uniformly from the
memory,

    h(x, m) = exp(x.m / t) / (exp(x.m / t) + N mu),
    L(x)    = -log h(x, m) - sum_j log(1 - h(x, m_j)),

averaged over the batch: h is the probability that the pair came from the
data rather than from the N noise samples. ``N mu`` is PIRL's sum over its
negatives ``sum_j exp(x.m_j / t)`` (eq. 2) replaced by its expectation, with
``mu = E[exp(x.m' / t)]`` over memory entries m' (NPID's ``Z / |D|``). The
caller passes ``log_noise_mean``: NPID and PIRL estimate mu once, on the
first batch, and keep it fixed; :class:`tfcontrast.models.PIRL` can also
track it (``noise_momentum``), which a representation that does not stay
spread out needs. Left ``None`` it is estimated on the call's own (global)
batch, without gradient (:func:`nce_log_noise_mean`).

Numerics: ``h = sigmoid(x.m/t - c)`` with ``c = log(N mu)``, so
``-log h = softplus(c - x.m/t)`` and ``-log(1 - h) = softplus(x.m/t - c)``:
no exponential of a large logit, exact for small losses.

Negatives are shared by the batch (one ``[n, N]`` matrix product, not n
gathers of N rows); ``negative_mask[i, j] = False`` drops negative j from
query i's sum (PIRL: a draw of i's own image). No gradient flows into the
positives or the negatives (memory entries).

Under a ``tf.distribute`` strategy each replica returns its share of the
global mean and the estimate of mu is over the global batch, so R replicas
equal one device.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfcontrast import distances, distribute, validation


def _inputs(queries, positives, negatives, negative_mask):
    queries, positives = validation.as_paired_rows(queries, positives, ("queries", "positives"))
    negatives = validation.to_float(negatives, "negatives")
    validation.check_rank(negatives, 2, "negatives")
    validation.check_same_dim(queries, negatives, 1, ("queries", "negatives"))
    if negatives.shape[0] == 0:
        raise ValueError("`negatives` is empty: NCE needs at least one noise sample.")
    queries = distances.l2_normalize(tf.cast(queries, tf.float32))
    positives = tf.stop_gradient(distances.l2_normalize(tf.cast(positives, tf.float32)))
    negatives = tf.stop_gradient(distances.l2_normalize(tf.cast(negatives, tf.float32)))
    if negative_mask is None:
        mask = tf.ones([tf.shape(queries)[0], tf.shape(negatives)[0]], tf.bool)
    else:
        mask = tf.cast(tf.convert_to_tensor(negative_mask), tf.bool)
        validation.check_rank(mask, 2, "negative_mask")
        if mask.shape[0] not in (None, queries.shape[0]) or mask.shape[1] not in (None, negatives.shape[0]):
            raise ValueError(
                f"`negative_mask` must be [n, N] = [{queries.shape[0]}, {negatives.shape[0]}], got shape {mask.shape}."
            )
    return queries, positives, negatives, mask


def nce_log_noise_mean(queries, negatives, temperature: float = 0.07, negative_mask=None) -> tf.Tensor:
    """``log mu``, ``mu = mean over (i, j) of exp(q_i.n_j / t)`` over the global batch (unmasked pairs); no gradient.

    Args:
        queries: ``[n, d]``; negatives: ``[N, d]`` (both normalised here).
        temperature: t > 0.
        negative_mask: optional ``[n, N]`` bools, False = leave the pair out.

    Returns:
        A float32 scalar, the same on every replica.
    """
    temperature = validation.check_positive(temperature, "temperature")
    queries, _, negatives, mask = _inputs(queries, queries, negatives, negative_mask)
    logits = tf.matmul(queries, negatives, transpose_b=True) / temperature
    local_lse = tf.reduce_logsumexp(tf.where(mask, logits, -math.inf))
    local_lse = tf.where(tf.reduce_any(mask), local_lse, -1e30)  # no pair here: adds nothing below
    every_lse, _ = distribute.gather(local_lse[None])
    count = distribute.all_reduce_sum(tf.reduce_sum(tf.cast(mask, tf.float32)))
    return tf.stop_gradient(tf.reduce_logsumexp(every_lse) - tf.math.log(count))


def nce_loss(
    queries,
    positives,
    negatives,
    temperature: float = 0.07,
    log_noise_mean=None,
    negative_mask=None,
) -> tf.Tensor:
    """PIRL's NCE loss of ``queries`` against their memory ``positives`` and shared memory ``negatives``; scalar float32.

    Args:
        queries: ``[n, d]`` representations (normalised here; gradients flow into them).
        positives: ``[n, d]``, the memory entry of each query's image (no gradient).
        negatives: ``[N, d]`` memory entries drawn as noise (no gradient).
        temperature: t > 0 (PIRL: 0.07).
        log_noise_mean: ``log mu`` (a float32 scalar), or ``None`` to estimate it
            on this batch (:func:`nce_log_noise_mean`).
        negative_mask: optional ``[n, N]`` bools; False drops negative j of query i.

    Returns:
        The mean over queries of ``-log h(q, m) - sum_j log(1 - h(q, m_j))``
        (this replica's share under a strategy).

    Example:
        >>> q = tf.constant([[1.0, 0.0], [0.0, 1.0]])
        >>> memory = tf.constant([[0.0, -1.0], [-1.0, 0.0]])
        >>> # each query: softplus(log 2 - 1) + softplus(0 - log 2) + softplus(-1 - log 2)
        >>> round(float(nce_loss(q, q, memory, temperature=1.0, log_noise_mean=0.0)), 4)
        1.1258
    """
    temperature = validation.check_positive(temperature, "temperature")
    queries, positives, negatives, mask = _inputs(queries, positives, negatives, negative_mask)
    if log_noise_mean is None:
        log_noise_mean = nce_log_noise_mean(queries, negatives, temperature, mask)
    log_noise_mean = tf.stop_gradient(tf.cast(log_noise_mean, tf.float32))
    noise = tf.math.log(tf.cast(tf.shape(negatives)[0], tf.float32)) + log_noise_mean  # log(N mu)
    positive_logit = tf.reduce_sum(queries * positives, axis=1) / temperature
    negative_logits = tf.matmul(queries, negatives, transpose_b=True) / temperature
    negative_terms = tf.where(mask, tf.nn.softplus(negative_logits - noise), 0.0)
    per_query = tf.nn.softplus(noise - positive_logit) + tf.reduce_sum(negative_terms, axis=1)
    return distribute.replica_share(tf.reduce_sum(per_query), tf.shape(queries)[0])


@keras.saving.register_keras_serializable(package="tfcontrast")
class NCELoss(keras.losses.Loss):
    """PIRL's NCE loss, called as ``loss(queries, positives, negatives, log_noise_mean=None, negative_mask=None)``.

    ``h(x, m) = exp(x.m/t) / (exp(x.m/t) + N mu)`` and
    ``L = mean_i [-log h(q_i, m_i) - sum_j log(1 - h(q_i, n_j))]`` for
    L2-normalised queries q_i, their memory entries m_i and N shared
    negatives n_j; ``mu`` estimates ``E[exp(x.m'/t)]`` over the memory (module
    docstring). Positives and negatives get no gradient.

    The class is called directly (it is a batch-level loss with memory
    inputs, not a ``compile`` loss).

    Args:
        temperature: t > 0 (PIRL: 0.07).

    Raises:
        ValueError: ``temperature <= 0``; queries and positives not ``[n, d]`` of
            one shape; negatives of another width or empty; a mask not ``[n, N]``.

    Example:
        >>> loss = NCELoss(temperature=0.07)
        >>> q, memory = tf.random.normal([8, 16]), tf.random.normal([64, 16])
        >>> loss(q, q, memory).shape
        TensorShape([])
    """

    def __init__(self, temperature: float = 0.07, name: str = "nce_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = validation.check_positive(temperature, "temperature")

    def __call__(self, queries, positives, negatives, log_noise_mean=None, negative_mask=None):
        with tf.name_scope(self.name):
            return nce_loss(queries, positives, negatives, self.temperature, log_noise_mean, negative_mask)

    def call(self, y_true, y_pred):
        raise NotImplementedError("NCELoss is called directly: loss(queries, positives, negatives, ...).")

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
