"""Cosine regression losses of the non-contrastive methods BYOL and SimSiam.

BYOL, Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020: the online
prediction q regresses the target projection z' (a constant: stop-gradient),

    L(q, z') = || q/||q|| - z'/||z'|| ||^2 = 2 - 2 cos(q, z').

SimSiam, Chen and He, "Exploring Simple Siamese Representation Learning",
CVPR 2021: the same objective written as a negative cosine,

    D(p, z) = -cos(p, stopgrad(z)).

Both return one value per example (the classes average them and Keras scales
the mean for a ``tf.distribute`` strategy); the models symmetrise over the two
views. Inputs of any float dtype are computed in float32.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distances, validation


def _cosine(p, z) -> tf.Tensor:
    p, z = tf.convert_to_tensor(p), tf.convert_to_tensor(z)
    validation.check_rank(p, 2, "p")
    validation.check_rank(z, 2, "z")
    for axis in (0, 1):
        validation.check_same_dim(p, z, axis, ("p", "z"))
    p_unit = distances.l2_normalize(p)
    z_unit = tf.cast(distances.l2_normalize(tf.stop_gradient(z)), p_unit.dtype)
    return tf.reduce_sum(p_unit * z_unit, axis=-1)


def byol_loss(p, z) -> tf.Tensor:
    """``2 - 2 cos(p_i, stopgrad(z_i))`` per example, in [0, 4].

    Args:
        p: ``[batch, dim]`` online predictions.
        z: ``[batch, dim]`` target projections (no gradient flows into them).

    Example:
        >>> byol_loss([[1.0, 0.0]], [[0.0, 3.0]]).numpy()
        array([2.], dtype=float32)
    """
    return 2.0 - 2.0 * _cosine(p, z)


def negative_cosine_similarity(p, z) -> tf.Tensor:
    """SimSiam's ``D(p, z) = -cos(p_i, stopgrad(z_i))`` per example, in [-1, 1].

    Example:
        >>> negative_cosine_similarity([[1.0, 1.0]], [[2.0, 2.0]]).numpy()
        array([-1.], dtype=float32)
    """
    return -_cosine(p, z)


@keras.saving.register_keras_serializable(package="tfcontrast")
class BYOLLoss(keras.losses.Loss):
    """BYOL regression loss, called as ``loss(p, z)``: mean of ``2 - 2 cos(p, stopgrad(z))``.

    ``p`` are online predictions, ``z`` target projections. BYOL sums it over
    both view orders (:class:`tfcontrast.models.BYOL` does that).

    Raises:
        ValueError: inputs that are not ``[batch, dim]`` of one shape.

    Example:
        >>> float(BYOLLoss()([[1.0, 0.0]], [[1.0, 0.0]]))
        0.0
    """

    def __init__(self, name: str = "byol_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return byol_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="tfcontrast")
class SimSiamLoss(keras.losses.Loss):
    """SimSiam loss, called as ``loss(p, z)``: mean of ``-cos(p, stopgrad(z))``.

    Raises:
        ValueError: inputs that are not ``[batch, dim]`` of one shape.
    """

    def __init__(self, name: str = "simsiam_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return negative_cosine_similarity(y_true, y_pred)
