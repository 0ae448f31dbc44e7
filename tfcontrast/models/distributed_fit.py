"""Makes ``model.fit`` work under ``MultiWorkerMirroredStrategy`` on Keras 3.

Keras 3 (checked: 3.15 with TensorFlow 2.21) cannot ``fit`` any model under a
multi-worker ``MultiWorkerMirroredStrategy``, a plain ``Sequential``
included; it fails in two places, and this module fixes both for our models.

1. Before the first step, Keras 3 (checked: 3.15 with TensorFlow 2.21) builds a
model symbolically from one batch. Under a strategy it first *reduces* that
distributed batch across replicas with ``strategy.reduce("MEAN", ...)`` in
eager mode, only to learn its shapes; under ``MultiWorkerMirroredStrategy``
that reduce fails with "Attempt to convert a value (PerReplica...) to a
Tensor", for any model, a plain ``Sequential`` included (see
keras-team/keras#20329). A mean over replicas has the shape of one replica's
batch, so :class:`DistributedFitMixin` builds from the first local replica's
batch instead: the same shapes, no communication, every strategy.

This overrides a private Keras method (``_maybe_symbolic_build``); the
two-process test in ``tests/models/ssl/test_multiworker.py`` fails without it,
so an upstream change that breaks the override is caught.

2. After every step Keras reduces the step's logs with
``strategy.reduce("MEAN", value, axis=0)`` in multi-worker mode, which fails
for the scalar logs every train step returns ("Invalid reduction dimension 0
for input with 0 dimensions"). :func:`multiworker_safe_logs` gives those
scalars (already global: our metrics are all-reduced) shape ``[1]`` in that
mode only; the axis-0 mean turns them back into the same scalars.
"""

from __future__ import annotations

import tensorflow as tf


class DistributedFitMixin:
    """Mix into a ``keras.Model`` subclass (before ``keras.Model``) to fit under any strategy."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is None or iterator is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            data_batch = tf.nest.map_structure(_first_local_value, next(it))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)


def multiworker_safe_logs(logs: dict) -> dict:
    """Scalars -> shape ``[1]`` under a multi-worker MultiWorkerMirroredStrategy; else ``logs`` as is."""
    if not _multi_worker(tf.distribute.get_strategy()):
        return logs
    return {k: tf.reshape(v, [1]) if getattr(v, "shape", None) is not None and v.shape.rank == 0 else v for k, v in logs.items()}


def _multi_worker(strategy) -> bool:
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return True if in_multi_worker_mode is None else bool(in_multi_worker_mode())


def _first_local_value(value):
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value
