"""Pairwise contrastive (margin) loss.

Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant
Mapping", CVPR 2006. For a pair with label y (1 = similar, 0 = dissimilar) at
distance d:

    L(y, d) = y * d^2 + (1 - y) * max(margin - d, 0)^2

Similar pairs are pulled together; dissimilar pairs are pushed apart until
they are ``margin`` away. Same arguments and values as
``tfa.losses.ContrastiveLoss`` (TensorFlow Addons), which cannot be imported
on TensorFlow >= 2.16.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import validation
from tfcontrast.losses import base
from tfcontrast.fields import Float
from tfcontrast.registry import register_loss


def contrastive_loss(y_true, y_pred, margin: float = 1.0) -> tf.Tensor:
    """Per-pair contrastive loss ``y d^2 + (1 - y) max(margin - d, 0)^2``.

    Args:
        y_true: ``[batch]`` or ``[batch, 1]`` pair labels, 1 = similar, 0 = dissimilar.
        y_pred: pair distances, same shape as ``y_true``.
        margin: distance beyond which dissimilar pairs cost nothing (>= 0).

    Returns:
        ``[batch]`` float32 losses (the class averages them). NaN for a pair
        whose distance is not finite.

    Raises:
        ValueError: (eagerly) a pair label other than 0 or 1. In a graph the
            same check is an assertion (``InvalidArgumentError``); under
            ``jit_compile=True``, which compiles assertions out, every pair
            loss of the batch is NaN instead.

    Example:
        >>> contrastive_loss([1.0, 0.0], [0.5, 0.5], margin=1.0).numpy()
        array([0.25, 0.25], dtype=float32)
    """
    margin = validation.check_non_negative(margin, "margin")
    y_pred = validation.to_float(y_pred, "y_pred")
    y_true, ok = validation.binary_labels(y_true, "y_true")
    y_true = tf.cast(y_true, y_pred.dtype)
    y_pred = _as_vector(y_pred, "y_pred")
    y_true = _as_vector(y_true, "y_true")
    validation.check_same_dim(y_true, y_pred, 0, ("y_true", "y_pred"))
    hinge = tf.maximum(margin - y_pred, 0.0)
    values = y_true * tf.square(y_pred) + (1.0 - y_true) * tf.square(hinge)
    values = tf.where(tf.math.is_finite(y_pred), values, tf.fill(tf.shape(values), tf.constant(float("nan"), values.dtype)))
    return base.nan_unless(ok, values)


def _as_vector(x: tf.Tensor, name: str) -> tf.Tensor:
    if x.shape.rank == 2 and x.shape[1] == 1:
        return tf.reshape(x, [-1])
    if x.shape.rank != 1:
        raise ValueError(
            f"`{name}` must hold one value per pair, shape [batch] or [batch, 1]; got shape {x.shape}."
        )
    return x


@keras.saving.register_keras_serializable(package="tfcontrast")
class ContrastiveLoss(base.SimilarityLoss):
    """Contrastive margin loss on (pair label, pair distance); mean over pairs.

    ``y_true`` is 1 for similar pairs and 0 for dissimilar ones; ``y_pred`` is
    the distance between the two embeddings of the pair (for instance the
    output of :class:`tfcontrast.models.SiameseNetwork`). Drop-in for
    ``tfa.losses.ContrastiveLoss``. Per-pair values are reduced by Keras
    (``sample_weight`` applies).

    Args:
        margin: distance beyond which dissimilar pairs cost nothing (>= 0).

    Raises:
        ValueError: ``margin < 0``, inputs that are not one value per pair, or
            (eagerly) pair labels other than 0 and 1; in a compiled step such
            labels raise ``InvalidArgumentError``, or give a NaN loss under
            ``jit_compile=True``.

    Example:
        >>> loss = ContrastiveLoss(margin=1.0)
        >>> float(loss([1.0, 0.0], [0.5, 0.5]))
        0.25
    """

    function = staticmethod(contrastive_loss)
    per_example = True

    def __init__(self, margin: float = 1.0, name: str = "contrastive_loss", **kwargs):
        super().__init__(name=name, margin=validation.check_non_negative(margin, "margin"), **kwargs)


register_loss(
    "contrastive",
    ContrastiveLoss,
    inputs="pairs",
    summary="contrastive margin loss on pairs (Hadsell, Chopra and LeCun, CVPR 2006)",
    fields={"margin": Float(doc="dissimilar pairs closer than this are penalised, >= 0", within="[0, inf)")},
)
