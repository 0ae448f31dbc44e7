"""Distilling a classifier into a student on unlabelled images (SimCLRv2, step 3).

After fine-tuning on a few labels, SimCLRv2 (Chen, Kornblith, Swersky,
Norouzi and Hinton, "Big Self-Supervised Models are Strong Semi-Supervised
Learners", NeurIPS 2020, section 2, eq. 3) uses the fine-tuned network as a
teacher that labels *every* unlabelled image with its softened class
probabilities, and trains a student to match them: the same architecture
(self-distillation, which improves on the teacher) or a smaller one (which
keeps most of its accuracy). :class:`Distiller` minimises, over a batch B
whose labelled part is L,

    loss = (1/|B|) sum_{x in B} L_distill(x) + alpha (1/|L|) sum_{(x, y) in L} -log P_S(y | x),

    L_distill(x) = -sum_y P_T(y | x; t) log P_S(y | x; t),   P(. | x; t) = softmax(logits / t)

(:func:`tfcontrast.losses.distillation_loss`; both means over the global batch
under a strategy, the supervised term 0 when L is empty). ``alpha = 0`` is
pure distillation, as SimCLRv2 uses for its main results; SimCLRv2 writes the
combination as ``(1 - a) sup + a distill``, which is this loss times ``a`` with
``alpha = (1 - a) / a``.

**Batches.** ``x`` (all unlabelled) or ``(x, labels)``: integer labels, one
per image, with **-1 for an unlabelled image**. A labelled subset inside an
unlabelled pool is ``labels = np.full(n, -1); labels[indices] = y[indices]``.
Every image is distilled; the labelled ones also count in the supervised term
and the ``accuracy`` metric.

**The teacher is fixed**: it is set ``trainable = False`` here (so no
optimizer ever holds its variables), runs in inference mode (BatchNorm moving
statistics, no dropout) and receives no gradient. Teacher and student see the
same (optionally augmented) images.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from tfcontrast import distribute, losses, validation
from tfcontrast.models.classification import (
    ClassifierModel,
    classifier_width,
    cross_entropy_share,
    freeze,
    regularization_share,
)


@keras.saving.register_keras_serializable(package="tfcontrast")
class Distiller(ClassifierModel):
    """Trains ``student`` to match a fixed ``teacher``'s soft labels on (mostly) unlabelled images.

    ``model(x)`` returns the student's float32 logits; after ``fit`` the
    classifier to keep is ``model.student``. Train with ``compile(optimizer)``
    and ``fit`` on ``x`` or ``(x, labels)`` with -1 marking unlabelled images
    (module docstring).

    Args:
        teacher: a classifier ``keras.Model`` (images -> logits ``[batch, C]``),
            e.g. a fine-tuned :class:`~tfcontrast.models.FineTuner`; frozen here.
        student: a classifier with the same C, sharing no variable with the
            teacher: a new copy of the teacher's architecture (self-distillation)
            or a smaller network.
        temperature: t > 0 of the soft labels (SimCLRv2: 1.0).
        alpha: weight >= 0 of the supervised cross-entropy on the labelled images.
        augment: optional callable images -> images applied to the training
            batch inside the step (teacher and student see the same images).

    Metrics: ``loss``, ``accuracy`` (labelled images only), ``distill_loss``
    and ``agreement`` (share of images where the student's top class is the
    teacher's).

    Raises:
        ValueError: a teacher or student that is not a classifier model, a
            different number of classes, shared variables, networks created
            outside the strategy scope the Distiller is built in, a bad
            ``temperature`` / ``alpha``; at ``fit``: labels outside ``[-1, C)``.

    Example:
        >>> teacher = tfc.models.FineTuner(ssl_model, 10, from_layer=1)         # doctest: +SKIP
        >>> teacher.compile(optimizer="adam"); teacher.fit(x_few, y_few, epochs=50)
        >>> student = tfc.models.FineTuner(ssl_model, 10, from_layer=1)          # same architecture
        >>> distiller = tfc.models.Distiller(teacher, student, temperature=1.0)
        >>> distiller.compile(optimizer="adam")
        >>> distiller.fit(x_unlabelled, batch_size=128, epochs=20)
        >>> distiller.student.evaluate(x_test, y_test, return_dict=True)["accuracy"]
    """

    lowest_label = -1

    def __init__(
        self,
        teacher: keras.Model,
        student: keras.Model,
        temperature: float = 1.0,
        alpha: float = 0.0,
        augment: Callable[[tf.Tensor], tf.Tensor] | None = None,
        **kwargs,
    ):
        classes = classifier_width(teacher, "teacher")
        student_classes = classifier_width(student, "student")
        if student_classes != classes:
            raise ValueError(f"`student` outputs {student_classes} classes but `teacher` outputs {classes}: they must match.")
        super().__init__(classes, augment=augment, **kwargs)
        teacher_ids = {id(_raw(v)) for v in teacher.weights}
        if teacher is student or any(id(_raw(v)) in teacher_ids for v in student.weights):
            raise ValueError(
                "`student` shares variables with `teacher`: the student must be a separate network "
                "(e.g. build a new FineTuner from the same pretrained model)."
            )
        strategy = tf.distribute.get_strategy()
        for name, network in (("teacher", teacher), ("student", student)):
            if any(not strategy.extended.variable_created_in_scope(_raw(v)) for v in network.weights):
                raise ValueError(
                    f"`{name}` was created outside the scope of the strategy the Distiller is built in: create "
                    "teacher, student and Distiller inside the same `strategy.scope()`."
                )
        self.temperature = validation.check_positive(temperature, "temperature")
        self.alpha = validation.check_non_negative(alpha, "alpha")
        self.teacher = teacher
        freeze(self.teacher)
        self.student = student
        self.distill_tracker = keras.metrics.Mean(name="distill_loss")
        self.agreement_tracker = keras.metrics.Mean(name="agreement")
        self.extra_trackers = [self.distill_tracker, self.agreement_tracker]
        self.built = True  # both networks are built: fit, save and load can start

    def call(self, inputs, training=False):
        return tf.cast(self.student(inputs, training=training), tf.float32)

    def losses_of(self, x, labels, training: bool):
        """``(loss, distill share, student logits, teacher logits, labelled mask)`` for one batch."""
        teacher_logits = tf.stop_gradient(tf.cast(self.teacher(x, training=False), tf.float32))
        student_logits = self(x, training=training)
        per_example = losses.distillation_loss(teacher_logits, student_logits, self.temperature)
        distill = distribute.replica_share(tf.reduce_sum(per_example), tf.cast(tf.shape(per_example)[0], tf.float32))
        loss = distill + regularization_share(self)
        mask = None
        if labels is not None:
            mask = tf.cast(labels >= 0, tf.float32)
            if self.alpha > 0.0:
                loss += self.alpha * cross_entropy_share(labels, student_logits, mask)
        return loss, distill, student_logits, teacher_logits, mask

    def train_step(self, data):
        x, labels = self.batch(data, training=True)
        with tf.GradientTape() as tape:
            loss, distill, student_logits, teacher_logits, mask = self.losses_of(x, labels, training=True)
            scaled = self.optimizer.scale_loss(loss)
        self.apply_gradients(tape, scaled, self.student.trainable_variables)
        return self._record_all(loss, distill, labels, student_logits, teacher_logits, mask)

    def test_step(self, data):
        x, labels = self.batch(data, training=False)
        loss, distill, student_logits, teacher_logits, mask = self.losses_of(x, labels, training=False)
        return self._record_all(loss, distill, labels, student_logits, teacher_logits, mask)

    def _record_all(self, loss, distill, labels, student_logits, teacher_logits, mask) -> dict:
        self.distill_tracker.update_state(distribute.unscale_share(distill))
        agree = tf.equal(tf.argmax(student_logits, axis=-1), tf.argmax(teacher_logits, axis=-1))
        self.agreement_tracker.update_state(tf.cast(agree, tf.float32))
        return self.record(loss, labels, student_logits, mask)

    def get_config(self):
        config = super().get_config()
        config.pop("num_classes")
        return {
            **config,
            "teacher": _uncompiled(self.teacher),
            "student": _uncompiled(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
        }

    @classmethod
    def from_config(cls, config):
        config = cls.deserialize_augment(config)
        config["teacher"] = keras.saving.deserialize_keras_object(config["teacher"])
        config["student"] = keras.saving.deserialize_keras_object(config["student"])
        return cls(**config)


def _uncompiled(network) -> dict:
    """``network`` serialised without its compile config: the Distiller's optimizer is the one that trains.

    (With it, loading would rebuild the teacher's own optimizer for a frozen
    network and warn that its saved variables do not fit.)
    """
    config = keras.saving.serialize_keras_object(network)
    config.pop("compile_config", None)
    return config


def _raw(variable):
    """The backing ``tf.Variable`` of a Keras variable (or the variable itself)."""
    return getattr(variable, "value", variable) if hasattr(variable, "path") else variable
