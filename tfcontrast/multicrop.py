"""Multi-crop augmentation: a few large views and several small ones of every image.

Caron, Misra, Mairal, Goyal, Bojanowski and Joulin, "Unsupervised Learning of
Visual Features by Contrasting Cluster Assignments" (SwAV), NeurIPS 2020,
section 3.2: besides two standard-resolution crops, each image gives V small,
low-resolution crops covering a small part of it; the extra views cost little
compute because they are small. SwAV's ImageNet setting is 2 x 224 px crops of
area fraction (0.14, 1) and 6 x 96 px crops of (0.05, 0.14).

:class:`MultiCropAugmentation` (re-exported as
``tfcontrast.augment.MultiCropAugmentation``) applies the SimCLR / BYOL view
recipe of :class:`~tfcontrast.augment.TwoViewAugmentation` to each crop, with
the crop resized to the global or the local size. Like the two-view layer it
is batched (one ``resized_crop``, i.e. two batched matrix products, per
view), seeded statelessly, serialisable through ``get_config``, and compiles
with XLA. :func:`multi_crop_dataset` is the ``tf.data`` pipeline.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import validation
from tfcontrast.augment import (
    _ALG,
    _NUM_UNIFORMS,
    RECIPES,
    TwoViewAugmentation,
    _range,
    augmented_dataset,
    check_image_batch,
    draw_seed,
)


def _size(value, name: str) -> tuple[int, int]:
    """An int or ``(height, width)`` of ints >= 2 -> ``(height, width)``."""
    values = (value, value) if np.ndim(value) == 0 else tuple(value)
    try:
        valid = len(values) == 2 and all(
            not isinstance(v, bool) and float(v) == int(v) and int(v) >= 2 for v in values
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"`{name}` must be an int or (height, width), ints >= 2, got {value!r}.")
    return int(values[0]), int(values[1])


def _count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


@keras.saving.register_keras_serializable(package="tfcontrast")
class MultiCropAugmentation(keras.layers.Layer):
    """``num_global`` large and ``num_local`` small random views of a batch of images.

    Called on ``[batch, height, width, 1 or 3]`` float images in [0, 1] (any
    static size), it returns a tuple of ``num_global + num_local`` views: the
    global views first (``[batch, *global_size, c]``, crop area fraction in
    ``global_scale``), then the local ones (``[batch, *local_size, c]``, area
    fraction in ``local_scale``). SwAV takes its codes from the global views
    (``tfcontrast.losses.SwAVLoss(code_crops=range(num_global))``).

    Every view follows the ``recipe`` of
    :class:`~tfcontrast.augment.TwoViewAugmentation` (random resized crop with
    aspect ratio in ``crop_ratio``, measured in pixels of the input; flip;
    colour jitter; grayscale; blur; solarisation), with its defaults for the
    view's output size; the per-view probabilities of ``blur_prob`` and
    ``solarize_prob`` (pairs for views 1 and 2 in BYOL's recipe) go to the
    global views 1, 2, 3, ... alternately, and likewise to the local views.

    Randomness, compilation and serialisation work as for
    :class:`~tfcontrast.augment.TwoViewAugmentation`: :meth:`views` maps a
    stateless seed to the views with one random op; each call draws a fresh
    seed from the layer's ``seed``; XLA compiles it (unless ``max_degrees >
    0``); ``get_config`` round-trips.

    Args:
        global_size: output size of the global views, an int or ``(h, w)``.
        local_size: output size of the local views.
        num_global: number of global views, >= 1 (SwAV: 2).
        num_local: number of local views, >= 0 (SwAV: 6).
        global_scale: ``(min, max)`` area fraction of the global crops, in (0, 1].
        local_scale: ``(min, max)`` area fraction of the local crops, in (0, 1].
        recipe: ``"simclr"`` or ``"byol"``.
        crop_ratio, flip, jitter_prob, jitter_strength, grayscale_prob,
        blur_prob, blur_sigma, solarize_prob, max_shift, max_degrees: as in
            :class:`~tfcontrast.augment.TwoViewAugmentation` (``None`` for the
            recipe's default).
        seed: int seed of the layer's random stream, or ``None``.

    Raises:
        ValueError: a bad argument, or images that are not a float
            ``[batch, h, w, 1 or 3]`` batch when called.

    Example:
        >>> aug = MultiCropAugmentation(global_size=32, local_size=16, num_local=4, seed=0)
        >>> views = aug(tf.random.uniform([8, 40, 40, 3]))
        >>> [tuple(v.shape) for v in views][:3], len(views)
        ([(8, 32, 32, 3), (8, 32, 32, 3), (8, 16, 16, 3)], 6)
    """

    def __init__(
        self,
        global_size: int | Sequence[int] = 224,
        local_size: int | Sequence[int] = 96,
        num_global: int = 2,
        num_local: int = 6,
        global_scale: Sequence[float] = (0.14, 1.0),
        local_scale: Sequence[float] = (0.05, 0.14),
        recipe: str = "simclr",
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
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.global_size = _size(global_size, "global_size")
        self.local_size = _size(local_size, "local_size")
        self.num_global = _count(num_global, "num_global", 1)
        self.num_local = _count(num_local, "num_local", 0)
        self.global_scale = _range(global_scale, "global_scale", low_open=True, high=1.0)
        self.local_scale = _range(local_scale, "local_scale", low_open=True, high=1.0)
        self.recipe = validation.check_choice(recipe, RECIPES, "recipe")
        self.recipe_options = {
            "crop_ratio": crop_ratio, "flip": flip, "jitter_prob": jitter_prob, "jitter_strength": jitter_strength,
            "grayscale_prob": grayscale_prob, "blur_prob": blur_prob, "blur_sigma": blur_sigma,
            "solarize_prob": solarize_prob, "max_shift": max_shift, "max_degrees": max_degrees,
        }
        # One recipe per view kind, validating the options; their own random streams are unused.
        self.global_views = TwoViewAugmentation(
            self.recipe, self.global_size, crop_scale=self.global_scale, seed=0, **self.recipe_options
        )
        self.local_views = TwoViewAugmentation(
            self.recipe, self.local_size, crop_scale=self.local_scale, seed=0, **self.recipe_options
        )
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = self.global_views.supports_jit
        for layer in (self.global_views, self.local_views, self):
            layer.built = True  # no weights to build (only random-stream state)

    @property
    def num_views(self) -> int:
        """``num_global + num_local``."""
        return self.num_global + self.num_local

    def call(self, images):
        return self.views(images, draw_seed(self.generator))

    def views(self, images, seed) -> tuple[tf.Tensor, ...]:
        """The views drawn from a stateless ``seed`` (shape ``[2]`` ints): same seed, same views.

        One random op draws the numbers of every view; view v of the images
        then costs one batched crop-and-resize and the recipe's colour ops.
        """
        images = check_image_batch(images)
        height, width, channels = images.shape[1:]
        uniform = tf.random.stateless_uniform(
            [self.num_views, tf.shape(images)[0], _NUM_UNIFORMS], tf.cast(seed, tf.int64), alg=_ALG
        )
        out = []
        for v in range(self.num_views):
            recipe, index = (self.global_views, v) if v < self.num_global else (self.local_views, v - self.num_global)
            params = recipe.params_from(uniform[v], channels, index % 2, aspect=height / width)
            out.append(recipe.apply_params(images, params))
        return tuple(out)

    def compute_output_shape(self, input_shape):
        batch, channels = input_shape[0], input_shape[-1]
        return tuple(
            (batch, *(self.global_size if v < self.num_global else self.local_size), channels)
            for v in range(self.num_views)
        )

    def get_config(self):
        options = {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.recipe_options.items()
        }
        return {
            **super().get_config(),
            "global_size": self.global_size,
            "local_size": self.local_size,
            "num_global": self.num_global,
            "num_local": self.num_local,
            "global_scale": self.global_scale,
            "local_scale": self.local_scale,
            "recipe": self.recipe,
            **options,
            "seed": self.seed,
        }


def multi_crop_dataset(
    images,
    batch_size: int,
    augmentation: MultiCropAugmentation,
    seed: int | None = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    repeat: bool = False,
    jit_compile: bool | None = None,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline of multi-crop batches (tuples of views) for ``model.fit``.

    shuffle (every epoch) -> [repeat] -> batch -> :meth:`MultiCropAugmentation.views`
    with a stateless seed per batch from ``tf.data.Dataset.random(seed)`` ->
    prefetch, exactly as :func:`tfcontrast.augment.two_view_dataset` (see it
    for the arguments): a given ``seed`` reproduces the whole stream.

    Example:
        >>> aug = MultiCropAugmentation(8, 4, num_local=2, global_scale=(0.5, 1.0), local_scale=(0.2, 0.5))
        >>> ds = multi_crop_dataset(np.zeros((64, 8, 8, 1), "float32"), 32, aug)
        >>> [tuple(v.shape) for v in next(iter(ds))]
        [(32, 8, 8, 1), (32, 8, 8, 1), (32, 4, 4, 1), (32, 4, 4, 1)]
    """
    if not isinstance(augmentation, MultiCropAugmentation):
        raise ValueError(f"`augmentation` must be a MultiCropAugmentation, got {augmentation!r}.")
    return augmented_dataset(images, batch_size, augmentation, True, seed, shuffle, drop_remainder, repeat, jit_compile)
