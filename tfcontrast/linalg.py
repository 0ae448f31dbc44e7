"""Eigendecompositions that answer NaN, not an error, for a non-finite matrix.

``tf.linalg.eigh`` / ``eigvalsh`` on a matrix holding NaN or inf fail on CPU
with ``InvalidArgumentError: Self-adjoint eigen decomposition was not
successful``: an error about an operation deep in a train step, raised after
the weights are already NaN, instead of the cause (a NaN pixel, a diverging
learning rate). These wrappers decompose a zero matrix instead and return NaN
eigenvalues (and eigenvectors), so the step finishes, its loss and metrics are
NaN, and :class:`tfcontrast.callbacks.TerminateOnNonFinite` (or Keras'
``TerminateOnNaN``) names the step. Plain TF ops without control flow: they
compile with XLA, and on finite input they are exactly ``eigh`` of the
symmetric part.
"""

from __future__ import annotations

import tensorflow as tf


def _finite_symmetric(matrix: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(finite?, the symmetric part, or zeros when not finite)``."""
    m = tf.convert_to_tensor(matrix)
    finite = tf.reduce_all(tf.math.is_finite(m))
    symmetric = 0.5 * (m + tf.linalg.matrix_transpose(m))
    return finite, tf.where(finite, symmetric, tf.zeros_like(symmetric))


def _nan_unless(finite: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    return tf.where(finite, x, tf.fill(tf.shape(x), tf.constant(float("nan"), x.dtype)))


def symmetric_eigh(matrix: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(eigenvalues ascending, eigenvectors as columns)`` of the symmetric part of ``matrix``; all NaN if it is not finite."""
    finite, m = _finite_symmetric(matrix)
    s, u = tf.linalg.eigh(m)
    return _nan_unless(finite, s), _nan_unless(finite, u)


def symmetric_eigvalsh(matrix: tf.Tensor) -> tf.Tensor:
    """Eigenvalues (ascending) of the symmetric part of ``matrix``; all NaN if it is not finite."""
    finite, m = _finite_symmetric(matrix)
    return _nan_unless(finite, tf.linalg.eigvalsh(m))
