"""Reproducible randomness inside train steps, and random unit vectors to start queues and memories.

MoCHi draws the hard negatives it mixes and PIRL its memory negatives and
jigsaw permutations, every step. Those draws must be

* a pure function of the model's seed, the step and the example, so that a
  resumed run draws what an uninterrupted one draws (seed and step are model
  variables, checkpointed);
* the same on R replicas as on one device holding the global batch: the
  numbers of example i depend on i's row in the *global* batch, not on the
  replica that holds it;
* the same with and without XLA, on any device.

:func:`uniform` is therefore a counter-based generator: every number is
murmur3's 32-bit finaliser (Appleby, MurmurHash3, 2011) applied to a chain of
(seed, stream, step, global row, column), in 64-bit integer ops that never
overflow. No random op and no state: the same integers give the same bits
everywhere. It is uniform and free of correlation between neighbouring
counters to the resolution the tests check, ample for choosing indices and
mixing coefficients; it is not a cryptographic generator.
"""

from __future__ import annotations

import random

import keras
import tensorflow as tf

from tfcontrast import distribute

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B1  # 2^32 / golden ratio, odd: spreads consecutive counters


def _mul32(h: tf.Tensor, constant: int) -> tf.Tensor:
    """``(h * constant) mod 2^32`` for int64 ``h`` in [0, 2^32), without int64 overflow (16-bit halves)."""
    low, high = constant & 0xFFFF, constant >> 16
    return (h * low + tf.bitwise.left_shift((h * high) & 0xFFFF, 16)) & _MASK


def _mix32(h: tf.Tensor) -> tf.Tensor:
    """murmur3's finaliser: a bijection of [0, 2^32) whose every output bit depends on every input bit."""
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))
    h = _mul32(h, 0x85EBCA6B)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13))
    h = _mul32(h, 0xC2B2AE35)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))


def _combine(h: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
    """A new 32-bit state from ``h`` and a non-negative int64 ``value`` (both bit halves of it enter)."""
    value = tf.cast(value, tf.int64)
    h = _mix32((_mul32(h, _GOLDEN) + (value & _MASK)) & _MASK)
    return _mix32((_mul32(h, _GOLDEN) + tf.bitwise.right_shift(value, 32)) & _MASK)


def uniform(seed, step, stream: int, rows: int, columns: int, row_offset=0) -> tf.Tensor:
    """``[rows, columns]`` float32 numbers in [0, 1): rows ``row_offset .. row_offset + rows - 1`` of a stream.

    The number at (global row r, column c) is a function of ``(seed, stream,
    step, r, c)`` alone (24 random bits each).

    Args:
        seed: int scalar (the model's seed variable), >= 0.
        step: int scalar (the step counter), >= 0.
        stream: a Python int telling apart the draws of one step (e.g. 0 for
            the jigsaw permutations, 1 for the negatives).
        rows, columns: the static shape drawn.
        row_offset: int scalar, the global row of the first row.
    """
    state = _combine(_combine(_combine(tf.constant(0, tf.int64), seed), stream), step)
    global_rows = tf.range(rows, dtype=tf.int64) + tf.cast(row_offset, tf.int64)
    state = _combine(state, global_rows)[:, None]
    bits = _combine(state, tf.range(columns, dtype=tf.int64)[None, :])
    return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * (1.0 / (1 << 24))


def replica_uniform(seed, step, stream: int, rows: int, columns: int) -> tf.Tensor:
    """:func:`uniform` for this replica's ``rows`` rows of the global batch (see the module docstring)."""
    return uniform(seed, step, stream, rows, columns, distribute.row_offset(rows))


def random_indices(u: tf.Tensor, count) -> tf.Tensor:
    """Uniform ints in ``[0, count)`` from uniform numbers ``u`` in [0, 1) (int32, the shape of ``u``)."""
    count = tf.cast(count, tf.float32)
    return tf.cast(tf.minimum(tf.floor(u * count), count - 1.0), tf.int32)


def new_seed() -> int:
    """A seed for a model's seed variable, from Python's generator (fixed by ``keras.utils.set_random_seed``)."""
    return random.randrange(1, 2**31 - 1)


def unit_rows(shape, dtype=None) -> tf.Tensor:
    """Rows of i.i.d. normal numbers scaled to unit length: uniform directions (MoCo starts its queue so).

    An initializer for ``add_weight``; its draws follow Keras' global seed
    (``keras.utils.set_random_seed``).
    """
    x = keras.initializers.RandomNormal(seed=new_seed())(shape, dtype="float32")
    return tf.cast(tf.math.l2_normalize(x, axis=-1), dtype or "float32")
