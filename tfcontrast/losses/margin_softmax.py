"""Margin-softmax losses: softmax cross-entropy over scaled cosines with a margin on the true class.

With ``cos_j = cos(theta_j)`` the cosine between the normalised embedding and
the normalised weight of class j (:mod:`tfcontrast.losses.class_weights`),
``y`` the true class, ``s`` the scale and ``m`` the margin, both losses are the
mean over the batch of ``-log softmax(logits)[y]`` with

* **CosFace** (Wang, Wang, Zhou, Ji, Gong, Zhou, Li and Liu, "CosFace: Large
  Margin Cosine Loss for Deep Face Recognition", CVPR 2018), additive cosine
  margin:

      logit_y = s (cos theta_y - m),        logit_j = s cos theta_j  (j != y)

* **ArcFace** (Deng, Guo, Xue and Zafeiriou, "ArcFace: Additive Angular
  Margin Loss for Deep Face Recognition", CVPR 2019), additive angular margin:

      logit_y = s cos(theta_y + m)          if theta_y + m <= pi  (cos theta_y > cos(pi - m))
      logit_y = s (cos theta_y - m sin m)   otherwise             (the authors' fallback)
      logit_j = s cos theta_j  (j != y)

  ``cos(theta_y + m)`` stops decreasing in theta beyond ``pi - m``, so past
  that threshold the authors' code (insightface) switches to the monotone
  ``cos theta - m sin m`` (a CosFace-like margin ``m sin m``), which is what
  we do, with the same strict threshold ``cos theta_y > cos(pi - m)``. With
  ``easy_margin=True`` the margin is applied only where ``cos theta_y > 0``
  and ``logit_y = s cos theta_y`` elsewhere (the authors' ``easy_margin``).

**Numerical safety of ArcFace.** No ``acos`` is taken: ``cos(theta + m) =
cos theta cos m - sin theta sin m`` with ``sin theta = sqrt((1 - cos theta)
(1 + cos theta))``, after clipping ``cos theta`` to [-1, 1] (rounding can
push a normalised dot product past 1). The square root is
:func:`tfcontrast.distances.safe_sqrt`, whose value and gradient are 0 where
its argument is <= 1e-12, i.e. at ``theta`` = 0 and pi: there the derivative
of ``sin theta`` is taken as 0 instead of infinity (theta is not
differentiable there; the gradient of ``cos theta`` with respect to the
embedding vanishes at both points anyway), so an embedding equal to, or
opposite, its class weight trains with a finite gradient. The fallback branch
``cos theta - m sin m`` is taken at theta = pi, and ``tf.where`` never
multiplies an infinite derivative of the unused branch by 0.

Class weights are initialised ``N(0, 0.01^2)`` as in the authors' code
(insightface's ``fc7_weight``); they are L2-normalised per class in every
call, and the stored matrix is not renormalised. Per-sample losses are
averaged over the global batch under a ``tf.distribute`` strategy.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfcontrast import distances, validation
from tfcontrast.fields import Bool, Float
from tfcontrast.losses.class_weights import ClassWeightLoss, class_targets, cosine_similarities, mean_cross_entropy
from tfcontrast.registry import register_loss


def arcface_loss(
    labels, embeddings, weights, margin: float = 0.5, scale: float = 64.0, easy_margin: bool = False
) -> tf.Tensor:
    """ArcFace loss (Deng et al. 2019): softmax cross-entropy with the angular margin; scalar.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids in ``[0, num_classes)``.
        embeddings: ``[batch, dim]`` (normalised here; float32 inside for half inputs).
        weights: ``[num_classes, dim]`` class weights (normalised here).
        margin: the angular margin ``m`` in radians, ``0 <= m < pi`` (0.5 in the paper).
        scale: the scale ``s`` > 0 (64 in the paper).
        easy_margin: apply the margin only where ``cos theta_y > 0`` (else the
            ``theta + m > pi`` fallback ``cos theta - m sin m`` of the module docstring).

    Returns:
        The mean over the global batch (this replica's share under a strategy).

    Example:
        >>> weights = [[1.0, 0.0], [0.0, 1.0]]
        >>> round(float(arcface_loss([0], [[1.0, 0.0]], weights, margin=0.5, scale=4.0)), 4)
        0.0294
    """
    margin, scale = _check_margin_scale(margin, scale, angle=True)
    cos = cosine_similarities(embeddings, weights)
    targets, valid = class_targets(labels, cos)
    cos = tf.clip_by_value(cos, -1.0, 1.0)
    cos_y = tf.reduce_sum(tf.where(targets, cos, tf.zeros_like(cos)), axis=1)
    sin_y = distances.safe_sqrt((1.0 - cos_y) * (1.0 + cos_y))
    cos_y_plus_m = cos_y * math.cos(margin) - sin_y * math.sin(margin)
    if easy_margin:
        margined = tf.where(cos_y > 0.0, cos_y_plus_m, cos_y)
    else:
        margined = tf.where(cos_y > math.cos(math.pi - margin), cos_y_plus_m, cos_y - margin * math.sin(margin))
    logits = scale * tf.where(targets, margined[:, None], cos)
    return mean_cross_entropy(logits, targets, valid)


def cosface_loss(labels, embeddings, weights, margin: float = 0.35, scale: float = 64.0) -> tf.Tensor:
    """CosFace loss (Wang et al. 2018): softmax cross-entropy with the cosine margin; scalar.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids in ``[0, num_classes)``.
        embeddings: ``[batch, dim]`` (normalised here).
        weights: ``[num_classes, dim]`` class weights (normalised here).
        margin: the cosine margin ``m`` >= 0 (0.35 in the paper).
        scale: the scale ``s`` > 0 (64 in the paper).

    Returns:
        The mean over the global batch (this replica's share under a strategy).

    Example:
        >>> weights = [[1.0, 0.0], [0.0, 1.0]]
        >>> round(float(cosface_loss([0], [[1.0, 0.0]], weights, margin=0.35, scale=4.0)), 4)
        0.0716
    """
    margin, scale = _check_margin_scale(margin, scale)
    cos = cosine_similarities(embeddings, weights)
    targets, valid = class_targets(labels, cos)
    logits = scale * (cos - margin * tf.cast(targets, cos.dtype))
    return mean_cross_entropy(logits, targets, valid)


def _check_margin_scale(margin, scale, angle: bool = False) -> tuple[float, float]:
    margin = validation.check_non_negative(margin, "margin")
    if angle and margin >= math.pi:
        raise ValueError(f"`margin` is an angle in radians and must be < pi, got {margin!r}.")
    return margin, validation.check_positive(scale, "scale")


def _insightface_initializer():
    """``N(0, 0.01^2)``, the initializer of the class weights in the authors' code."""
    return keras.initializers.RandomNormal(stddev=0.01)


@keras.saving.register_keras_serializable(package="tfcontrast")
class ArcFaceLoss(ClassWeightLoss):
    """ArcFace (additive angular margin) loss with its trainable class weights.

    Deng, Guo, Xue and Zafeiriou, "ArcFace: Additive Angular Margin Loss for
    Deep Face Recognition", CVPR 2019. Called as ``loss(labels, embeddings)``;
    formula, the ``theta + m > pi`` fallback and the safety at theta = 0 and
    pi in :mod:`tfcontrast.losses.margin_softmax`. Class weights start
    ``N(0, 0.01^2)`` (insightface) and are normalised per class in every call.

    Args:
        num_classes: number of classes (identities, products; >= 2).
        embedding_dim: width of the embeddings; ``None``: the model's (set when
            ``EmbeddingModel(..., loss_head=...)`` builds it) or the first call's.
        margin: angular margin ``m`` in radians, ``0 <= m < pi`` (0.5).
        scale: logit scale ``s`` > 0 (64).
        easy_margin: margin only where ``cos theta_y > 0``.

    Train it as the head of an :class:`~tfcontrast.models.EmbeddingModel`
    (``loss_head=``), which trains, saves and mirrors the class weights with
    the model; ``predict`` still returns embeddings.

    Example:
        >>> head = ArcFaceLoss(num_classes=10, embedding_dim=64)
        >>> model = tfc.models.EmbeddingModel(encoder, embedding_dim=64, loss_head=head)  # doctest: +SKIP
        >>> model.compile(optimizer="adam")  # doctest: +SKIP
        >>> model.fit(x, labels, batch_size=128)  # doctest: +SKIP
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int | None = None,
        margin: float = 0.5,
        scale: float = 64.0,
        easy_margin: bool = False,
        name: str = "arcface_loss",
        **kwargs,
    ):
        margin, scale = _check_margin_scale(margin, scale, angle=True)
        super().__init__(num_classes, embedding_dim, _insightface_initializer(), name, **kwargs)
        self.margin, self.scale, self.easy_margin = margin, scale, bool(easy_margin)

    def call(self, labels, embeddings):
        return arcface_loss(labels, embeddings, self.class_weights, self.margin, self.scale, self.easy_margin)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "scale": self.scale, "easy_margin": self.easy_margin}


@keras.saving.register_keras_serializable(package="tfcontrast")
class CosFaceLoss(ClassWeightLoss):
    """CosFace (large margin cosine) loss with its trainable class weights.

    Wang, Wang, Zhou, Ji, Gong, Zhou, Li and Liu, "CosFace: Large Margin
    Cosine Loss for Deep Face Recognition", CVPR 2018. Called as
    ``loss(labels, embeddings)``: ``logit_y = s (cos theta_y - m)``,
    ``logit_j = s cos theta_j``. Class weights start ``N(0, 0.01^2)`` and are
    normalised per class in every call.

    Args:
        num_classes: number of classes (>= 2).
        embedding_dim: width of the embeddings; ``None``: the model's (set when
            ``EmbeddingModel(..., loss_head=...)`` builds it) or the first call's.
        margin: cosine margin ``m`` >= 0 (0.35).
        scale: logit scale ``s`` > 0 (64).

    Example:
        >>> head = CosFaceLoss(num_classes=10, embedding_dim=64)
        >>> model = tfc.models.EmbeddingModel(encoder, embedding_dim=64, loss_head=head)  # doctest: +SKIP
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int | None = None,
        margin: float = 0.35,
        scale: float = 64.0,
        name: str = "cosface_loss",
        **kwargs,
    ):
        margin, scale = _check_margin_scale(margin, scale)
        super().__init__(num_classes, embedding_dim, _insightface_initializer(), name, **kwargs)
        self.margin, self.scale = margin, scale

    def call(self, labels, embeddings):
        return cosface_loss(labels, embeddings, self.class_weights, self.margin, self.scale)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "scale": self.scale}


# By name: loss heads of the `embedding` method, sized by the data's classes and the model's embedding width.
register_loss(
    "arcface",
    ArcFaceLoss,
    inputs="labels",
    summary="ArcFace, additive angular margin (Deng et al., CVPR 2019): trainable class weights",
    fields={
        "margin": Float(doc="angular margin m in radians, in [0, pi)", within=f"[0, {math.pi})"),
        "scale": Float(doc="logit scale s of the cosines, > 0", within="(0, inf)"),
        "easy_margin": Bool(doc="apply the margin only where cos(theta_y) > 0"),
    },
    head=True,
)

register_loss(
    "cosface",
    CosFaceLoss,
    inputs="labels",
    summary="CosFace, large margin cosine (Wang et al., CVPR 2018): trainable class weights",
    fields={
        "margin": Float(doc="cosine margin m, >= 0", within="[0, inf)"),
        "scale": Float(doc="logit scale s of the cosines, > 0", within="(0, inf)"),
    },
    head=True,
)
