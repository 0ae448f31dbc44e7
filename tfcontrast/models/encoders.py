"""Ready-made encoders (backbones), randomly initialised, no downloads.

* :func:`mlp_encoder`: flatten -> Dense-ReLU layers -> features. For vectors
  and tiny images.
* :func:`digits_cnn`: a three-convolution network for 8x8 images (the bundled
  digits); global average pooling makes it tolerant to small shifts.
* :func:`resnet18`: ResNet-18 (He et al., "Deep Residual Learning for Image
  Recognition", CVPR 2016), basic blocks [2, 2, 2, 2] with 64-128-256-512
  filters, 11.2M parameters, global-average-pooled 512-d features. With
  ``stem="cifar"`` the first layer is a 3x3 stride-1 convolution and there is
  no max-pool (the variant SimCLR uses on CIFAR-10: a 32x32 input keeps a 4x4
  map in the last stage); ``stem="imagenet"`` is the original 7x7 stride-2
  convolution + 3x3 stride-2 max-pool.
* :func:`any_resolution`: the same network (same weights) on inputs of any
  height and width, for multi-crop views of several sizes.

Written in plain Keras 3 (keras-cv's ``ResNetBackbone`` only has the ImageNet
stem, which shrinks a 32x32 input to 1x1, and its presets download weights).
BatchNorm is ``synchronized`` so that under a ``tf.distribute`` strategy its
statistics are those of the global batch, as in SimCLR and BYOL; on one
replica it runs TensorFlow's fused kernel
(:class:`tfcontrast.models.normalization.BatchNormalization`).
"""

from __future__ import annotations

from typing import Sequence

import keras

from tfcontrast.models.normalization import BatchNormalization

STEMS = ("cifar", "imagenet")


def _check_shape(input_shape, rank: int | None = None) -> tuple:
    shape = tuple(input_shape)
    if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in shape):
        raise ValueError(f"`input_shape` must be positive ints (no batch axis), got {input_shape!r}.")
    if rank is not None and len(shape) != rank:
        raise ValueError(f"`input_shape` must be (height, width, channels), got {input_shape!r}.")
    return shape


def _check_width(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
    return value


def mlp_encoder(
    input_shape: Sequence[int],
    widths: Sequence[int] = (256, 128),
    name: str = "mlp_encoder",
) -> keras.Model:
    """Flatten, then ``Dense(w) + ReLU`` for every width but the last, then ``Dense(widths[-1])``.

    Example:
        >>> mlp_encoder((8, 8, 1), widths=(64, 32)).output_shape
        (None, 32)
    """
    shape = _check_shape(input_shape)
    widths = [_check_width(w, "widths") for w in widths]
    if not widths:
        raise ValueError("`widths` must hold at least one width.")
    inputs = keras.Input(shape)
    h = keras.layers.Flatten()(inputs) if len(shape) > 1 else inputs
    for width in widths[:-1]:
        h = keras.layers.Dense(width, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(widths[-1])(h), name=name)


def digits_cnn(
    input_shape: Sequence[int] = (8, 8, 1),
    features: int = 128,
    width: int = 32,
    name: str = "digits_cnn",
) -> keras.Model:
    """Conv(w)-BN-ReLU, Conv(2w)-BN-ReLU, max-pool 2, Conv(features)-BN-ReLU, global average pool.

    About 90k parameters at the defaults; ``[batch, features]`` output.
    """
    shape = _check_shape(input_shape, rank=3)
    features, width = _check_width(features, "features"), _check_width(width, "width")
    inputs = keras.Input(shape)
    h = inputs
    for filters, pool in ((width, False), (2 * width, True), (features, False)):
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = BatchNormalization(synchronized=True)(h)
        h = keras.layers.ReLU()(h)
        if pool:
            h = keras.layers.MaxPooling2D(2, padding="same")(h)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h), name=name)


def _conv_bn(h, filters: int, kernel: int, strides: int, relu: bool):
    h = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(h)
    h = BatchNormalization(synchronized=True)(h)
    return keras.layers.ReLU()(h) if relu else h


def _basic_block(h, filters: int, strides: int):
    shortcut = h
    if strides != 1 or h.shape[-1] != filters:
        shortcut = _conv_bn(h, filters, 1, strides, relu=False)
    h = _conv_bn(h, filters, 3, strides, relu=True)
    h = _conv_bn(h, filters, 3, 1, relu=False)
    return keras.layers.ReLU()(keras.layers.Add()([h, shortcut]))


def resnet18(
    input_shape: Sequence[int] = (32, 32, 3),
    stem: str = "cifar",
    name: str = "resnet18",
) -> keras.Model:
    """ResNet-18 backbone: images ``[batch, h, w, c]`` -> ``[batch, 512]`` features.

    Args:
        input_shape: ``(height, width, channels)``.
        stem: ``"cifar"`` (3x3 stride 1, no max-pool; for images up to ~64 px)
            or ``"imagenet"`` (7x7 stride 2 + max-pool).
    """
    shape = _check_shape(input_shape, rank=3)
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {STEMS}, got {stem!r}.")
    inputs = keras.Input(shape)
    if stem == "cifar":
        h = _conv_bn(inputs, 64, 3, 1, relu=True)
    else:
        h = _conv_bn(inputs, 64, 7, 2, relu=True)
        h = keras.layers.MaxPooling2D(3, strides=2, padding="same")(h)
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            h = _basic_block(h, filters, strides=2 if stage > 0 and block == 0 else 1)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h), name=name)


def any_resolution(encoder: keras.Model) -> keras.Model:
    """A copy of a functional image encoder that accepts any height and width, with the same weights.

    Multi-crop (:class:`tfcontrast.augment.MultiCropAugmentation`) feeds views
    of two sizes to one encoder; a Keras model built on ``keras.Input((8, 8,
    1))`` refuses the small ones. The copy is built on ``keras.Input((None,
    None, channels))``, layer for layer (:func:`keras.models.clone_model`),
    and its weights are set to the encoder's, so on the original size it
    computes exactly what the encoder computes. A network that needs its input
    size (a ``Flatten`` before a ``Dense``, as :func:`mlp_encoder`) cannot be
    copied and raises.

    Args:
        encoder: a functional or sequential Keras model on ``[batch, h, w, c]`` images.

    Returns:
        The copy (the encoder itself when its height and width are already free).

    Raises:
        ValueError: not a single-input image model, or a network whose layers need a fixed input size.

    Example:
        >>> flexible = any_resolution(digits_cnn((8, 8, 1), features=16, width=4))
        >>> flexible(keras.ops.zeros([2, 4, 4, 1])).shape
        (2, 16)
    """
    shape = getattr(encoder, "input_shape", None) if isinstance(encoder, keras.Model) else None
    if not isinstance(shape, tuple) or len(shape) != 4:
        raise ValueError(f"`encoder` must be a Keras model on [batch, height, width, channels] images, got input shape {shape}.")
    if shape[1] is None and shape[2] is None:
        return encoder
    try:
        clone = keras.models.clone_model(encoder, input_tensors=keras.Input((None, None, shape[3])))
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{encoder.name!r} cannot run on images of another size than {shape[1:3]} ({err}); multi-crop needs a "
            "network that pools over space (convolutions + global pooling), or crops of one size."
        ) from None
    clone.set_weights(encoder.get_weights())
    return clone
