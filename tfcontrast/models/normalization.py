"""A BatchNormalization on TensorFlow's fused kernel, and a helper that swaps it into a model.

Batch normalisation (Ioffe and Szegedy, "Batch Normalization: Accelerating
Deep Network Training by Reducing Internal Covariate Shift", ICML 2015)
normalises every channel ``c`` with the statistics of the batch,

    y = gamma_c (x - mu_c) / sqrt(sigma2_c + epsilon) + beta_c,
    mu_c = mean(x[..., c]),  sigma2_c = mean((x[..., c] - mu_c)^2)   (biased),

and keeps moving averages of them for inference:

    moving_mean <- momentum moving_mean + (1 - momentum) mu,
    moving_var  <- momentum moving_var  + (1 - momentum) sigma2.

Keras 3 on TensorFlow computes this as separate element-wise ops (moments,
then the normalisation, and as many again in the backward pass); ``tf_keras``
used TensorFlow's fused kernel (``FusedBatchNormV3`` forward,
``FusedBatchNormGradV3`` backward). :class:`BatchNormalization` is
``keras.layers.BatchNormalization`` on that kernel wherever the kernel
computes the same thing:

* channels-last inputs ``[batch, height, width, channels]`` and
  ``[batch, features]`` (viewed as ``[batch, 1, 1, features]``), ``axis=-1``,
  in float32, float16 or bfloat16 (statistics always in float32, as Keras);
* statistics per replica: ``synchronized=False``, or ``synchronized=True``
  on a single replica (outside a strategy, or a strategy with one replica),
  where the global batch *is* the replica's batch;
* ``epsilon >= 1.001e-5`` (cuDNN's minimum), no ``renorm``, no ``mask``.

Everywhere else (other ranks or axes, statistics synchronized over several
replicas, float64, ...) it runs Keras' own code. The kernel hands back the
Bessel-corrected batch variance ``n / (n - 1) sigma2`` (``n`` values per
channel) for running averages; the layer undoes that factor, so the moving
statistics are Keras' biased ones.

Everything else is Keras': the arguments, the variables (names, shapes,
float32 dtype, trainability), the config, the ``training``/``trainable``
semantics (a non-trainable BatchNorm runs in inference mode), and the class
name, which Keras uses for the paths inside weights files, so
``.weights.h5`` files load across the two classes both ways;
``isinstance(layer, keras.layers.BatchNormalization)`` holds.

:func:`fuse_batch_norm` gives a user's own Functional or Sequential model the
same speed: a clone in which every ``keras.layers.BatchNormalization`` is
this one, weights copied.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src.models.functional import Functional  # Keras exports no public name for it

from tfcontrast import distribute

# cuDNN refuses a smaller epsilon (CUDNN_BN_MIN_EPSILON); tf_keras clamped it, we fall back instead.
MIN_FUSED_EPSILON = 1.001e-5
_FUSED_DTYPES = (tf.float32, tf.float16, tf.bfloat16)


@keras.saving.register_keras_serializable(package="tfcontrast")
class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` on TensorFlow's fused kernel where it applies.

    A drop-in replacement: same arguments, variables, config and results as
    ``keras.layers.BatchNormalization`` (to float rounding). The module
    docstring says when the fused kernel runs; :meth:`fuses` tells for a
    given input.

    Example:
        >>> import numpy as np
        >>> bn = BatchNormalization(momentum=0.9)
        >>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(8, 4, 4, 3)).astype("float32")
        >>> y = bn(x, training=True)
        >>> bool(np.allclose(keras.ops.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-5))
        True
        >>> [v.name for v in bn.weights]
        ['gamma', 'beta', 'moving_mean', 'moving_variance']
    """

    def fuses(self, inputs) -> bool:
        """Whether a call on ``inputs`` (a tensor, at trace time) runs the fused kernel."""
        rank = inputs.shape.rank
        return (
            rank in (2, 4)
            and self.axis in (-1, rank - 1)
            and inputs.dtype in _FUSED_DTYPES
            and self.moving_mean.dtype == "float32"
            and not self.renorm
            and self.epsilon >= MIN_FUSED_EPSILON
            and (not self.synchronized or distribute.num_replicas() == 1)
        )

    def call(self, inputs, training=None, mask=None):
        if mask is not None or not self.fuses(inputs):
            return super().call(inputs, training=training, mask=mask)
        x = inputs
        channels = x.shape[-1]
        if x.shape.rank == 2:  # a reshape, not x[:, None, None, :]: its gradient is free, a slice's is not
            x = tf.reshape(x, [-1, 1, 1, channels])
        gamma = self.gamma if self.scale else tf.ones([channels], tf.float32)
        beta = self.beta if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            y, mean, corrected_variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            variance = _biased_variance(corrected_variance, x)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, data_format="NHWC", is_training=False,
            )
        if inputs.shape.rank == 2:
            y = tf.reshape(y, [-1, channels])  # StridedSliceGrad cost 3% of a SimCLR step here
        return tf.cast(y, self.compute_dtype)


