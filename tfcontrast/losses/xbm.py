"""Cross-batch memory (XBM): past embeddings as extra candidates of a pair-based loss.

Wang, Zhang, Huang and Scott, "Cross-Batch Memory for Embedding Learning",
CVPR 2020. Embeddings drift slowly once training settles, so those of recent
batches are still good negatives and positives: keep the last ``memory_size``
of them (with their labels) in a FIFO queue and compare every anchor of the
batch with the batch *and* the queue. The wrapped loss is unchanged; only its
candidate set grows from the batch B to the ``memory_size`` most recent
embeddings (the current batch first, then the newest stored ones):

    candidates(t) = [batch_t ; memory_{t-1}] truncated to memory_size rows
    memory_t      = candidates(t), without gradient

as TensorFlow Similarity 0.17.1's ``XBM(loss, memory_size, warmup_steps)``
does (same arguments, same values). During the first ``warmup_steps``
training calls the memory is neither read nor written (the candidates are the
batch, as without XBM). Memory rows carry no gradient; the batch's do.

The memory is state, :class:`CrossBatchMemory`, a Keras layer of four
non-trainable variables (embeddings ``[memory_size, dim]`` float32, labels
int64, the filled count and the training-call count). It is an attribute of
the loss, so a model compiled with the loss saves and restores it with its
weights (``model.save``, ``save_weights``/``load_weights``, the package's
checkpoints), bit-exactly. It is built on the first call from the embedding
width (``fit`` makes that call while building the model, inside the model's
strategy scope, so under a ``tf.distribute`` strategy the memory is
mirrored), or explicitly with :meth:`XBM.build`. Every replica writes the
*global* batch (gathered) into its copy, so all copies stay equal. Loading
saved weights into a fresh, unbuilt memory builds it from the saved shapes.

Differences from TF Similarity: its memory is a Python attribute that no
checkpoint sees and that every call updates, evaluation included; here it is
checkpointed, and the models of this package leave it unchanged while they
evaluate (see :func:`tfcontrast.losses.base.training_phase`); the memory has
a static shape, so the train step compiles with XLA; it stores the global batch
under a strategy (TF Similarity: each replica its own); when the global batch
is larger than ``memory_size`` the candidates are the whole batch (TF
Similarity truncates the batch itself).

**By name** (``tfcontrast train``): XBM is not a loss of its own in the
config but two keys of the ``loss`` section of every registered loss that can
take extra candidates (:data:`MEMORY_FIELDS`, added by :func:`memory_fields`
and built by :func:`with_memory` in each loss's registration)::

    tfcontrast train --config triplet_digits --config.loss.name=multi_similarity \\
        --config.loss.xbm_memory_size=1024 --config.loss.xbm_warmup_steps=100

``xbm_memory_size=0`` (the default) trains the plain loss. The inner loss keeps
its own keys, so no second namespace is needed.
"""

from __future__ import annotations

import numbers

import keras
import tensorflow as tf

from tfcontrast import distribute
from tfcontrast.fields import Int
from tfcontrast.losses import base


@keras.saving.register_keras_serializable(package="tfcontrast")
class CrossBatchMemory(keras.layers.Layer):
    """The FIFO state of :class:`XBM`: the most recent ``size`` embeddings and labels, newest first.

    Not meant to be called; :class:`XBM` reads and writes its variables. Loading
    saved weights into an unbuilt memory builds it from the stored shapes.
    """

    def __init__(self, size: int, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.size = int(size)

    def build(self, input_shape):
        """Creates the variables for embeddings of shape ``input_shape = (batch, dim)``."""
        dim = int(input_shape[-1])
        self.embeddings = self.add_weight(
            shape=(self.size, dim), initializer="zeros", dtype="float32", trainable=False, name="embeddings"
        )
        self.labels = self.add_weight(shape=(self.size,), initializer="zeros", dtype="int64", trainable=False, name="labels")
        self.filled = self.add_weight(shape=(), initializer="zeros", dtype="int64", trainable=False, name="filled")
        self.steps = self.add_weight(shape=(), initializer="zeros", dtype="int64", trainable=False, name="steps")
        self.built = True

    def load_own_variables(self, store):
        if not self.built and len(store):
            self.build(tuple(store["0"].shape))
        super().load_own_variables(store)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="tfcontrast")
