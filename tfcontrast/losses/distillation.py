"""Knowledge distillation with soft targets at a temperature (SimCLRv2's distillation loss).

Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network"
(NIPS Deep Learning Workshop, 2015) train a student to match the teacher's
class probabilities softened by a temperature t; Chen, Kornblith, Swersky,
Norouzi and Hinton, "Big Self-Supervised Models are Strong Semi-Supervised
Learners" (NeurIPS 2020, eq. 3) use it on *unlabelled* images to distil a
fine-tuned network into a student of the same or a smaller size:

    L_distill(x) = - sum_y P_T(y | x; t) log P_S(y | x; t),
    P(y | x; t)  = softmax(logits(x) / t)_y.

The teacher's probabilities are constants (no gradient reaches the teacher).
Unlike Hinton et al. there is no ``t^2`` factor, as in SimCLRv2. With a
one-hot teacher (logits far apart) the loss is the cross-entropy of the
student at temperature t against the teacher's class. Computed in float32
whatever the inputs' dtype (float64 stays float64).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import validation


def distillation_loss(teacher_logits, student_logits, temperature: float = 1.0) -> tf.Tensor:
    """``-sum_y softmax(teacher / t)_y log softmax(student / t)_y`` per example: ``[batch]``.

    Args:
        teacher_logits: ``[batch, classes]``; no gradient flows into them.
        student_logits: ``[batch, classes]``.
        temperature: t > 0; above 1 softens both distributions.

    Raises:
        ValueError: inputs that are not ``[batch, classes]`` of one shape, or t <= 0.

    Example:
        >>> distillation_loss([[0.0, 0.0]], [[0.0, 0.0]]).numpy()  # two uniform distributions: log 2
        array([0.6931472], dtype=float32)
    """
    t = validation.check_positive(temperature, "temperature")
    teacher, student = validation.as_paired_rows(
        teacher_logits, student_logits, ("teacher_logits", "student_logits")
    )
    targets = tf.stop_gradient(tf.nn.softmax(teacher / t, axis=-1))
    return -tf.reduce_sum(targets * tf.nn.log_softmax(student / t, axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="tfcontrast")
class DistillationLoss(keras.losses.Loss):
    """Mean SimCLRv2 distillation loss, called as ``loss(teacher_logits, student_logits)``.

    See :func:`distillation_loss` for the formula; :class:`tfcontrast.models.Distiller`
    trains a student with it on unlabelled images.

    Args:
        temperature: t > 0 (SimCLRv2: 1.0 for self-distillation, also 0.1 and 0.5 tried).

    Example:
        >>> float(DistillationLoss(temperature=1.0)([[9.0, -9.0]], [[0.0, 0.0]]))  # ~ log 2
        0.6931...
    """

    def __init__(self, temperature: float = 1.0, name: str = "distillation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = validation.check_positive(temperature, "temperature")

    def call(self, y_true, y_pred):
        return distillation_loss(y_true, y_pred, self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
