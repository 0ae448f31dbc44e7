"""What the classifiers trained on few labels share: :class:`~tfcontrast.models.FineTuner` and :class:`~tfcontrast.models.Distiller`.

Both are ``keras.Model`` subclasses whose ``call`` returns float32 logits
``[batch, num_classes]`` and whose train step owns its loss, so
``compile(optimizer)`` is all they need and ``fit`` / ``evaluate`` /
``predict`` work as for any Keras model. :class:`ClassifierModel` gives them:

* **batches** ``x`` or ``(x, labels)``, labels integer class ids ``[batch]``
  or ``[batch, 1]`` (:meth:`ClassifierModel.batch`), checked once on the host
  when ``fit`` / ``evaluate`` receive arrays (a label out of range is a
  ``ValueError`` naming it, never a silently wrong loss);
* an optional ``augment`` callable (images -> images) applied to the batch
  inside the train step only (e.g. ``lambda b: tfcontrast.augment.random_shift_rotate(b, 2)``);
* the global cross-entropy :func:`cross_entropy_share` (float32, the mean
  over the labelled examples of the *global* batch under a strategy);
* the ``loss`` and ``accuracy`` metrics, global under a strategy.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import data, distribute, validation
from tfcontrast.models.distributed_fit import DistributedFitMixin, multiworker_safe_logs


def cross_entropy_share(labels: tf.Tensor, logits: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """This replica's share of ``mean_i -log softmax(logits_i)[labels_i]`` over the global batch.

    With ``mask`` (``[batch]`` 0/1) only the rows where it is 1 count, and the
    mean divides by their global number (0 when there are none). Rows with
    ``mask = 0`` may hold any label (e.g. -1 for "unlabelled").
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    if mask is None:
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return distribute.replica_share(tf.reduce_sum(per_example), tf.cast(tf.shape(labels)[0], tf.float32))
    mask = tf.cast(mask, tf.float32)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0), logits=logits)
    return distribute.replica_share(tf.reduce_sum(per_example * mask), tf.reduce_sum(mask))


def regularization_share(model: keras.Model) -> tf.Tensor:
    """This replica's share of the layers' regularisation losses (as Keras scales them)."""
    if not model.losses:
        return tf.zeros([])
    return tf.add_n([tf.cast(tf.reduce_sum(l), tf.float32) for l in model.losses]) / distribute.num_replicas()


def check_num_classes(num_classes) -> int:
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2, got {num_classes!r}.")
    return int(num_classes)


class ClassifierModel(DistributedFitMixin, keras.Model):
    """Base of the few-label classifiers (module docstring).

    Subclasses set :attr:`lowest_label` (0; -1 where -1 means "unlabelled"),
    build their networks, define ``call`` (float32 logits), ``train_step`` and
    ``test_step``, and add their own trackers to :attr:`extra_trackers`.
    """

    lowest_label = 0

    def __init__(self, num_classes: int, augment: Callable[[tf.Tensor], tf.Tensor] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = check_num_classes(num_classes)
        if augment is not None and not callable(augment):
            raise ValueError(f"`augment` must be None or a callable images -> images, got {type(augment).__name__}.")
        self.augment = augment
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.extra_trackers = []

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker] + list(self.extra_trackers)

    # ------------------------------------------------------------ batches

    def batch(self, data, training: bool) -> tuple[tf.Tensor, tf.Tensor | None]:
        """``(x, labels [batch] int32 or None)`` of a batch ``x`` or ``(x, labels)``; ``augment`` applied in training."""
        self._check_compiled()
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} does not take sample weights (nor class_weight): feed (x, labels) batches."
            )
        labels = None if y is None else tf.cast(validation.as_labels(y, None, name="labels"), tf.int32)
        if training and self.augment is not None:
            x = self.augment(x)
        return x, labels

    def _check_compiled(self) -> None:
        if self.loss is not None or getattr(self, "_compile_metrics", None) is not None:
            raise ValueError(
                f"{type(self).__name__} trains with its own loss and reports its own metrics "
                f"({', '.join(m.name for m in self.metrics)}): compile with an optimizer only."
            )

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_labels(x, y)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_labels(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def _check_labels(self, x, y) -> None:
        """Host check of array labels: integer ids in ``[lowest_label, num_classes)``, one per example."""
        if y is None or isinstance(x, tf.data.Dataset):
            return
        leaves = tf.nest.flatten(x)
        n = int(np.shape(leaves[0])[0]) if leaves and np.ndim(leaves[0]) else len(np.asarray(y))
        labels = data.as_class_ids(y, n, name="y")
        if len(labels) and (labels.min() < self.lowest_label or labels.max() >= self.num_classes):
            bad = labels[(labels < self.lowest_label) | (labels >= self.num_classes)][:3]
            raise ValueError(
                f"`y` must hold class ids in [{self.lowest_label}, {self.num_classes}) "
                f"(num_classes={self.num_classes}), got values such as {bad.tolist()}."
            )

    # ------------------------------------------------------------ steps

    def record(self, loss: tf.Tensor, labels: tf.Tensor | None, logits: tf.Tensor, mask: tf.Tensor | None = None) -> dict:
        """Updates ``loss`` (global) and ``accuracy`` (over labelled rows: ``mask``), returns the logs."""
        self.loss_tracker.update_state(distribute.unscale_share(loss))
        if labels is not None:
            self.accuracy_tracker.update_state(tf.maximum(labels, 0), logits, sample_weight=mask)
        return multiworker_safe_logs({m.name: m.result() for m in self.metrics})

    def apply_gradients(self, tape: tf.GradientTape, scaled_loss: tf.Tensor, variables) -> None:
        """One optimizer step on ``variables`` from the (loss-scaled) loss recorded on ``tape``."""
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "augment": keras.saving.serialize_keras_object(self.augment) if self.augment is not None else None,
        }

    @staticmethod
    def deserialize_augment(config: dict) -> dict:
        config = dict(config)
        if config.get("augment") is not None:
            config["augment"] = keras.saving.deserialize_keras_object(config["augment"])
        return config


def freeze(network: keras.layers.Layer) -> None:
    """Sets ``trainable = False`` on ``network`` and on every layer inside it.

    Setting ``network.trainable = False`` alone is not enough: Keras skips the
    setter (which cascades to the sublayers) when the flag already reads
    False, as it does on a model rebuilt from a config that says so.
    """
    for layer in network._flatten_layers(include_self=True):
        if layer.trainable:
            layer.trainable = False


def classifier_width(model, name: str) -> int:
    """The number of classes a classifier outputs (``num_classes`` or its ``[batch, classes]`` output shape)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"`{name}` must be a keras.Model returning logits [batch, classes], got {type(model).__name__}.")
    width = getattr(model, "num_classes", None)
    if width is None:
        try:
            shape = tuple(model.output_shape)
        except (AttributeError, ValueError, RuntimeError):
            shape = ()
        if len(shape) != 2 or shape[-1] is None:
            raise ValueError(
                f"`{name}` must be a built keras.Model returning logits [batch, classes] (or have `num_classes`); "
                f"got output shape {shape or 'unknown'}."
            )
        width = shape[-1]
    return int(width)