class XBM(base.SimilarityLoss):
    """Cross-batch memory around a pair-based label loss (Wang et al., CVPR 2020).

    Drop-in for ``tensorflow_similarity.losses.XBM``: the same arguments; the
    value at each step is the wrapped loss computed with the batch's anchors
    against the batch and the memory (details in :mod:`tfcontrast.losses.xbm`).

    Args:
        loss: the loss to wrap: :class:`~tfcontrast.losses.TripletLoss`,
            ``TripletSemiHardLoss``, ``TripletHardLoss``, ``SupConLoss``,
            ``MultiSimilarityLoss``, ``CircleLoss``, ``PNLoss``,
            ``SoftNearestNeighborLoss`` or ``LiftedStructLoss`` (any
            :class:`~tfcontrast.losses.base.SimilarityLoss` with a
            ``from_candidates`` function).
        memory_size: how many recent embeddings are candidates, the current
            batch included (the paper uses a few thousand; >= the global batch).
        warmup_steps: training calls before the memory is used and filled.

    Cost: the wrapped loss sees ``batch x (batch + memory_size)`` distances;
    ``TripletLoss(mining="all")`` builds a ``[batch, m, m]`` tensor and
    ``LiftedStructLoss`` an ``[m, m]`` one (``m = batch + memory_size``):
    keep those memories small.

    Raises:
        TypeError: a loss that cannot take extra candidates (pair losses,
            N-pair losses on a similarity matrix, another XBM).
        ValueError: ``memory_size < 1`` or ``warmup_steps < 0``.

    Example:
        >>> loss = XBM(tfc.losses.MultiSimilarityLoss(), memory_size=1024, warmup_steps=100)  # doctest: +SKIP
        >>> model = tfc.models.EmbeddingModel(encoder, embedding_dim=64)
        >>> model.compile(optimizer="adam", loss=loss)
        >>> model.fit(tfc.data.class_balanced_batches(x, y, 10, 8, steps=2000))
        >>> model.save_weights("run.weights.h5")   # the memory is saved with the weights
    """

    def __init__(self, loss, memory_size: int, warmup_steps: int = 0, name: str = "xbm", **kwargs):
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if isinstance(loss, XBM) or not isinstance(loss, base.SimilarityLoss) or type(loss).from_candidates is None:
            raise TypeError(
                "`loss` must be a label loss that compares anchors with candidates (TripletLoss, SupConLoss, "
                f"MultiSimilarityLoss, CircleLoss, PNLoss, SoftNearestNeighborLoss, LiftedStructLoss, ...), got {loss!r}."
            )
        super().__init__(
            name=name,
            memory_size=_check_count(memory_size, "memory_size", minimum=1),
            warmup_steps=_check_count(warmup_steps, "warmup_steps", minimum=0),
            **kwargs,
        )
        self.loss = loss
        self.memory = CrossBatchMemory(self.memory_size, name=f"{name}_memory")

    def build(self, embedding_dim: int) -> None:
        """Creates the memory for embeddings of width ``embedding_dim`` (inside ``strategy.scope()`` if any)."""
        if not self.memory.built:
            self.memory.build((None, int(embedding_dim)))

    def call(self, y_true, y_pred):
        candidates = base.anchor_batch(y_true, y_pred, allow_views=self.loss.accepts_views)
        if not self.memory.built:
            dim = candidates.keys.shape[-1]
            if dim is None:
                raise ValueError("XBM needs embeddings of a known width to build its memory: call `build(dim)` first.")
            with tf.init_scope():
                self.build(dim)
        memory = self.memory
        width, dim = memory.embeddings.shape[-1], candidates.keys.shape[-1]
        if dim is not None and width != dim:
            raise ValueError(
                f"XBM's memory holds embeddings of width {width}, got embeddings of width {dim}: "
                "use one XBM per model (its memory is that model's state)."
            )
        steps = tf.convert_to_tensor(memory.steps)
        batch = tf.cast(tf.shape(candidates.keys)[0], tf.int64)
        slots = tf.range(self.memory_size, dtype=tf.int64)
        filled = (slots < tf.convert_to_tensor(memory.filled)) & (slots + batch < self.memory_size)
        extended = candidates.with_memory(memory.labels, memory.embeddings, filled)
        value = type(self.loss).from_candidates(extended, **self.loss.arguments)
        if base.is_training():
            self._enqueue(candidates, batch, steps >= self.warmup_steps)
        return value

    def _enqueue(self, candidates: base.Candidates, batch: tf.Tensor, active: tf.Tensor) -> None:
        """Puts the global batch at the front of the memory (after the warm-up), counts the step."""
        memory = self.memory
        old_embeddings = tf.convert_to_tensor(memory.embeddings)
        old_labels = tf.convert_to_tensor(memory.labels)
        old_filled = tf.convert_to_tensor(memory.filled)
        rows = tf.cast(tf.stop_gradient(candidates.keys), tf.float32)
        new_embeddings = tf.concat([rows, old_embeddings], axis=0)[: self.memory_size]
        new_labels = tf.concat([candidates.key_labels, old_labels], axis=0)[: self.memory_size]
        new_filled = tf.minimum(old_filled + batch, self.memory_size)
        distribute.assign_on_every_replica(
            [memory.embeddings, memory.labels, memory.filled, memory.steps],
            [
                tf.where(active, new_embeddings, old_embeddings),
                tf.where(active, new_labels, old_labels),
                tf.where(active, new_filled, old_filled),
                tf.convert_to_tensor(memory.steps) + 1,
            ],
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "loss": keras.saving.serialize_keras_object(self.loss)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


MEMORY_FIELDS = {
    "xbm_memory_size": Int(
        0, "cross-batch memory (XBM, Wang et al. CVPR 2020): recent embeddings kept as extra candidates; 0 = none",
        min=0,
    ),
    "xbm_warmup_steps": Int(0, "XBM: training steps before the memory is read and filled (unused without it)", min=0),
}
"""The ``loss`` keys that put a registered loss inside :class:`XBM` (see the module docstring)."""


def memory_fields(fields: dict) -> dict:
    """``fields`` of a loss that compares anchors with candidates, plus :data:`MEMORY_FIELDS`."""
    return {**fields, **MEMORY_FIELDS}


def with_memory(loss_class: type):
    """A ``register_loss`` builder: ``loss_class(**section)``, inside :class:`XBM` when ``xbm_memory_size > 0``."""

    def build(section, context=None):
        section = dict(section)
        memory_size, warmup_steps = (section.pop(key, 0) for key in MEMORY_FIELDS)
        loss = loss_class(**section)
        return XBM(loss, memory_size, warmup_steps) if memory_size else loss

    return build
