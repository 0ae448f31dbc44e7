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

Two-view recipes for self-supervised learning:

* :class:`TwoViewAugmentation`: the SimCLR and BYOL view recipes (random
  resized crop, flip, colour jitter, grayscale, Gaussian blur, solarisation),
  a Keras layer mapping a batch to ``(view_1, view_2)``, usable in ``tf.data``
  and inside a (jit-compiled) train step;
* :func:`two_view_dataset`: a shuffled, batched, augmented and prefetched
  ``tf.data`` pipeline of ``(view_1, view_2)`` batches, deterministic in its seed;
* :class:`MultiCropAugmentation` and :func:`multi_crop_dataset` (defined in
  :mod:`tfcontrast.multicrop`): SwAV's multi-crop, a few large and several
  small views per image with the same recipes.

The deterministic operations behind the recipes (per-example parameters in,
images out) live in :mod:`tfcontrast._augment_ops` and are re-exported here:
:func:`resized_crop`, :func:`flip_left_right`, :func:`adjust_brightness`,
:func:`adjust_contrast`, :func:`adjust_saturation`, :func:`adjust_hue`,
:func:`color_jitter`, :func:`to_grayscale`, :func:`gaussian_blur`,
:func:`solarize`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import data, validation
from tfcontrast._augment_ops import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    blur_kernel_size,
    color_jitter,
    flip_left_right,
    gaussian_blur,
    resized_crop,
    solarize,
    to_grayscale,
)

INTERPOLATIONS = ("nearest", "bilinear")
RECIPES = ("simclr", "byol")


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


# ------------------------------------------------------------ two-view recipes

# Colour-jitter maxima at strength 1: (brightness, contrast, saturation, hue).
# SimCLR (Chen et al. 2020, appendix A) uses 0.8 s, 0.8 s, 0.8 s, 0.2 s with
# s = 0.5 on CIFAR-10, i.e. these values; BYOL (Grill et al. 2020, table 6)
# uses 0.4, 0.4, 0.2, 0.1.
_JITTER = {"simclr": (0.4, 0.4, 0.4, 0.1), "byol": (0.4, 0.4, 0.2, 0.1)}
# Philox everywhere: "auto_select" picks another generator under XLA, and the
# same seed must give the same views compiled or not.
_ALG = "philox"
# Columns of the [batch, 32] uniform numbers one view consumes.
_CROP_ATTEMPTS = 10
_COLUMNS = {
    "crop": slice(0, 2 * _CROP_ATTEMPTS + 2),  # areas, log-ratios, then y and x offsets
    "flip": 22, "shift": slice(23, 25), "angle": 25, "jitter": 26, "factors": slice(27, 31),
    "order": slice(31, 35), "grayscale": 35, "sigma": 36, "blur": 37, "solarize": 38,
}
_NUM_UNIFORMS = 39


def sample_crop_boxes(
    uniform, scale: tuple[float, float], ratio: tuple[float, float], aspect: float = 1.0
) -> tf.Tensor:
    """Random resized crop boxes ``[batch, 4]`` (normalised ``y1, x1, y2, x2``), as torchvision samples them.

    ``uniform`` is ``[batch, 2 * attempts + 2]`` numbers in [0, 1). Per image
    and attempt: area fraction ``a ~ U(scale)`` and ``log r ~ U(log ratio)``
    give a crop of width ``sqrt(a r aspect)`` and height ``sqrt(a / (r
    aspect))`` (fractions of the image; ``aspect = height / width``); the first
    attempt that fits inside the image is kept (the whole image if none
    fits), and the last two numbers place it uniformly. All attempts are
    evaluated at once.
    """
    uniform = tf.convert_to_tensor(uniform, tf.float32)
    attempts = (uniform.shape[1] - 2) // 2
    area = scale[0] + uniform[:, :attempts] * (scale[1] - scale[0])
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    r = tf.exp(log_low + uniform[:, attempts : 2 * attempts] * (log_high - log_low))
    widths = tf.sqrt(area * r * aspect)
    heights = tf.sqrt(area / (r * aspect))
    fits = tf.logical_and(widths <= 1.0, heights <= 1.0)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)  # 0 when none fits
    any_fit = tf.reduce_any(fits, axis=1)
    pick = lambda v: tf.where(any_fit, tf.gather(v, first, axis=1, batch_dims=1), 1.0)  # noqa: E731
    width, height = pick(widths), pick(heights)
    y1 = uniform[:, -2] * (1.0 - height)
    x1 = uniform[:, -1] * (1.0 - width)
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=1)


