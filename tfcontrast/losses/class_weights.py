"""The shared base of the losses that own a trainable class-weight matrix.

Proxy losses (:mod:`tfcontrast.losses.proxy`: Proxy-Anchor, ProxyNCA) and
margin-softmax losses (:mod:`tfcontrast.losses.margin_softmax`: ArcFace,
CosFace) compare every embedding ``x_i`` with one learnt vector per class,
row ``w_j`` of a ``[num_classes, embedding_dim]`` matrix ``W`` (the *proxies*
or *class weights*), through the cosine

    cos_ij = <x_i / ||x_i||, w_j / ||w_j||>.

Both sides are L2-normalised in every call; the stored ``W`` is not
renormalised. Each loss is a pure function taking ``W`` as an argument plus a
:class:`ClassWeightLoss` layer that owns ``W`` as a float32 variable. Give the
layer to :class:`tfcontrast.models.EmbeddingModel` as ``loss_head=...``: the
model tracks it, so ``W`` is trained by the model's optimizer, written to
``.keras`` and weights files, restored by ``keras.models.load_model`` and
mirrored under a ``tf.distribute`` strategy.

**Memory.** ``W`` is replicated on every replica: ``num_classes *
embedding_dim * 4`` bytes each (1,000,000 classes x 512 = 2.05 GB), plus the
optimizer's slots for it (SGD with momentum one more copy, Adam two), plus
one dense gradient of the same size during the step, plus the ``[batch,
num_classes]`` logits. For millions of classes, shard ``W`` across devices
(model parallelism, e.g. Partial FC, An et al. 2021), which this package does
not provide.

**Labels** are integer class ids in ``[0, num_classes)``, used exactly: they
stay integers (never cast to float, so ids >= 2**24 stay exact), and select
the class through a one-hot mask. An id outside the range raises
``ValueError`` when the loss runs eagerly (and at ``EmbeddingModel.fit`` on
arrays); inside a compiled step, where values are unknown at trace time, the
loss becomes NaN instead (the offending rows give no gradient), so
``keras.callbacks.TerminateOnNaN`` stops training. A NaN embedding or class
weight gives a NaN loss.

All computation is float32 under ``mixed_float16`` / ``mixed_bfloat16``
(half inputs are upcast; the layers' dtype policy is always float32); the
pure functions keep float64 inputs in float64.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import distances, distribute, validation


def cosine_similarities(embeddings, class_weights) -> tf.Tensor:
    """``cos[i, j]`` between row-normalised embeddings ``[batch, dim]`` and class weights ``[classes, dim]``.

    float32 for half or float32 inputs, float64 when the embeddings are float64.
    """
    embeddings = validation.to_float(embeddings, "embeddings")
    class_weights = tf.cast(validation.to_float(class_weights, "class_weights"), embeddings.dtype)
    validation.check_rank(embeddings, 2, "embeddings")
    validation.check_rank(class_weights, 2, "class_weights")
    validation.check_same_dim(embeddings, class_weights, 1, ("embeddings", "class_weights"))
    return tf.matmul(distances.l2_normalize(embeddings), distances.l2_normalize(class_weights), transpose_b=True)


def class_targets(labels, cos: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The one-hot target mask ``[batch, classes]`` and the row validity ``[batch]`` of ``labels``.

    ``labels`` are ``[batch]`` or ``[batch, 1]`` integer ids (whole-number
    floats are accepted eagerly, as everywhere in the package); they are
    compared as int64, never as floats. Eagerly, an id outside ``[0,
    num_classes)`` raises ``ValueError``; in a graph its row is marked invalid.
    """
    labels = tf.cast(validation.as_labels(labels, cos.shape[0], name="labels"), tf.int64)
    num_classes = tf.shape(cos)[1]
    valid = (labels >= 0) & (labels < tf.cast(num_classes, tf.int64))
    if tf.executing_eagerly() and not bool(tf.reduce_all(valid)):
        _raise_out_of_range(labels.numpy(), int(num_classes))
    targets = tf.one_hot(labels, num_classes, on_value=True, off_value=False)  # all False for a bad id
    return targets, valid


def check_class_ids(labels, num_classes: int, name: str = "labels") -> None:
    """Host check: raises ``ValueError`` unless every id of ``labels`` lies in ``[0, num_classes)``."""
    ids = np.asarray(labels).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        _raise_out_of_range(ids, num_classes, name)


def _raise_out_of_range(ids: np.ndarray, num_classes: int, name: str = "labels") -> None:
    bad = ids[(ids < 0) | (ids >= num_classes)]
    raise ValueError(
        f"`{name}` must be class ids in [0, {num_classes}) (num_classes={num_classes}); "
        f"got {bad.size} outside it, such as {bad[:3].tolist()}."
    )


