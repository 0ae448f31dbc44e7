"""Batched image augmentation for two-view training and robustness evaluation.

Every transform here works on a whole batch ``[batch, height, width,
channels]`` with one op per step (no per-example loop), so it runs at full
speed inside a ``tf.data`` pipeline (``map`` after ``batch``) or inside a
train step.

Geometric transforms are one projective warp per image
(``ImageProjectiveTransformV3``): the output pixel at (x, y) reads the input
at ``A (x, y, 1)``, with pixels from outside the image filled with 0.

* :func:`shift_and_rotate`: given integer/fractional shifts and angles;
* :func:`random_shift_rotate`: random shifts and rotations (training);
* :func:`nuisance_transform`: the seeded, reproducible nuisance applied to
  test queries when the library reports robustness (shifts of up to 2 px and
  small rotations on digits).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

INTERPOLATIONS = ("nearest", "bilinear")


def _check_images(images) -> tf.Tensor:
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(f"`images` must be [batch, height, width, channels], got shape {images.shape}.")
    if not images.dtype.is_floating:
        images = tf.cast(images, tf.float32)
    return images


def shift_and_rotate(images, shifts, angles=None, interpolation: str = "bilinear") -> tf.Tensor:
    """Moves image i's content by ``shifts[i] = (dx, dy)`` pixels and rotates it by ``angles[i]`` radians.

    Positive dx moves content right, positive dy down; rotation is about the
    image centre, counter-clockwise on screen for positive angles. Integer
    shifts without rotation are exact (pixels are moved, not blended).

    Args:
        images: ``[batch, h, w, c]``.
        shifts: ``[batch, 2]`` (dx, dy).
        angles: ``[batch]`` radians, or ``None`` for no rotation.
        interpolation: ``"bilinear"`` or ``"nearest"``.
    """
    images = _check_images(images)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}, got {interpolation!r}.")
    shifts = tf.cast(tf.convert_to_tensor(shifts), tf.float32)
    batch = tf.shape(images)[0]
    angles = tf.zeros([batch]) if angles is None else tf.cast(tf.convert_to_tensor(angles), tf.float32)
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    cos, sin = tf.cos(angles), tf.sin(angles)
    # Output (x, y) reads input R^-1 ((x, y) - c - shift) + c; on screen (y down)
    # a counter-clockwise rotation by a is the matrix [[cos, sin], [-sin, cos]].
    ox = shifts[:, 0] + cx
    oy = shifts[:, 1] + cy
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * ox - a1 * oy
    b2 = cy - b0 * ox - b1 * oy
    zeros = tf.zeros_like(cos)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=tf.constant(0.0, tf.float32),
        interpolation=interpolation.upper(),
        fill_mode="CONSTANT",
    )
    return tf.ensure_shape(out, images.shape)


def random_shift_rotate(
    images,
    max_shift: float = 2.0,
    max_degrees: float = 0.0,
    integer_shifts: bool = True,
    seed: int | None = None,
) -> tf.Tensor:
    """Shifts each image by up to ``max_shift`` px per axis and rotates it by up to ``max_degrees``.

    Shifts are uniform integers in ``[-max_shift, max_shift]`` (or uniform
    reals with ``integer_shifts=False``); angles uniform in
    ``[-max_degrees, max_degrees]``. Batched; usable in ``tf.data`` and in a
    train step.
    """
    images = _check_images(images)
    if max_shift < 0 or max_degrees < 0:
        raise ValueError(f"`max_shift` and `max_degrees` must be >= 0, got {max_shift!r}, {max_degrees!r}.")
    batch = tf.shape(images)[0]
    if integer_shifts:
        bound = int(math.floor(max_shift))
        shifts = tf.random.uniform([batch, 2], -bound, bound + 1, dtype=tf.int32, seed=seed)
    else:
        shifts = tf.random.uniform([batch, 2], -max_shift, max_shift, seed=seed)
    radians = math.radians(max_degrees)
    angles = tf.random.uniform([batch], -radians, radians, seed=seed) if max_degrees else None
    interpolation = "nearest" if integer_shifts and not max_degrees else "bilinear"
    return shift_and_rotate(images, shifts, angles, interpolation)


def nuisance_transform(
    images, max_shift: int = 2, max_degrees: float = 10.0, seed: int = 0
) -> np.ndarray:
    """The reproducible nuisance used to measure robustness: NumPy in, NumPy out.

    Image i is shifted by integers drawn uniformly from
    ``[-max_shift, max_shift]`` on each axis and rotated by an angle drawn
    uniformly from ``[-max_degrees, max_degrees]`` degrees, all from
    ``numpy.random.default_rng(seed)``: the same images and seed give the same
    output on every machine.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"`images` must be [batch, height, width, channels], got shape {images.shape}.")
    rng = np.random.default_rng(seed)
    shifts = rng.integers(-int(max_shift), int(max_shift) + 1, size=(len(images), 2))
    angles = np.radians(rng.uniform(-max_degrees, max_degrees, size=len(images)))
    interpolation = "bilinear" if max_degrees else "nearest"
    return shift_and_rotate(images, shifts, angles, interpolation).numpy()