def draw_seed(generator: keras.random.SeedGenerator) -> tf.Tensor:
    """A fresh stateless seed from ``generator``, with the replica id folded in under a strategy.

    Replicas then draw different views of their different images from one
    (mirrored) generator.
    """
    seed = generator.next()
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group, alg=_ALG)
    return seed


def check_image_batch(images) -> tf.Tensor:
    """``images`` as a float ``[batch, height, width, 1 or 3]`` tensor with a static size; ``ValueError`` otherwise."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(f"`images` must be [batch, height, width, channels], got shape {images.shape}.")
    if not images.dtype.is_floating:
        raise ValueError(f"`images` must be floats in [0, 1], got dtype {images.dtype.name}.")
    if images.shape[3] not in (1, 3):
        raise ValueError(f"`images` must have 1 or 3 channels, got shape {images.shape}.")
    if images.shape[1] is None or images.shape[2] is None:
        raise ValueError(f"`images` must have a static height and width, got shape {images.shape}.")
    return images


def _pair(value, name: str, lo: float = 0.0, hi: float | None = 1.0) -> tuple[float, float]:
    """A float or a pair of floats in [lo, hi] -> a pair (one value per view)."""
    values = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(values) != 2:
        raise ValueError(f"`{name}` must be a number or a pair (view 1, view 2), got {value!r}.")
    for v in values:
        if not validation._is_finite_number(v) or v < lo or (hi is not None and v > hi):
            bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise ValueError(f"`{name}` values must lie in {bound}, got {value!r}.")
    return float(values[0]), float(values[1])


def _range(value, name: str, low_open: bool, high: float | None) -> tuple[float, float]:
    """A ``(min, max)`` pair with ``0 < min <= max`` (``0 <= min`` if not ``low_open``) and ``max <= high``."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (min, max), got {value!r}.") from None
    bad_low = lo <= 0 if low_open else lo < 0
    if not (math.isfinite(lo) and math.isfinite(hi)) or bad_low or hi < lo or (high is not None and hi > high):
        interval = ("(0, " if low_open else "[0, ") + (f"{high}]" if high is not None else "inf)")
        raise ValueError(f"`{name}` must be (min, max) with min <= max inside {interval}, got {value!r}.")
    return lo, hi