def _biased_variance(corrected: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``sigma2`` from the kernel's ``n / (n - 1) sigma2`` (``n`` = values per channel; 0 when n = 1)."""
    n = tf.cast(tf.size(x, out_type=tf.int64) // tf.cast(tf.shape(x)[-1], tf.int64), tf.float32)
    return tf.where(n > 1.0, corrected * ((n - 1.0) / tf.maximum(n, 1.0)), tf.zeros_like(corrected))


def fuse_batch_norm(model: keras.Model) -> keras.Model:
    """A clone of ``model`` in which every ``keras.layers.BatchNormalization`` is fused.

    Each layer whose type is exactly ``keras.layers.BatchNormalization`` becomes
    a :class:`BatchNormalization` with the same config; every other layer
    is cloned as ``keras.models.clone_model`` does; nested Functional and
    Sequential models are cloned the same way. Then every weight (BatchNorm
    moving statistics included) is copied, so the clone computes what
    ``model`` computes, faster where the fused kernel applies. ``model`` is
    left untouched.

    Subclassed models (a ``keras.Model`` with its own ``call``) cannot be
    rewritten from outside: their layers are created by their own
    ``__init__``/``build`` code and used by their own ``call``, which a clone
    cannot see. Build them with :class:`BatchNormalization` instead of
    ``keras.layers.BatchNormalization`` (a drop-in: same arguments, weights
    and config). Likewise a BatchNorm inside a custom layer of a Functional
    model is cloned as it is, unfused.

    Args:
        model: a Functional or Sequential Keras model.

    Returns:
        The fused clone (a new model with new variables holding the same values).

    Raises:
        TypeError: ``model`` is not a Functional or Sequential Keras model.

    Example:
        >>> inputs = keras.Input((8, 8, 3))
        >>> h = keras.layers.Conv2D(4, 3)(inputs)
        >>> h = keras.layers.BatchNormalization()(h)
        >>> model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h))
        >>> fused = fuse_batch_norm(model)
        >>> type(fused.layers[2]).__module__
        'tfcontrast.models.normalization'
    """
    if not isinstance(model, (keras.Sequential, Functional)):
        raise TypeError(
            f"`model` must be a Functional or Sequential keras.Model, got {type(model).__name__}: a "
            "subclassed model's layers are created and called by its own code, which a clone cannot "
            "rewrite; build it with tfcontrast.models.BatchNormalization instead."
        )
    pairs = []

    def clone_layer(layer):
        if type(layer) is keras.layers.BatchNormalization:
            clone = BatchNormalization.from_config(layer.get_config())
        else:
            clone = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, clone))
        return clone

    fused = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    for source, clone in pairs:
        if source.weights:
            clone.set_weights(source.get_weights())
    return fused
