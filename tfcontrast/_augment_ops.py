"""Deterministic, batched image operations with per-example parameters.

The random recipes of :mod:`tfcontrast.augment` sample parameters and call
these functions; keeping the two apart lets tests check every operation
against an independent reference on fixed parameters. Each function takes a
float batch ``[batch, height, width, channels]`` with values in [0, 1] and one
parameter per example, runs as a handful of batched TF ops (no per-example
loop, no ``map_fn``), and compiles with XLA.

* :func:`resized_crop`: bilinear crop-and-resize with per-example boxes, flips
  and integer shifts, as two batched matrix products (the sampling of
  ``tf.image.crop_and_resize``, which has no XLA kernel);
* :func:`adjust_brightness`, :func:`adjust_contrast`, :func:`adjust_saturation`,
  :func:`adjust_hue` and :func:`color_jitter` (the four in a per-example order);
* :func:`to_grayscale`, :func:`gaussian_blur` (per-example sigma, banded
  matrices like the crop), :func:`solarize`.

Colour operations need 1 or 3 channels; on 1 channel, saturation, hue and
grayscale are the identity.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# ITU-R BT.601 luma weights, those of tf.image.rgb_to_grayscale.
LUMA = (0.2989, 0.5870, 0.1140)
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def _channels(images: tf.Tensor) -> int:
    channels = images.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"colour operations need 1 or 3 channels, got images of shape {images.shape}.")
    return channels


def _per_example(values, images: tf.Tensor) -> tf.Tensor:
    """``values`` [batch] as float32 [batch, 1, 1, 1], to broadcast over an image batch."""
    return tf.reshape(tf.cast(values, images.dtype), [-1, 1, 1, 1])


def _clip(images: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(images, 0.0, 1.0)


def grayscale_of(images: tf.Tensor) -> tf.Tensor:
    """Luminance ``0.2989 R + 0.587 G + 0.114 B`` as ``[batch, h, w, 1]`` (the image itself for 1 channel)."""
    if _channels(images) == 1:
        return images
    return LUMA[0] * images[..., 0:1] + LUMA[1] * images[..., 1:2] + LUMA[2] * images[..., 2:3]


# ------------------------------------------------------------------ geometry


def interpolation_matrix(starts, ends, in_size: int, out_size: int) -> tf.Tensor:
    """``[batch, out_size, in_size]`` bilinear weights sampling ``[starts, ends]`` (normalised) at ``out_size`` points.

    Output position i samples the input at ``y_i = (start + i (end - start) /
    (out_size - 1)) (in_size - 1)`` (the box centre when ``out_size`` is 1),
    the convention of ``tf.image.crop_and_resize``; row i holds the hat
    weights ``max(0, 1 - |y_i - p|)`` of the input pixels p.
    """
    starts = tf.cast(starts, tf.float32)[:, None]
    ends = tf.cast(ends, tf.float32)[:, None]
    if out_size > 1:
        steps = tf.range(out_size, dtype=tf.float32)[None, :] / float(out_size - 1)
        positions = (starts + steps * (ends - starts)) * float(in_size - 1)
    else:
        positions = 0.5 * (starts + ends) * float(in_size - 1)
    pixels = tf.range(in_size, dtype=tf.float32)[None, None, :]
    return tf.maximum(0.0, 1.0 - tf.abs(positions[:, :, None] - pixels))


def _shift_rows(matrix: tf.Tensor, shifts) -> tf.Tensor:
    """Row i of the result is row ``i - shift`` of ``matrix`` (zero outside): content moves by ``shift``."""
    out_size = matrix.shape[1]
    rows = tf.range(out_size)[None, :] - tf.cast(shifts, tf.int32)[:, None]  # [batch, out]
    select = tf.one_hot(rows, out_size, dtype=matrix.dtype)  # out-of-range rows give zero vectors
    return tf.matmul(select, matrix)


def resized_crop(images, boxes, size, flips=None, shifts=None) -> tf.Tensor:
    """Crops box i of image i, resizes it bilinearly to ``size``, then flips and shifts it.

    Args:
        images: ``[batch, h, w, c]`` float.
        boxes: ``[batch, 4]`` normalised ``(y1, x1, y2, x2)`` as in
            ``tf.image.crop_and_resize`` (``(0, 0, 1, 1)`` is the whole image).
        size: ``(out_h, out_w)``.
        flips: optional ``[batch]`` bool: mirror left-right after resizing.
        shifts: optional ``[batch, 2]`` integers ``(dx, dy)``: move the content
            right/down after the flip, filling with 0.

    Returns:
        ``[batch, out_h, out_w, c]``; equals ``tf.image.crop_and_resize(images,
        boxes, range(batch), size)`` for boxes inside the image, computed as
        ``R_y[i] @ image[i] @ R_x[i]^T`` per channel (one batched einsum per
        axis), which XLA compiles.
    """
    images = tf.convert_to_tensor(images)
    boxes = tf.cast(boxes, tf.float32)
    out_h, out_w = int(size[0]), int(size[1])
    rows = interpolation_matrix(boxes[:, 0], boxes[:, 2], images.shape[1], out_h)
    cols = interpolation_matrix(boxes[:, 1], boxes[:, 3], images.shape[2], out_w)
    if flips is not None:
        cols = tf.where(tf.reshape(tf.cast(flips, tf.bool), [-1, 1, 1]), tf.reverse(cols, axis=[1]), cols)
    if shifts is not None:
        shifts = tf.convert_to_tensor(shifts)
        cols = _shift_rows(cols, shifts[:, 0])
        rows = _shift_rows(rows, shifts[:, 1])
    rows, cols = tf.cast(rows, images.dtype), tf.cast(cols, images.dtype)
    out = tf.einsum("bip,bpwc->biwc", rows, images)
    return tf.einsum("bjw,biwc->bijc", cols, out)


def flip_left_right(images, flips) -> tf.Tensor:
    """Mirrors image i left-right where ``flips[i]`` is true."""
    images = tf.convert_to_tensor(images)
    mask = tf.reshape(tf.cast(flips, tf.bool), [-1, 1, 1, 1])
    return tf.where(mask, tf.reverse(images, axis=[2]), images)


# -------------------------------------------------------------------- colour


def _blend(images, anchor, factors) -> tf.Tensor:
    """``clip(anchor + factor_i (x - anchor))``: every adjustment but hue is a blend with an anchor image."""
    return _clip(anchor + _per_example(factors, images) * (images - anchor))


def adjust_brightness(images, factors) -> tf.Tensor:
    """``clip(x * factor_i)``: multiplicative brightness (torchvision, SimCLR v2 code), a blend with black."""
    images = tf.convert_to_tensor(images)
    return _blend(images, 0.0, factors)


def adjust_contrast(images, factors) -> tf.Tensor:
    """``clip((x - m) * factor_i + m)`` with m the per-channel mean of image i (``tf.image.adjust_contrast``)."""
    images = tf.convert_to_tensor(images)
    return _blend(images, tf.reduce_mean(images, axis=[1, 2], keepdims=True), factors)


def adjust_saturation(images, factors) -> tf.Tensor:
    """``clip(g + factor_i (x - g))``, g the pixel's luminance: a blend with the grey image (identity on 1 channel)."""
    images = tf.convert_to_tensor(images)
    if _channels(images) == 1:
        return images
    return _blend(images, grayscale_of(images), factors)