@keras.saving.register_keras_serializable(package="tfcontrast")
class TwoViewAugmentation(keras.layers.Layer):
    """The SimCLR / BYOL view recipe: a batch of images in, two random views out.

    Each view is drawn independently from the same images, in the order of
    both papers' code:

    1. random resized crop (area fraction ``crop_scale``, aspect ratio
       ``crop_ratio``) resized back to ``image_size`` (bilinear);
    2. horizontal flip with probability 0.5 (``flip``);
    3. optional small geometric jitter: integer shifts up to ``max_shift`` px
       and rotations up to ``max_degrees`` (both 0 by default);
    4. colour jitter with probability ``jitter_prob``: brightness (factor in
       ``[1 - b, 1 + b]``), contrast (``[1 - c, 1 + c]`` around each channel's
       mean), saturation (``[1 - s, 1 + s]`` blend with the grey image) and hue
       (rotation in ``[-h, h]`` turns), in a random order per image, clipped to
       [0, 1] after each;
    5. grayscale with probability ``grayscale_prob`` (luma weights);
    6. Gaussian blur with probability ``blur_prob[view]``, sigma uniform in
       ``blur_sigma`` px, kernel about 10% of the side (odd, at least 3);
    7. solarisation (``x >= 0.5 -> 1 - x``) with probability ``solarize_prob[view]``.

    Recipe defaults:

    ============== ================================ =================================
    parameter      ``"simclr"`` (Chen et al. 2020,  ``"byol"`` (Grill et al. 2020,
                   appendix A; CIFAR strength)      table 6)
    ============== ================================ =================================
    crop_scale     (0.08, 1.0)                      (0.08, 1.0)
    crop_ratio     (3/4, 4/3)                       (3/4, 4/3)
    flip           True                             True
    jitter_prob    0.8                              0.8
    jitter (b,c,s,h) (0.4, 0.4, 0.4, 0.1) x strength (0.4, 0.4, 0.2, 0.1) x strength
    grayscale_prob 0.2                              0.2
    blur_prob      (0.5, 0.5); (0, 0) at <= 32 px   (1.0, 0.1)
    blur_sigma     (0.1, 2.0)                       (0.1, 2.0)
    solarize_prob  (0.0, 0.0)                       (0.0, 0.2)
    ============== ================================ =================================

    SimCLR's colour strength s scales (0.8 s, 0.8 s, 0.8 s, 0.2 s); its CIFAR
    setting s = 0.5 is ``jitter_strength=1.0`` here, ImageNet's s = 1 is
    ``jitter_strength=2.0``. SimCLR drops the blur on CIFAR-10, hence no blur
    for images of 32 px or less.

    **Small images.** Every parameter scales with ``image_size``; for 8x8
    grey digits a good setting is ``TwoViewAugmentation("simclr", (8, 8),
    crop_scale=(0.5, 1.0), flip=False, blur_prob=0.0)`` (digits are not
    mirror-symmetric and an 8 px crop of 8% of the area is one pixel); on one
    channel the colour jitter reduces to brightness and contrast, and
    grayscale is a no-op.

    **Randomness.** ``seed`` seeds a ``keras.random.SeedGenerator``; each
    call draws a fresh seed from it (and folds in the replica id under a
    ``tf.distribute`` strategy) and :meth:`views` turns a seed into views with
    one stateless random op, so the same seed gives the same views (within one
    execution mode: XLA's Philox stream differs from the CPU kernel's).
    :meth:`sample_params` / :meth:`apply_params` split sampling from the
    deterministic operations.

    **Compilation.** Everything is batched TF ops (the crop and the blur are
    two batched matrix products each, the colour jitter seven batched
    stages); no per-example loop or ``map_fn``. It compiles with XLA
    (``jit_compile=True``) unless ``max_degrees > 0``: rotation uses
    ``ImageProjectiveTransformV3``, which XLA lacks (``supports_jit`` then
    says so and Keras' ``jit_compile="auto"`` turns XLA off).

    Args:
        recipe: ``"simclr"`` or ``"byol"``: the defaults above.
        image_size: ``(height, width)`` of the input images (and the views).
        crop_scale: ``(min, max)`` area fraction, inside (0, 1].
        crop_ratio: ``(min, max)`` aspect ratio w / h, > 0.
        flip: random horizontal flips.
        jitter_prob: probability of the colour jitter.
        jitter_strength: a float multiplying the recipe's (b, c, s, h), or an
            explicit ``(brightness, contrast, saturation, hue)`` with hue <= 0.5.
        grayscale_prob: probability of grayscale.
        blur_prob: probability of blurring, one value or a pair (view 1, view 2).
        blur_sigma: ``(min, max)`` blur standard deviation in px.
        solarize_prob: probability of solarising, one value or a pair.
        max_shift: integer shift bound in px (>= 0).
        max_degrees: rotation bound in degrees (>= 0).
        seed: int seed of the layer's random stream, or ``None``.

    Raises:
        ValueError: an unknown recipe or a parameter out of range here; images
            that are not ``[batch, *image_size, 1 or 3]`` floats when called.

    Example:
        >>> aug = TwoViewAugmentation("byol", image_size=(32, 32), seed=0)
        >>> v1, v2 = aug(tf.random.uniform([4, 32, 32, 3]))
        >>> v1.shape, v2.dtype.name
        (TensorShape([4, 32, 32, 3]), 'float32')
    """

    def __init__(
        self,
        recipe: str = "simclr",
        image_size: Sequence[int] = (32, 32),
        crop_scale: Sequence[float] = (0.08, 1.0),
        crop_ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        flip: bool = True,
        jitter_prob: float = 0.8,
        jitter_strength: float | Sequence[float] = 1.0,
        grayscale_prob: float = 0.2,
        blur_prob: float | Sequence[float] | None = None,
        blur_sigma: Sequence[float] = (0.1, 2.0),
        solarize_prob: float | Sequence[float] | None = None,
        max_shift: int = 0,
        max_degrees: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        # Keep the images' dtype (no cast to a mixed policy's compute dtype); accept arrays.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.recipe = validation.check_choice(recipe, RECIPES, "recipe")
        try:
            height, width = (int(v) for v in image_size)
            valid_size = all(float(v) == int(v) for v in image_size) and min(height, width) >= 2
        except (TypeError, ValueError):
            valid_size = False
        if not valid_size:
            raise ValueError(f"`image_size` must be (height, width), ints >= 2, got {image_size!r}.")
        self.image_size = (height, width)
        self.crop_scale = _range(crop_scale, "crop_scale", low_open=True, high=1.0)
        self.crop_ratio = _range(crop_ratio, "crop_ratio", low_open=True, high=None)
        self.flip = bool(flip)
        self.jitter_prob = validation.check_fraction(jitter_prob, "jitter_prob", inclusive_high=True)
        if np.ndim(jitter_strength) == 0:
            strength = validation.check_non_negative(jitter_strength, "jitter_strength")
            jitter = tuple(strength * v for v in _JITTER[self.recipe])
        else:
            jitter = tuple(jitter_strength)
            if len(jitter) != 4 or any(
                not validation._is_finite_number(v) or v < 0 for v in jitter
            ):
                raise ValueError(
                    "`jitter_strength` must be a number >= 0 or (brightness, contrast, saturation, hue) "
                    f">= 0, got {jitter_strength!r}."
                )
        if jitter[3] > 0.5:
            raise ValueError(f"the hue jitter of `jitter_strength` must be <= 0.5 turn, got {jitter[3]!r}.")
        self.jitter_strength = tuple(float(v) for v in jitter)
        self.grayscale_prob = validation.check_fraction(grayscale_prob, "grayscale_prob", inclusive_high=True)
        if blur_prob is None:
            blur_prob = (1.0, 0.1) if self.recipe == "byol" else (0.5 if min(self.image_size) > 32 else 0.0)
        self.blur_prob = _pair(blur_prob, "blur_prob")
        self.blur_sigma = _range(blur_sigma, "blur_sigma", low_open=True, high=None)
        if solarize_prob is None:
            solarize_prob = (0.0, 0.2) if self.recipe == "byol" else 0.0
        self.solarize_prob = _pair(solarize_prob, "solarize_prob")
        if not isinstance(max_shift, (int, np.integer)) or isinstance(max_shift, bool) or max_shift < 0:
            raise ValueError(f"`max_shift` must be an int >= 0, got {max_shift!r}.")
        self.max_shift = int(max_shift)
        self.max_degrees = validation.check_non_negative(max_degrees, "max_degrees")
        self.blur_kernel_size = blur_kernel_size(*self.image_size)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = self.max_degrees == 0

    # ------------------------------------------------------------------ calls

    def call(self, images):
        return self.views(images, draw_seed(self.generator))

    def views(self, images, seed) -> tuple[tf.Tensor, tf.Tensor]:
        """The two views drawn from a stateless ``seed`` (shape ``[2]`` ints): same seed, same views."""
        images = self._check_images(images)
        uniform = tf.random.stateless_uniform(
            [2, tf.shape(images)[0], _NUM_UNIFORMS], tf.cast(seed, tf.int64), alg=_ALG
        )
        return tuple(self.apply_params(images, self.params_from(uniform[i], images.shape[-1], i)) for i in (0, 1))

    def view(self, images, seed, index: int = 0) -> tf.Tensor:
        """One view (``index`` 0 or 1 picks the per-view blur and solarise probabilities)."""
        images = self._check_images(images)
        return self.apply_params(images, self.sample_params(tf.shape(images)[0], images.shape[-1], seed, index))

    def sample_params(self, batch, channels: int, seed, index: int = 0) -> dict[str, tf.Tensor]:
        """The random parameters of one view of ``batch`` images from a stateless ``seed``.

        See :meth:`params_from` for the keys. The same seed gives the same
        parameters in eager and graph mode; XLA's Philox stream differs from
        the CPU kernel's, so a compiled call draws other (equally
        distributed) values.
        """
        uniform = tf.random.stateless_uniform([batch, _NUM_UNIFORMS], tf.cast(seed, tf.int64), alg=_ALG)
        return self.params_from(uniform, channels, index)

    def params_from(
        self, uniform, channels: int, index: int = 0, aspect: float | None = None
    ) -> dict[str, tf.Tensor]:
        """Maps ``[batch, 39]`` uniform numbers to the parameters of one view.

        ``aspect`` is the input images' height / width (default: that of
        ``image_size``); crop boxes keep the ``crop_ratio`` range in pixels of
        the input.

        Keys (present only when the step is on): ``boxes`` ``[b, 4]``,
        ``flips`` ``[b]`` bool, ``shifts`` ``[b, 2]`` int, ``angles`` ``[b]``
        radians, ``brightness``/``contrast``/``saturation``/``hue`` ``[b]``
        (identity values where the jitter is skipped) and ``order`` ``[b, 4]``,
        ``grayscale`` ``[b]`` bool, ``sigmas`` ``[b]`` (0 = no blur),
        ``solarize`` ``[b]`` bool. One random op draws every number of a view.
        """
        u = lambda name: uniform[:, _COLUMNS[name]]  # noqa: E731
        height, width = self.image_size
        aspect = height / width if aspect is None else aspect
        params = {"boxes": sample_crop_boxes(u("crop"), self.crop_scale, self.crop_ratio, aspect)}
        if self.flip:
            params["flips"] = u("flip") < 0.5
        if self.max_shift:
            span = 2 * self.max_shift + 1
            params["shifts"] = tf.minimum(tf.cast(u("shift") * span, tf.int32), span - 1) - self.max_shift
        if self.max_degrees:
            radians = math.radians(self.max_degrees)
            params["angles"] = (2.0 * u("angle") - 1.0) * radians
        strengths = self.jitter_strength if channels == 3 else self.jitter_strength[:2] + (0.0, 0.0)
        if self.jitter_prob > 0 and any(strengths):
            apply = u("jitter") < self.jitter_prob
            factors = u("factors")
            for k, (name, strength) in enumerate(zip(("brightness", "contrast", "saturation"), strengths)):
                low = max(0.0, 1.0 - strength)
                params[name] = tf.where(apply, low + factors[:, k] * (1.0 + strength - low), 1.0)
            params["hue"] = tf.where(apply, (2.0 * factors[:, 3] - 1.0) * strengths[3], 0.0)
            params["order"] = tf.argsort(u("order"), axis=1)
        if self.grayscale_prob > 0 and channels == 3:
            params["grayscale"] = u("grayscale") < self.grayscale_prob
        if self.blur_prob[index] > 0:
            sigma = self.blur_sigma[0] + u("sigma") * (self.blur_sigma[1] - self.blur_sigma[0])
            params["sigmas"] = tf.where(u("blur") < self.blur_prob[index], sigma, 0.0)
        if self.solarize_prob[index] > 0:
            params["solarize"] = u("solarize") < self.solarize_prob[index]
        return params

    def apply_params(self, images, params: dict[str, tf.Tensor]) -> tf.Tensor:
        """Applies :meth:`sample_params`' parameters in the recipe's order; deterministic.

        The crop resizes to ``image_size`` from images of any size (so one
        recipe also serves larger inputs, as in multi-crop).
        """
        images = check_image_batch(images)
        x = tf.cast(images, tf.float32)
        x = resized_crop(x, params["boxes"], self.image_size, params.get("flips"), params.get("shifts"))
        if "angles" in params:
            x = shift_and_rotate(x, tf.zeros([tf.shape(x)[0], 2]), params["angles"], "bilinear")
        if "order" in params:
            jitter = [params[name] for name in ("brightness", "contrast", "saturation", "hue")]
            x = color_jitter(x, *jitter, params["order"])
        if "grayscale" in params:
            x = to_grayscale(x, params["grayscale"])
        if "sigmas" in params:
            x = gaussian_blur(x, params["sigmas"], self.blur_kernel_size)
        if "solarize" in params:
            x = solarize(x, params["solarize"])
        return tf.cast(x, images.dtype)

    def _check_images(self, images) -> tf.Tensor:
        images = check_image_batch(images)
        if tuple(images.shape[1:3]) != self.image_size:
            raise ValueError(
                f"`images` are {tuple(images.shape[1:3])} but this augmentation has image_size={self.image_size}."
            )
        return images

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "recipe": self.recipe,
            "image_size": self.image_size,
            "crop_scale": self.crop_scale,
            "crop_ratio": self.crop_ratio,
            "flip": self.flip,
            "jitter_prob": self.jitter_prob,
            "jitter_strength": self.jitter_strength,
            "grayscale_prob": self.grayscale_prob,
            "blur_prob": self.blur_prob,
            "blur_sigma": self.blur_sigma,
            "solarize_prob": self.solarize_prob,
            "max_shift": self.max_shift,
            "max_degrees": self.max_degrees,
            "seed": self.seed,
        }


