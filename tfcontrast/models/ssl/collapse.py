"""Collapse indicators for self-supervised embeddings, computed over the global batch.

* **Projection std** (Chen and He, SimSiam, 2021, section 4.1): the standard
  deviation over the batch of each dimension of the L2-normalised projections,
  averaged over dimensions. A collapsed representation (every input mapped to
  one point) gives 0; projections spread uniformly over the sphere give about
  ``1 / sqrt(d)``.
* **Effective rank** (Roy and Vetterli, 2007): ``exp(H(p))`` with
  ``p_k = sigma_k / sum_j sigma_j`` the normalised singular values of the
  centred batch of embeddings. Ranges from 1 (all variance along one
  direction: dimensional collapse) to the embedding dimension.
* **Assignment entropy** (for clustering methods such as SwAV): the entropy
  of the share of inputs each prototype wins; ``log K`` for even use of K
  prototypes, 0 when one prototype takes every input.

All reduce over all replicas (sums all-reduced before any division), so every
replica reports the statistic of the global batch. Plain TF ops: they compile
with XLA.
"""

from __future__ import annotations

import tensorflow as tf

from tfcontrast import distances, distribute
from tfcontrast.linalg import symmetric_eigvalsh


def _global_moments(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(count, mean [d], second moment E[x x^T] [d, d]) of the rows of x over all replicas."""
    count = distribute.all_reduce_sum(tf.cast(tf.shape(x)[0], x.dtype))
    total = distribute.all_reduce_sum(tf.reduce_sum(x, axis=0))
    outer = distribute.all_reduce_sum(tf.matmul(x, x, transpose_a=True))
    return count, total / count, outer / count


def projection_std(projections: tf.Tensor) -> tf.Tensor:
    """Mean over dimensions of the per-dimension std of the normalised projections."""
    z = distances.l2_normalize(tf.cast(projections, tf.float32))
    count = distribute.all_reduce_sum(tf.cast(tf.shape(z)[0], z.dtype))
    mean = distribute.all_reduce_sum(tf.reduce_sum(z, axis=0)) / count
    second = distribute.all_reduce_sum(tf.reduce_sum(tf.square(z), axis=0)) / count
    return tf.reduce_mean(tf.sqrt(tf.maximum(second - tf.square(mean), 0.0)))


def effective_rank(embeddings: tf.Tensor) -> tf.Tensor:
    """``exp(entropy)`` of the normalised singular values of the centred embeddings.

    The singular values come from the eigenvalues of the global covariance
    (``sigma_k = sqrt(n * lambda_k)``; the factor cancels in p), so replicas
    exchange d x d sums, not embeddings. Non-finite embeddings give NaN.
    """
    h = tf.cast(embeddings, tf.float32)
    _, mean, second = _global_moments(h)
    covariance = second - mean[:, None] * mean[None, :]
    eigenvalues = symmetric_eigvalsh(covariance)  # NaN (not an error) for non-finite embeddings
    sigma = tf.sqrt(tf.maximum(eigenvalues, 0.0))
    p = tf.math.divide_no_nan(sigma, tf.reduce_sum(sigma))
    entropy = -tf.reduce_sum(tf.where(p > 0, p * tf.math.log(tf.maximum(p, 1e-30)), tf.zeros_like(p)))
    return tf.where(tf.reduce_all(tf.math.is_finite(eigenvalues)), tf.exp(entropy), float("nan"))


def assignment_entropy(codes: tf.Tensor) -> tf.Tensor:
    """Entropy (nats) of the prototype usage of cluster codes ``[..., K]`` over all replicas.

    Each row is assigned to its largest entry (``argmax_k``); the entropy of
    the global share of rows per prototype is ``log K`` when every prototype
    takes as many rows and 0 when one prototype takes them all (every input
    mapped to one cluster). Hard assignments, because SwAV's Sinkhorn codes
    are equipartitioned by construction: the mean of the soft codes is close
    to uniform whether or not the features have collapsed.
    """
    codes = tf.cast(codes, tf.float32)
    num_prototypes = tf.shape(codes)[-1]
    flat = tf.reshape(codes, [-1, num_prototypes])
    counts = distribute.all_reduce_sum(tf.reduce_sum(tf.one_hot(tf.argmax(flat, axis=1), num_prototypes), axis=0))
    p = counts / tf.maximum(tf.reduce_sum(counts), 1.0)
    return -tf.reduce_sum(tf.where(p > 0, p * tf.math.log(tf.maximum(p, 1e-30)), tf.zeros_like(p)))