def adjust_hue(images, deltas) -> tf.Tensor:
    """Rotates the HSV hue of image i by ``deltas[i]`` turns (``tf.image.adjust_hue``; identity on 1 channel)."""
    images = tf.convert_to_tensor(images)
    if _channels(images) == 1:
        return images
    hsv = tf.image.rgb_to_hsv(images)
    hue = tf.math.floormod(hsv[..., :1] + _per_example(deltas, images), 1.0)
    return _clip(tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1)))


_HUE = JITTER_OPS.index("hue")


def color_jitter(images, brightness, contrast, saturation, hue, order) -> tf.Tensor:
    """The four colour adjustments, applied to image i in the order ``order[i]``.

    Args:
        images: ``[batch, h, w, c]`` with c in (1, 3).
        brightness, contrast, saturation: ``[batch]`` factors (1 = unchanged).
        hue: ``[batch]`` hue rotations in turns (0 = unchanged).
        order: ``[batch, 4]`` int, a permutation of ``0..3`` per image indexing
            ``("brightness", "contrast", "saturation", "hue")``: image i gets
            ``order[i, 0]`` first, then ``order[i, 1]``, and so on.

    Results are clipped to [0, 1] after every adjustment, as in the SimCLR
    and BYOL code. Per-example order without a loop: brightness, contrast
    and saturation are all blends ``clip(a + f (x - a))`` with an anchor a
    (black, the channel means, the grey image), so one batched blend applies
    to each image whichever of the three is its next one (or none, f = 1).
    Three blend stages run before the hue rotation and three after it; image
    i uses the stages that match where hue sits in its order. Seven batched
    stages in all, one of them the (costlier) hue rotation.
    """
    images = tf.convert_to_tensor(images)
    channels = _channels(images)
    order = tf.cast(order, tf.int32)
    factors = tf.stack([tf.cast(v, tf.float32) for v in (brightness, contrast, saturation)], axis=1)  # [b, 3]
    hue_position = tf.argmax(tf.cast(tf.equal(order, _HUE), tf.int32), axis=1, output_type=tf.int32)
    # The three blends of image i in its order: order[i] with the hue entry moved last, first three kept.
    slots = tf.range(4)[None, :]
    moved = tf.argsort(tf.where(tf.equal(order, _HUE), 4, slots), axis=1, stable=True)
    blends = tf.gather(order, moved[:, :3], batch_dims=1)  # [b, 3] in 0..2

    def stage(x, op):  # op [b] in -1..2; -1 = unchanged
        factor = tf.where(op >= 0, tf.gather(factors, tf.maximum(op, 0), batch_dims=1), 1.0)
        anchor = tf.where(_per_example(op, x) == 1.0, tf.reduce_mean(x, axis=[1, 2], keepdims=True), 0.0)
        if channels == 3:
            anchor = tf.where(_per_example(op, x) == 2.0, grayscale_of(x), anchor)
        return _blend(x, anchor, factor)

    for j in range(3):
        images = stage(images, tf.where(j < hue_position, blends[:, j], -1))
    if channels == 3:
        images = adjust_hue(images, hue)
    for j in range(3):
        images = stage(images, tf.where(j >= hue_position, blends[:, j], -1))
    return images