def two_view_dataset(
    images,
    batch_size: int,
    augmentation: TwoViewAugmentation | Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]],
    seed: int | None = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    repeat: bool = False,
    jit_compile: bool | None = None,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline of ``(view_1, view_2)`` batches for ``model.fit``.

    shuffle (reshuffled every epoch) -> [repeat] -> batch -> augment the whole
    batch (``num_parallel_calls=AUTOTUNE``) -> prefetch two batches, with
    tf.data's autotuning off (:func:`tfcontrast.data.steady_pipeline`: no
    waits when ``fit`` ends). With a
    :class:`TwoViewAugmentation`, batch k of an epoch gets its views from a
    stateless seed drawn from ``tf.data.Dataset.random(seed)`` (fresh every
    epoch), so a given ``seed`` reproduces the whole stream, epochs included;
    any other callable ``images -> (view_1, view_2)`` is mapped as it is.

    Args:
        images: ``[n, h, w, c]`` float array in [0, 1], or a ``tf.data.Dataset``
            of single images.
        batch_size: images per batch (> 0).
        augmentation: the view recipe.
        seed: seed of shuffling and views (``None``: not reproducible).
        shuffle: shuffle the images (buffer: the whole array, or 10,000 images of a dataset).
        drop_remainder: drop the last incomplete batch (keeps shapes static).
        repeat: repeat forever (then give ``fit`` a ``steps_per_epoch``).
        jit_compile: compile a :class:`TwoViewAugmentation` with XLA inside the
            pipeline; ``None`` (default) does when it can (``supports_jit``):
            XLA fuses the colour jitter's element-wise stages, about 2-3x faster
            on CPU than the plain graph (``benchmarks/bench_augment.py``).

    Example:
        >>> aug = TwoViewAugmentation("simclr", (8, 8), crop_scale=(0.5, 1.0), flip=False)
        >>> ds = two_view_dataset(np.zeros((64, 8, 8, 1), "float32"), 32, aug)
        >>> [tuple(v.shape) for v in next(iter(ds))]
        [(32, 8, 8, 1), (32, 8, 8, 1)]
    """
    if not callable(augmentation):
        raise ValueError(f"`augmentation` must be a callable images -> (view_1, view_2), got {augmentation!r}.")
    stateless = isinstance(augmentation, TwoViewAugmentation)
    return augmented_dataset(images, batch_size, augmentation, stateless, seed, shuffle, drop_remainder, repeat, jit_compile)


def augmented_dataset(
    images,
    batch_size: int,
    augmentation: Callable | None,
    stateless: bool,
    seed: int | None = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    repeat: bool = False,
    jit_compile: bool | None = None,
    indexed: bool = False,
) -> tf.data.Dataset:
    """The pipeline behind :func:`two_view_dataset`, :func:`multi_crop_dataset` and :func:`tfcontrast.data.indexed_dataset`.

    With ``stateless`` the augmentation is a view recipe (a layer with
    ``views(images, seed)`` and ``supports_jit``) whose views come from
    per-batch stateless seeds of ``tf.data.Dataset.random(seed)``; otherwise
    ``augmentation`` is mapped as it is; ``None`` leaves the images as they
    are. With ``indexed`` every batch is ``(views or images, index)``, index
    = each image's row in ``images`` (its position in a dataset), int64.
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    if isinstance(images, tf.data.Dataset):
        dataset, buffer = images, 10_000
        spec = images.element_spec
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank != 3:
            raise ValueError(f"`images` must be a dataset of single [h, w, c] images, got elements {spec}.")
    else:
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"`images` must be [n, height, width, channels], got shape {images.shape}.")
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"`images` must be floats in [0, 1], got dtype {images.dtype}.")
        dataset, buffer = tf.data.Dataset.from_tensor_slices(images), max(len(images), 1)
    if indexed:
        dataset = dataset.enumerate().map(lambda index, image: (image, index))
    if shuffle:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
    if augmentation is None:
        return data.steady_pipeline(dataset)
    if stateless:
        jit = augmentation.supports_jit if jit_compile is None else bool(jit_compile)
        views = tf.function(augmentation.views, jit_compile=jit)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        apply = (lambda batch, seed: (views(batch[0], seed), batch[1])) if indexed else views
        dataset = tf.data.Dataset.zip(dataset, seeds).map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        apply = (lambda x, index: (tuple(augmentation(x)), index)) if indexed else (lambda x: tuple(augmentation(x)))
        dataset = dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return data.steady_pipeline(dataset)


# Multi-crop builds on the recipes above; its module imports this one, so it comes last.
from tfcontrast.multicrop import MultiCropAugmentation, multi_crop_dataset  # noqa: E402,F401
