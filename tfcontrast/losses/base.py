"""The shared wrapper of the package's losses and its return contract.

Every loss class of :mod:`tfcontrast.losses` that is called on labels (class
ids, pair labels or multi-hot rows) is a thin subclass of
:class:`SimilarityLoss` around a pure function. The wrapper stores the
constructor's arguments, round-trips them through ``get_config`` and calls the
function with them. What every such loss promises (the return contract):

* **Value.** ``loss(y_true, y_pred)`` returns a scalar: this replica's share
  of the loss of the *global* batch, so that summing over replicas gives the
  loss one device holding the global batch would compute (outside a strategy:
  the loss itself; see :mod:`tfcontrast.distribute`). float32 for float16,
  bfloat16 and float32 inputs (float64 stays float64). Per-pair losses
  (:class:`~tfcontrast.losses.ContrastiveLoss`) reduce their per-pair values
  with Keras' own rules, ``sample_weight`` included.
* **Labels reach the function exactly.** Keras casts ``y_true`` to
  ``y_pred``'s dtype before ``call``, so int64 ids >= 2**24 would merge in
  float32; the wrapper passes ``y_true`` untouched and the functions compare
  class ids as int64.
* **Bad labels never train.** Class labels must be whole numbers; pair labels
  and multi-hot rows must be 0 or 1. Eagerly: ``ValueError``. In a graph
  (``model.fit``): ``InvalidArgumentError`` from an assertion. Under
  ``jit_compile=True``, where XLA compiles assertions out: the loss is NaN.
* **NaN is never hidden.** A non-finite embedding (or prediction) anywhere in
  the global batch, or in a cross-batch memory, makes the loss NaN (never a
  finite loss over NaN gradients), so ``keras.callbacks.TerminateOnNaN`` and
  the logs show it.
* **Empty and degenerate batches.** A batch with no example, or with no pair
  the loss can use, gives 0 with a zero gradient (per loss, the docstring
  says which pairs it needs).

Batch losses compare each anchor with *candidates*: the global batch
(gathered across replicas) and, under :class:`~tfcontrast.losses.XBM`, a
memory of past embeddings. :class:`Candidates` carries them, with the exact
labels and the validity flag; a loss that can use extra candidates exposes its
``from_candidates`` function, which is how ``XBM`` wraps it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Callable, NamedTuple

import keras
import tensorflow as tf

from tfcontrast import distribute, validation

_TRAINING = contextvars.ContextVar("tfcontrast_loss_training", default=True)


@contextlib.contextmanager
def training_phase(training: bool):
    """Tells stateful losses (:class:`~tfcontrast.losses.XBM`) whether this call trains.

    The package's models trace their evaluation step inside
    ``training_phase(False)``, so evaluation leaves a cross-batch memory as it
    was. Outside any such block every call counts as training.
    """
    token = _TRAINING.set(bool(training))
    try:
        yield
    finally:
        _TRAINING.reset(token)


def is_training() -> bool:
    """Whether the current loss call trains (see :func:`training_phase`)."""
    return _TRAINING.get()


def nan_unless(ok: validation.Flag, value: tf.Tensor) -> tf.Tensor:
    """``value`` where ``ok`` holds, else NaN of its dtype (and shape)."""
    if ok is True:
        return value
    return tf.where(ok, value, tf.fill(tf.shape(value), tf.constant(float("nan"), value.dtype)))


def zero_if_degenerate(value: tf.Tensor, positive: tf.Tensor, negative: tf.Tensor) -> tf.Tensor:
    """0 (and a zero gradient) unless the global batch has a positive and a negative pair."""
    counts = tf.stack(
        [tf.reduce_sum(tf.cast(positive, value.dtype)), tf.reduce_sum(tf.cast(negative, value.dtype))]
    )
    counts = tf.stop_gradient(distribute.all_reduce_sum(counts))
    usable = (counts[0] > 0) & (counts[1] > 0)
    return tf.where(usable, value, tf.zeros_like(value))


class Candidates(NamedTuple):
    """This replica's anchors and the candidates (keys) they are compared with.

    Attributes:
        labels: ``[n]`` int64 labels of this replica's anchors.
        embeddings: ``[n, dim]`` anchor embeddings (float32, or float64).
        key_labels: ``[m]`` int64 labels of the candidates.
        keys: ``[m, dim]`` candidates: the global batch (this replica's rows
            included, from ``offset``), then any memory rows.
        offset: int32 scalar, the key index of anchor 0 (its own row).
        key_mask: ``[m]`` bool, the keys that exist (memory slots not yet
            filled are False), or ``None`` when every key exists.
        ok: ``True``, or a boolean scalar tensor that is false when labels or
            values are invalid; :meth:`finish` turns the loss into NaN then.
    """

    labels: tf.Tensor
    embeddings: tf.Tensor
    key_labels: tf.Tensor
    keys: tf.Tensor
    offset: tf.Tensor
    key_mask: tf.Tensor | None
    ok: validation.Flag

    def is_self(self) -> tf.Tensor:
        """``[n, m]`` bool: key j is anchor i itself."""
        rows = tf.range(tf.shape(self.embeddings)[0], dtype=tf.int32)[:, None] + self.offset
        return tf.equal(rows, tf.range(tf.shape(self.keys)[0], dtype=tf.int32)[None, :])

    def exists(self) -> tf.Tensor | None:
        """``[1, m]`` bool mask of the keys that exist, or ``None`` (all do)."""
        return None if self.key_mask is None else self.key_mask[None, :]

    def masks(self) -> tuple[tf.Tensor, tf.Tensor]:
        """``(positive, negative)`` ``[n, m]``: same label but not itself / another label; existing keys only."""
        same = tf.equal(self.labels[:, None], self.key_labels[None, :])
        positive, negative = same & ~self.is_self(), ~same
        exists = self.exists()
        if exists is not None:
            positive, negative = positive & exists, negative & exists
        return positive, negative

    def with_memory(self, labels: tf.Tensor, embeddings: tf.Tensor, filled: tf.Tensor) -> "Candidates":
        """These candidates followed by memory rows (no gradient) of which ``filled`` [M] exist."""
        embeddings = tf.cast(tf.stop_gradient(embeddings), self.keys.dtype)
        existing = tf.ones(tf.shape(self.keys)[:1], tf.bool) if self.key_mask is None else self.key_mask
        mask = tf.concat([existing, filled], axis=0)
        finite = tf.reduce_all(tf.math.is_finite(embeddings) | ~filled[:, None])
        return self._replace(
            key_labels=tf.concat([self.key_labels, tf.cast(labels, tf.int64)], axis=0),
            keys=tf.concat([self.keys, embeddings], axis=0),
            key_mask=mask,
            ok=validation.both(self.ok, finite),
        )

    def finish(self, value: tf.Tensor) -> tf.Tensor:
        """``value``, or NaN when labels or values were invalid (see the module docstring)."""
        return nan_unless(self.ok, value)


def zero_for_empty_batch(from_candidates: Callable) -> Callable:
    """Decorates a loss's ``from_candidates``: a batch with statically no anchor gives 0 at once.

    The value (0) and gradient (zeros) are those of the rule for empty batches;
    the shortcut skips building the loss graph, on which TensorFlow 2.21's graph
    optimiser (constant folding of zero-size shapes) can die with SIGFPE while
    differentiating. Outside a strategy only: replicas must run the same
    collectives, and an empty replica batch has a dynamic shape anyway.
    """

    @functools.wraps(from_candidates)
    def wrapper(candidates: Candidates, *args, **kwargs) -> tf.Tensor:
        if candidates.embeddings.shape[0] == 0 and distribute.num_replicas() == 1:
            return tf.reduce_sum(candidates.embeddings) * 0.0
        return from_candidates(candidates, *args, **kwargs)

    return wrapper


def anchor_batch(labels, embeddings, allow_views: bool = False) -> Candidates:
    """Checks ``(labels, embeddings)`` and gathers the global batch as candidates.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` class ids (see
            :func:`tfcontrast.validation.class_labels`).
        embeddings: ``[batch, dim]`` (or ``[batch, views, dim]`` when
            ``allow_views``: every view is an anchor with its example's label).

    Raises:
        ValueError: embeddings of the wrong rank, labels of another length or
            (eagerly) labels that are not whole numbers.
    """
    embeddings = validation.to_float(embeddings, "embeddings")
    validation.check_rank(embeddings, (2, 3) if allow_views else 2, "embeddings")
    labels, ok = validation.class_labels(labels, embeddings.shape[0])
    if embeddings.shape.rank == 3:
        views = embeddings.shape[1] or tf.shape(embeddings)[1]
        embeddings = tf.reshape(embeddings, [-1, tf.shape(embeddings)[2]])
        labels = tf.repeat(labels, views)
    keys, offset = distribute.gather(embeddings)
    key_labels, _ = distribute.gather(labels)
    return Candidates(labels, embeddings, key_labels, keys, offset, None, validation.both(ok, validation.all_finite(keys)))


class SimilarityLoss(keras.losses.Loss):
    """A pure loss function as a Keras loss: stores its arguments, keeps labels exact.

    Subclasses set ``function`` (the pure function, called as
    ``function(y_true, y_pred, **arguments)``) and, when the loss compares
    anchors with candidates, ``from_candidates`` (called as
    ``from_candidates(candidates, **arguments)``, used by
    :class:`~tfcontrast.losses.XBM`). Their constructor validates the
    arguments and passes them on as keywords; ``get_config`` returns them.

    ``per_example = True`` marks a function that returns one value per
    example (pair losses): Keras' reduction and ``sample_weight`` apply. Batch
    losses return the replica share of a batch statistic, which no
    per-example weight can scale: they refuse ``sample_weight``.

    ``accepts_views = True`` marks a loss whose embeddings may be
    ``[batch, views, dim]``.
    """

    function: Callable = None
    from_candidates: Callable | None = None
    per_example = False
    accepts_views = False

    def __init__(self, name: str, reduction: str = "sum_over_batch_size", dtype=None, **arguments):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.argument_names = tuple(arguments)
        for key, value in arguments.items():
            setattr(self, key, value)

    @property
    def arguments(self) -> dict:
        """The loss's own arguments (those of its function), by name."""
        return {key: getattr(self, key) for key in self.argument_names}

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.per_example:
            # Per-pair labels are 0 or 1, exact in any float: Keras' conversion, masking and reduction apply.
            return super().__call__(y_true, y_pred, sample_weight)
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} is a statistic of the whole batch: per-example "
                "`sample_weight` (or `class_weight`) cannot weight it; pass none."
            )
        with tf.name_scope(self.name):
            return self.call(y_true, y_pred)

    def call(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, **self.arguments)

    def get_config(self) -> dict:
        return {**super().get_config(), **self.arguments}
