"""Barlow Twins redundancy-reduction loss.

Zbontar, Jing, Misra, LeCun and Deny, "Barlow Twins: Self-Supervised Learning
via Redundancy Reduction", ICML 2021. Each embedding dimension is
standardised over the batch, as a BatchNorm without affine parameters (mean
and *biased* variance, ``eps = 1e-5``),

    z_n = (z - mean(z)) / sqrt(var(z) + 1e-5),

the two views' standardised embeddings give the cross-correlation matrix

    C = z_a_n^T z_b_n / N                        ([d, d]; N = batch size),

and the loss pulls its diagonal to 1 (invariance) and its off-diagonal to 0
(redundancy reduction):

    L = sum_i (1 - C_ii)^2 + lambda_ * sum_{i != j} C_ij^2.

Under a ``tf.distribute`` strategy the means, variances and C are all-reduced
over the *global* batch: R replicas holding B/R rows each give the loss and
gradients of one device holding all B (each replica returns ``L / R``, see
:func:`tfcontrast.distribute.replicated_share`). Computed in float32 for
half-precision inputs.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distribute, validation

BATCH_NORM_EPSILON = 1e-5


def standardize(z: tf.Tensor, count: tf.Tensor | None = None) -> tf.Tensor:
    """``(z - mean) / sqrt(var + 1e-5)`` per dimension over the global batch (biased variance).

    ``count`` is the global batch size (:func:`tfcontrast.distribute.global_count`).
    The mean is taken first and the variance of the centred values second
    (two passes: no difference of large sums).
    """
    count = distribute.global_count(z) if count is None else count
    centred = z - distribute.global_mean(z, count)
    variance = distribute.global_mean(tf.square(centred), count)
    return centred * tf.math.rsqrt(variance + BATCH_NORM_EPSILON)


def cross_correlation(z_a, z_b) -> tf.Tensor:
    """Barlow Twins' ``C = z_a_n^T z_b_n / N`` (``[d, d]`` float32) over the global batch.

    The same matrix on every replica. Useful as a diagnostic too: a healthy
    run drives it towards the identity.
    """
    z_a, z_b = validation.as_paired_rows(z_a, z_b, ("z_a", "z_b"))
    count = distribute.global_count(z_a)
    product = tf.matmul(standardize(z_a, count), standardize(z_b, count), transpose_a=True)
    return distribute.all_reduce_sum(product) / tf.cast(count, product.dtype)


def barlow_twins_loss(z_a, z_b, lambda_: float = 5e-3) -> tf.Tensor:
    """``sum_i (1 - C_ii)^2 + lambda_ sum_{i != j} C_ij^2`` for two views; scalar float32.

    Args:
        z_a: ``[n, d]`` projections of the first views (any float dtype).
        z_b: ``[n, d]`` projections of the second views, row i the same example.
        lambda_: weight of the off-diagonal (redundancy) term, >= 0.

    Returns:
        The loss; under a strategy this replica's share ``L / R`` of the
        global loss (summed over replicas: the loss of the global batch).

    Example:
        >>> z = tf.random.normal([64, 8])
        >>> float(barlow_twins_loss(z, z)) < float(barlow_twins_loss(z, tf.random.normal([64, 8])))
        True
    """
    lambda_ = validation.check_non_negative(lambda_, "lambda_")
    c = cross_correlation(z_a, z_b)
    diagonal = tf.linalg.diag_part(c)
    invariance = tf.reduce_sum(tf.square(1.0 - diagonal))
    redundancy = tf.reduce_sum(tf.square(tf.linalg.set_diag(c, tf.zeros_like(diagonal))))
    return distribute.replicated_share(invariance + lambda_ * redundancy)


@keras.saving.register_keras_serializable(package="tfcontrast")
class BarlowTwinsLoss(keras.losses.Loss):
    """Barlow Twins loss (Zbontar et al., ICML 2021), called as ``loss(z_a, z_b)``.

    ``z_a`` and ``z_b`` are the projections of two augmented views of the same
    batch (row i of each is example i). Each dimension is standardised over
    the global batch, ``C = z_a_n^T z_b_n / N``, and

        L = sum_i (1 - C_ii)^2 + lambda_ * sum_{i != j} C_ij^2.

    The paper uses ``lambda_ = 5e-3`` with 8192-dimensional projections;
    ``lambda_ = 0`` keeps only the invariance term (which no longer prevents
    redundant, collapsed dimensions).

    Args:
        lambda_: off-diagonal weight, >= 0.

    Raises:
        ValueError: ``lambda_ < 0``; views that are not ``[n, d]`` or whose
            shapes differ.

    Example:
        >>> loss = BarlowTwinsLoss(lambda_=5e-3)
        >>> loss(tf.random.normal([32, 16]), tf.random.normal([32, 16])).shape
        TensorShape([])
    """

    def __init__(self, lambda_: float = 5e-3, name: str = "barlow_twins_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.lambda_ = validation.check_non_negative(lambda_, "lambda_")

    def call(self, y_true, y_pred):
        return barlow_twins_loss(y_true, y_pred, self.lambda_)

    def get_config(self):
        return {**super().get_config(), "lambda_": self.lambda_}
