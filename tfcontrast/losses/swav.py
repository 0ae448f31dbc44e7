"""SwAV: Sinkhorn-Knopp codes and the swapped-prediction loss.

Caron, Misra, Mairal, Goyal, Bojanowski and Joulin, "Unsupervised Learning of
Visual Features by Contrasting Cluster Assignments", NeurIPS 2020.

**Codes.** For a batch's prototype scores ``s`` (``[B, K]``: the cosine of
each L2-normalised projection with each of K normalised prototypes),
Sinkhorn-Knopp finds the equipartitioned soft assignment closest to
``exp(s / epsilon)``. With ``Q = exp(s / epsilon)^T`` (``[K, B]``):

    Q /= sum(Q)
    repeat `iterations` times:
        Q /= row sums;     Q /= K      (every prototype holds 1/K of the batch)
        Q /= column sums;  Q /= B      (every sample holds 1/B)
    codes = (Q * B)^T                  (each sample's code sums to 1)

The codes are targets: no gradient flows through them.

**Loss.** Each crop v predicts the code of another crop c from its own scores,
``p_v = softmax(s_v / temperature)``, with the cross-entropy
``l(q_c, p_v) = -sum_k q_c[k] log p_v[k]``. For two crops

    L = -1/2 mean_b [ sum_k q_a log p_b + sum_k q_b log p_a ],

and with multi-crop (codes from the large crops only) L is the mean of
``mean_b l(q_c, p_v)`` over every pair (code crop c, other crop v != c), as in
the authors' code (sum over v / (V - 1), then mean over c).

**Numerics.** The iteration runs in the log domain: with row and column
potentials u, v, ``log Q = s / epsilon + u + v``, each normalisation is a
log-sum-exp, so large ``s / epsilon`` (small epsilon, unnormalised scores)
never overflow. The first ``Q /= sum(Q)`` is a scalar that the first row
normalisation removes; the final ``* B`` after the column normalisation makes
each code a softmax over prototypes: ``codes = softmax(s / epsilon + u)``.

**Distribution.** Under a ``tf.distribute`` strategy B is the *global* batch:
the row sums over samples are all-reduced (their stabilising maximum is
all-gathered), column sums are per sample and stay local, and the loss is
this replica's share of the global mean. R replicas holding B/R rows give the
codes, loss and gradients of one device holding all B. Computed in float32.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tfcontrast import distribute, validation


def _check_iterations(iterations) -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"`sinkhorn_iterations` / `iterations` must be an int >= 1, got {iterations!r}.")
    return iterations


def _check_scores(scores, name: str) -> tf.Tensor:
    scores = validation.to_float(scores, name)
    validation.check_rank(scores, 2, name)
    return scores


def _logsumexp_over_samples(logits: tf.Tensor, queue: tf.Tensor | None) -> tf.Tensor:
    """``log sum_b exp(logits[b, k])`` over the rows of every replica plus the (replicated) queue rows; ``[K]``."""
    local_max = tf.reduce_max(logits, axis=0)
    if queue is not None:
        local_max = tf.maximum(local_max, tf.reduce_max(queue, axis=0))
    maxima, _ = distribute.gather(local_max[None, :])
    shift = tf.reduce_max(maxima, axis=0)  # the same on every replica
    total = distribute.all_reduce_sum(tf.reduce_sum(tf.exp(logits - shift), axis=0))
    if queue is not None:
        total += tf.reduce_sum(tf.exp(queue - shift), axis=0)  # held by every replica: counted once
    return shift + tf.math.log(total)


def sinkhorn(scores, epsilon: float = 0.05, iterations: int = 3, queue_scores=None, queue_mask=None) -> tf.Tensor:
    """SwAV's equipartitioned codes of ``scores`` by Sinkhorn-Knopp over the global batch.

    Args:
        scores: ``[b, K]`` prototype scores of this replica's samples (any
            float dtype; no gradient flows back into them).
        epsilon: entropic regularisation > 0 (smaller: sharper codes).
        iterations: Sinkhorn-Knopp iterations, >= 1 (the paper uses 3).
        queue_scores: optional ``[q, K]`` scores of rows that every replica
            holds *identically* (SwAV's feature queue for small batches): they
            join the transport problem once (not once per replica), so B =
            global batch + q, and get no codes back.
        queue_mask: optional ``[q]`` booleans: only the queue rows marked True
            take part (a queue still filling up); B counts only them.

    Returns:
        ``[b, K]`` float32 codes (rows sum to 1): ``B * Q^T`` in the notation
        above. The prototypes' marginals ``sum_b codes[b, k] / B`` approach
        ``1/K`` as ``iterations`` grows.

    Example:
        >>> scores = tf.constant([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
        >>> codes = sinkhorn(scores, epsilon=0.5, iterations=50)
        >>> [round(float(v), 3) for v in tf.reduce_mean(codes, axis=0)]   # balanced, though 0 wins every row
        [0.5, 0.5]
    """
    epsilon = validation.check_positive(epsilon, "epsilon")
    iterations = _check_iterations(iterations)
    logits = tf.stop_gradient(_check_scores(scores, "scores")) / epsilon
    queue = None
    if queue_scores is not None:
        queue = tf.cast(tf.stop_gradient(_check_scores(queue_scores, "queue_scores")), logits.dtype) / epsilon
        validation.check_same_dim(logits, queue, 1, ("scores", "queue_scores"))
    if queue_mask is not None:
        if queue is None:
            raise ValueError("`queue_mask` needs `queue_scores`.")
        queue_mask = tf.convert_to_tensor(queue_mask, tf.bool)
        validation.check_rank(queue_mask, 1, "queue_mask")
        validation.check_same_dim(queue, queue_mask[:, None], 0, ("queue_scores", "queue_mask"))
    total = distribute.global_count(logits)
    if queue is not None:
        rows = tf.shape(queue)[0] if queue_mask is None else tf.reduce_sum(tf.cast(queue_mask, tf.int32))
        total += tf.cast(rows, total.dtype)
    log_prototypes = tf.math.log(tf.cast(tf.shape(logits)[1], logits.dtype))
    log_total = tf.math.log(tf.cast(total, logits.dtype))

    def column_potential(x, u):  # every sample's mass to 1/B
        return -log_total - tf.reduce_logsumexp(x + u, axis=1)

    v = tf.zeros_like(logits[:, 0])
    v_queue = None if queue is None else tf.zeros_like(queue[:, 0])
    for step in range(iterations):
        shifted_queue = None if queue is None else queue + v_queue[:, None]
        if queue_mask is not None:  # rows left out add exp(-inf) = 0 to the prototypes' sums
            shifted_queue = tf.where(queue_mask[:, None], shifted_queue, tf.constant(-float("inf"), queue.dtype))
        u = -log_prototypes - _logsumexp_over_samples(logits + v[:, None], shifted_queue)  # prototypes to 1/K
        if step < iterations - 1:
            v = column_potential(logits, u)
            v_queue = None if queue is None else column_potential(queue, u)
    # The last column step followed by * B: exp(logits + u + v + log B) = softmax(logits + u).
    return tf.nn.softmax(logits + u, axis=1)


def _check_code_crops(code_crops) -> tuple[int, ...]:
    try:
        crops = tuple(code_crops)
    except TypeError:
        crops = None
    if (
        not crops
        or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in crops)
        or len(set(crops)) != len(crops)
    ):
        raise ValueError(f"`code_crops` must be distinct crop indices >= 0 (e.g. (0, 1)), got {code_crops!r}.")
    return crops


def swav_loss(
    scores: Sequence,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    sinkhorn_iterations: int = 3,
    code_crops: Sequence[int] = (0, 1),
    queue_scores: Sequence | None = None,
) -> tf.Tensor:
    """Swapped prediction over crops: mean over (code crop c, other crop v) of ``-mean_b sum_k q_c log p_v``.

    Args:
        scores: a sequence of V >= 2 tensors ``[b, K]``, the prototype scores
            of each crop of the same b images (e.g. 2 large crops, then the
            small ones, as :class:`tfcontrast.augment.MultiCropAugmentation`
            orders them).
        temperature: softmax temperature of the predictions, > 0.
        epsilon: Sinkhorn regularisation, > 0.
        sinkhorn_iterations: Sinkhorn-Knopp iterations, >= 1.
        code_crops: indices into ``scores`` of the crops whose codes are the
            targets (SwAV: the large crops). Every other crop predicts each of
            them, and they predict each other.
        queue_scores: ``None``, or one entry per code crop: ``None`` or the
            ``[q, K]`` scores of that crop's feature queue (see :func:`sinkhorn`).

    Returns:
        Scalar float32; under a strategy this replica's share of the global
        mean.

    Example:
        >>> s = [tf.random.normal([8, 5]) for _ in range(4)]   # 4 crops, 5 prototypes
        >>> swav_loss(s, code_crops=(0, 1)).shape
        TensorShape([])
    """
    temperature = validation.check_positive(temperature, "temperature")
    code_crops = _check_code_crops(code_crops)
    if isinstance(scores, (tf.Tensor, dict)) or not isinstance(scores, Sequence) or len(scores) < 2:
        raise ValueError(
            f"`scores` must be a list of at least 2 per-crop [batch, prototypes] tensors, got {type(scores).__name__}"
            + (f" of length {len(scores)}." if isinstance(scores, Sequence) else ".")
        )
    scores = [_check_scores(s, f"scores[{i}]") for i, s in enumerate(scores)]
    scores = [tf.cast(s, scores[0].dtype) for s in scores]
    for i, s in enumerate(scores[1:], start=1):
        for axis in (0, 1):
            validation.check_same_dim(scores[0], s, axis, ("scores[0]", f"scores[{i}]"))
    if max(code_crops) >= len(scores):
        raise ValueError(f"`code_crops` {code_crops} indexes crops beyond the {len(scores)} given in `scores`.")
    if queue_scores is None:
        queue_scores = [None] * len(code_crops)
    elif len(queue_scores) != len(code_crops):
        raise ValueError(
            f"`queue_scores` must have one entry (a tensor or None) per code crop {code_crops}, "
            f"got {len(queue_scores)}."
        )

    codes = [sinkhorn(scores[crop], epsilon, sinkhorn_iterations, queue) for crop, queue in zip(code_crops, queue_scores)]
    return swapped_prediction(scores, codes, temperature, code_crops)


def swapped_prediction(scores: Sequence, codes: Sequence, temperature: float, code_crops: Sequence[int]) -> tf.Tensor:
    """The loss of :func:`swav_loss` given the codes: mean over (c, v != c) of ``-mean_b sum_k q_c log p_v``.

    For a model that computes the codes itself (to log them, or with a queue
    that fills up, :func:`sinkhorn`'s ``queue_mask``). No checks: ``scores``
    are V float32 ``[b, K]`` tensors, ``codes`` one ``[b, K]`` tensor per
    entry of ``code_crops``, ``temperature > 0``. Under a strategy this
    replica's share of the global mean.
    """
    log_predictions = [tf.nn.log_softmax(s / temperature, axis=1) for s in scores]
    total, pairs = 0.0, 0
    for crop, q in zip(code_crops, codes):
        for other, log_p in enumerate(log_predictions):
            if other != crop:
                total += -tf.reduce_sum(q * log_p)
                pairs += 1
    return distribute.replica_share(total, pairs * tf.shape(scores[0])[0])


@keras.saving.register_keras_serializable(package="tfcontrast")
class SwAVLoss(keras.losses.Loss):
    """SwAV swapped-prediction loss (Caron et al., NeurIPS 2020), called as ``loss(scores, queue_scores=None)``.

    ``scores`` is a list with one ``[batch, prototypes]`` tensor per crop:
    the scores ``z_v . c_k`` of each crop's L2-normalised projection with the
    L2-normalised prototypes. The crops listed in ``code_crops`` (the large
    crops; by default the first two) get Sinkhorn-Knopp codes over the global
    batch (:func:`sinkhorn`, no gradient); each other crop predicts them with
    ``softmax(scores / temperature)``; the loss is the mean cross-entropy over
    every (code crop, other crop) pair. With two crops this is
    ``-1/2 mean_b [sum_k q_a log p_b + sum_k q_b log p_a]``.

    ``queue_scores`` (one entry per code crop, each ``None`` or ``[q,
    prototypes]``) adds the scores of a feature queue to the Sinkhorn problem
    of that code crop, for batches smaller than the number of prototypes; the
    queue must be identical on every replica. The class is called directly
    (batch-level loss: no ``sample_weight``).

    Args:
        temperature: prediction softmax temperature, > 0 (paper: 0.1).
        epsilon: Sinkhorn entropic regularisation, > 0 (paper: 0.05).
        sinkhorn_iterations: Sinkhorn-Knopp iterations, >= 1 (paper: 3).
        code_crops: indices of the crops whose codes are targets.

    Raises:
        ValueError: a bad argument; fewer than 2 crops; crops whose shapes
            differ; ``code_crops`` out of range.

    Example:
        >>> loss = SwAVLoss(temperature=0.1, code_crops=(0, 1))
        >>> crops = [tf.math.l2_normalize(tf.random.normal([16, 8]), 1) for _ in range(6)]   # 2 large + 4 small
        >>> prototypes = tf.math.l2_normalize(tf.random.normal([8, 30]), 0)
        >>> loss([c @ prototypes for c in crops]).shape
        TensorShape([])
    """

    def __init__(
        self,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        code_crops: Sequence[int] = (0, 1),
        name: str = "swav_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.temperature = validation.check_positive(temperature, "temperature")
        self.epsilon = validation.check_positive(epsilon, "epsilon")
        self.sinkhorn_iterations = _check_iterations(sinkhorn_iterations)
        self.code_crops = _check_code_crops(code_crops)

    def __call__(self, scores, queue_scores=None):
        with tf.name_scope(self.name):
            return self.call(scores, queue_scores)

    def call(self, y_true, y_pred=None):
        """``y_true``: the per-crop scores; ``y_pred``: the optional queue scores."""
        return swav_loss(
            y_true, self.temperature, self.epsilon, self.sinkhorn_iterations, self.code_crops, queue_scores=y_pred
        )

    def get_config(self):
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "epsilon": self.epsilon,
            "sinkhorn_iterations": self.sinkhorn_iterations,
            "code_crops": list(self.code_crops),
        }