def nan_unless(valid: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
    """``value`` where ``valid``, NaN elsewhere (with no gradient through the NaN)."""
    return tf.where(valid, value, tf.constant(float("nan"), value.dtype))


def mean_cross_entropy(logits: tf.Tensor, targets: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Mean over rows of ``-log softmax(logits)[target]``; NaN rows for invalid labels.

    Returns this replica's share of the global-batch mean (see
    :func:`tfcontrast.distribute.replica_share`).
    """
    target_logit = tf.reduce_sum(tf.where(targets, logits, tf.zeros_like(logits)), axis=1)
    losses = nan_unless(valid, tf.reduce_logsumexp(logits, axis=1) - target_logit)
    return distribute.replica_share(tf.reduce_sum(losses), tf.cast(tf.shape(losses)[0], losses.dtype))


def check_count(value, name: str, minimum: int) -> int:
    """Raises ``ValueError`` unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


class ClassWeightLoss(keras.layers.Layer):
    """A loss layer owning the class weights ``W [num_classes, embedding_dim]``; called as ``loss(labels, embeddings)``.

    Subclasses pass their paper's initializer and implement :meth:`call`
    with their pure function. The variable is float32 under any dtype policy
    and lives in ``class_weights``; read or assign it directly (for instance
    to start from class means).

    Args:
        num_classes: number of classes (>= 2); labels are ids in ``[0, num_classes)``.
        embedding_dim: width of the embeddings the loss receives; ``None``: ``W``
            is created later, by :meth:`build` with the width of the model's
            embeddings (``EmbeddingModel(..., loss_head=head)`` does that as it
            is constructed, inside its strategy scope) or, failing that, on
            the first call.
        initializer: the initializer of ``W``.

    Raises:
        ValueError: a bad ``num_classes`` / ``embedding_dim``, a dtype other
            than float32; at call time, labels outside ``[0, num_classes)``
            (eagerly) or embeddings of another width.
    """

    def __init__(self, num_classes: int, embedding_dim: int, initializer, name: str, **kwargs):
        dtype = kwargs.pop("dtype", None)
        if dtype is not None:
            policy = keras.dtype_policies.get(dtype)
            if policy.compute_dtype != "float32" or policy.variable_dtype != "float32":
                raise ValueError(
                    f"{type(self).__name__} computes in float32 under every precision policy; "
                    f"got dtype {policy.name!r}."
                )
        num_classes = check_count(num_classes, "num_classes", 2)
        if embedding_dim is not None:
            embedding_dim = check_count(embedding_dim, "embedding_dim", 1)
        super().__init__(name=name, dtype="float32", **kwargs)
        self.num_classes = num_classes
        self.embedding_dim = None
        self.initializer = initializer
        if embedding_dim is not None:
            self.build((None, embedding_dim))

    def build(self, input_shape):
        """Creates ``W [num_classes, embedding_dim]`` for embeddings of shape ``(batch, embedding_dim)``."""
        width = check_count(input_shape[-1], "embedding_dim", 1)
        self.class_weights = self.add_weight(
            name="class_weights", shape=(self.num_classes, width), initializer=self.initializer, trainable=True
        )
        self.embedding_dim = width
        self.built = True

    def __call__(self, labels, embeddings, **kwargs):
        # Keras layers take tensors only as positional inputs; also accept lists and arrays.
        labels, embeddings = tf.convert_to_tensor(labels), tf.convert_to_tensor(embeddings)
        if not self.built:
            if embeddings.shape.rank != 2 or embeddings.shape[-1] is None:
                raise ValueError(
                    f"{type(self).__name__} was created without `embedding_dim` and needs embeddings "
                    f"[batch, dim] of a known width to create its class weights, got shape {embeddings.shape}."
                )
            with tf.init_scope():
                self.build(tuple(embeddings.shape))
        return super().__call__(labels, embeddings, **kwargs)

    def call(self, labels, embeddings):
        raise NotImplementedError

    def check_labels(self, labels) -> None:
        """Host check of an array of labels: raises ``ValueError`` on ids outside ``[0, num_classes)``."""
        check_class_ids(labels, self.num_classes)

    @property
    def weight_bytes(self) -> int:
        """Bytes of ``W`` on each replica (float32), before optimizer slots and the gradient (0 before it exists)."""
        return self.num_classes * (self.embedding_dim or 0) * 4

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "embedding_dim": self.embedding_dim}