def to_grayscale(images, mask) -> tf.Tensor:
    """Replaces image i by its luminance on every channel where ``mask[i]`` (identity on 1 channel)."""
    images = tf.convert_to_tensor(images)
    if _channels(images) == 1:
        return images
    gray = tf.broadcast_to(grayscale_of(images), tf.shape(images))
    return tf.where(tf.reshape(tf.cast(mask, tf.bool), [-1, 1, 1, 1]), gray, images)


def solarize(images, mask, threshold: float = 0.5) -> tf.Tensor:
    """Where ``mask[i]``: ``x`` below ``threshold``, ``1 - x`` at or above it (BYOL's solarisation)."""
    images = tf.convert_to_tensor(images)
    solarized = tf.where(images < threshold, images, 1.0 - images)
    return tf.where(tf.reshape(tf.cast(mask, tf.bool), [-1, 1, 1, 1]), solarized, images)


# ---------------------------------------------------------------------- blur


def blur_kernel_size(height: int, width: int) -> int:
    """SimCLR's blur kernel: about 10% of the shorter side, odd, at least 3 (23 for 224 px, 3 for 32 px)."""
    return 2 * max(min(int(height), int(width)) // 20, 1) + 1


def gaussian_kernels(sigmas, kernel_size: int) -> tf.Tensor:
    """``[batch, kernel_size]`` normalised 1-D Gaussians; a sigma <= 0 gives the identity (a unit impulse)."""
    sigmas = tf.cast(sigmas, tf.float32)[:, None]
    radius = kernel_size // 2
    x = tf.range(-radius, radius + 1, dtype=tf.float32)[None, :]
    safe = tf.where(sigmas > 0, sigmas, 1.0)
    weights = tf.exp(-tf.square(x) / (2.0 * tf.square(safe)))
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    impulse = tf.cast(tf.equal(x, 0.0), tf.float32)
    return tf.where(sigmas > 0, weights, impulse)


def _reflect_taps(size: int, kernel_size: int) -> np.ndarray:
    """``[size, kernel_size, size]`` one-hot: tap t of output i reads input ``reflect(i + t - radius)``."""
    radius = kernel_size // 2
    taps = np.zeros((size, kernel_size, size), np.float32)
    for i in range(size):
        for t in range(kernel_size):
            q = abs(i + t - radius)  # reflect below 0 ...
            q = 2 * (size - 1) - q if q > size - 1 else q  # ... and above size - 1 (no edge repeat)
            taps[i, t, q] = 1.0
    return taps


def gaussian_blur(images, sigmas, kernel_size: int) -> tf.Tensor:
    """Separable Gaussian blur of image i with standard deviation ``sigmas[i]`` px (<= 0: unchanged).

    Borders are reflected (``REFLECT`` padding, no edge repeat), so blurring
    keeps a constant image constant. Each 1-D pass, padding included, is a
    banded ``[size, size]`` matrix per image, ``B[i] = sum_t k_i[t]
    onehot(reflect(row + t - r))``, applied to the whole batch with one
    einsum per axis, like the crop: fast in graph mode and under XLA (whose
    CPU depthwise convolution with one group per image is very slow).
    """
    images = tf.convert_to_tensor(images)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"`kernel_size` must be a positive odd int, got {kernel_size!r}.")
    height, width = images.shape[1], images.shape[2]
    if kernel_size // 2 >= min(height, width):
        raise ValueError(f"`kernel_size` {kernel_size} is too large for images of shape {images.shape}.")
    kernels = tf.cast(gaussian_kernels(sigmas, kernel_size), images.dtype)  # [b, k]
    rows = tf.einsum("bt,itp->bip", kernels, tf.constant(_reflect_taps(height, kernel_size), images.dtype))
    cols = tf.einsum("bt,jtq->bjq", kernels, tf.constant(_reflect_taps(width, kernel_size), images.dtype))
    out = tf.einsum("bip,bpwc->biwc", rows, images)
    return tf.einsum("bjw,biwc->bijc", cols, out)
