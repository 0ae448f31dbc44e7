"""VICReg: variance-invariance-covariance regularisation.

Bardes, Ponce and LeCun, "VICReg: Variance-Invariance-Covariance
Regularization for Self-Supervised Learning", ICLR 2022 (the convention of the
authors' code). For two views ``z_a``, ``z_b`` of a batch of N examples in d
dimensions:

* invariance: ``inv = mean_{n, j} (z_a[n, j] - z_b[n, j])^2`` (a mean squared
  error over batch and dimensions);
* variance: a hinge on each dimension's standard deviation, from the
  *unbiased* variance, averaged over dimensions and over the two views,
  ``var = (mean_j relu(1 - sqrt(Var(z_a)_j + eps)) + mean_j relu(1 - sqrt(Var(z_b)_j + eps))) / 2``;
* covariance: the squared off-diagonal covariances, ``Cov = (z - mean)^T (z -
  mean) / (N - 1)``, ``cov = sum_{i != j} Cov(z_a)_ij^2 / d + sum_{i != j} Cov(z_b)_ij^2 / d``;

    L = sim_weight * inv + var_weight * var + cov_weight * cov.

Under a ``tf.distribute`` strategy every term is a statistic of the *global*
batch (the squared error, means and covariances are all-reduced): R replicas
holding B/R rows give the loss and gradients of one device holding all B, each
replica returning ``L / R``. Computed in float32 for half-precision inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from tfcontrast import distribute, validation


class VICRegTerms(NamedTuple):
    """The three unweighted VICReg terms of a batch (global values, the same on every replica)."""

    invariance: tf.Tensor
    variance: tf.Tensor
    covariance: tf.Tensor


def _variance_and_covariance(z, count, epsilon):
    centred = z - distribute.global_mean(z, count)
    # N - 1 floored at 1: a single example has no spread (Var = Cov = 0) instead of 0 / 0.
    denominator = tf.maximum(tf.cast(count, z.dtype) - 1.0, 1.0)
    cov = distribute.all_reduce_sum(tf.matmul(centred, centred, transpose_a=True)) / denominator
    variance = tf.linalg.diag_part(cov)
    hinge = tf.reduce_mean(tf.nn.relu(1.0 - tf.sqrt(variance + epsilon)))
    off_diagonal = tf.linalg.set_diag(cov, tf.zeros_like(variance))
    dim = tf.cast(tf.shape(z)[1], z.dtype)
    return hinge, tf.reduce_sum(tf.square(off_diagonal)) / dim


def vicreg_terms(z_a, z_b, epsilon: float = 1e-4) -> VICRegTerms:
    """The unweighted ``(invariance, variance, covariance)`` terms of VICReg over the global batch.

    Every replica gets the same global values (for logging or for a custom
    weighting); :func:`vicreg_loss` combines them.

    Raises:
        ValueError: views that are not ``[n, d]`` of one shape, ``epsilon <=
            0``, or a single-example batch outside a strategy (the unbiased
            variance needs two).
    """
    epsilon = validation.check_positive(epsilon, "epsilon")
    z_a, z_b = validation.as_paired_rows(z_a, z_b, ("z_a", "z_b"))
    if distribute.num_replicas() == 1 and z_a.shape[0] == 1:
        raise ValueError("VICReg needs at least 2 examples per batch (the unbiased variance divides by N - 1).")
    count = distribute.global_count(z_a)
    squared_error = distribute.all_reduce_sum(tf.reduce_sum(tf.square(z_a - z_b)))
    invariance = squared_error / (tf.cast(count, z_a.dtype) * tf.cast(tf.shape(z_a)[1], z_a.dtype))
    variance_a, covariance_a = _variance_and_covariance(z_a, count, epsilon)
    variance_b, covariance_b = _variance_and_covariance(z_b, count, epsilon)
    return VICRegTerms(invariance, (variance_a + variance_b) / 2.0, covariance_a + covariance_b)


def vicreg_loss(
    z_a,
    z_b,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    epsilon: float = 1e-4,
) -> tf.Tensor:
    """``sim_weight * inv + var_weight * var + cov_weight * cov`` for two views; scalar float32.

    Args:
        z_a: ``[n, d]`` projections of the first views (any float dtype).
        z_b: ``[n, d]`` projections of the second views, row i the same example.
        sim_weight, var_weight, cov_weight: term weights, >= 0 (the paper's
            25, 25, 1).
        epsilon: added to the variance under the square root, > 0.

    Returns:
        The loss; under a strategy this replica's share ``L / R`` of the
        global loss.

    Example:
        >>> z = tf.random.normal([64, 8])
        >>> float(vicreg_terms(z, z).invariance)
        0.0
    """
    sim_weight = validation.check_non_negative(sim_weight, "sim_weight")
    var_weight = validation.check_non_negative(var_weight, "var_weight")
    cov_weight = validation.check_non_negative(cov_weight, "cov_weight")
    terms = vicreg_terms(z_a, z_b, epsilon)
    loss = sim_weight * terms.invariance + var_weight * terms.variance + cov_weight * terms.covariance
    return distribute.replicated_share(loss)


@keras.saving.register_keras_serializable(package="tfcontrast")
class VICRegLoss(keras.losses.Loss):
    """VICReg loss (Bardes, Ponce and LeCun, ICLR 2022), called as ``loss(z_a, z_b)``.

    ``z_a`` and ``z_b`` are the projections (the paper's "expander" outputs)
    of two augmented views of the same batch. The invariance term pulls the
    views together; the variance hinge keeps every dimension's standard
    deviation at 1 or more (no collapse); the covariance term decorrelates the
    dimensions. See :mod:`tfcontrast.losses.vicreg` for the exact terms.

    Args:
        sim_weight: invariance weight (lambda in the paper), >= 0.
        var_weight: variance weight (mu), >= 0.
        cov_weight: covariance weight (nu), >= 0.
        epsilon: numerical floor inside ``sqrt(Var + epsilon)``, > 0.

    Raises:
        ValueError: a negative weight, ``epsilon <= 0``, views that are not
            ``[n, d]`` of one shape, or a single-example batch.

    Example:
        >>> loss = VICRegLoss()
        >>> z = tf.random.normal([32, 16])
        >>> float(loss(z, z)) > 0.0   # identical views: no invariance term, but variance and covariance
        True
    """

    def __init__(
        self,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        epsilon: float = 1e-4,
        name: str = "vicreg_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.sim_weight = validation.check_non_negative(sim_weight, "sim_weight")
        self.var_weight = validation.check_non_negative(var_weight, "var_weight")
        self.cov_weight = validation.check_non_negative(cov_weight, "cov_weight")
        self.epsilon = validation.check_positive(epsilon, "epsilon")

    def call(self, y_true, y_pred):
        return vicreg_loss(y_true, y_pred, self.sim_weight, self.var_weight, self.cov_weight, self.epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "sim_weight": self.sim_weight,
            "var_weight": self.var_weight,
            "cov_weight": self.cov_weight,
            "epsilon": self.epsilon,
        }
