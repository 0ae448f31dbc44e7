"""MultiCropAugmentation and multi_crop_dataset (re-exported from tfcontrast.augment)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import augment

# Only the crop (no flip, colour, blur): each view is a bilinear resized crop of the input.
CROP_ONLY = dict(flip=False, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0)


def coordinate_images(n, height, width):
    """Channel 0 = x / (w - 1), channel 1 = y / (h - 1), channel 2 = 0: a crop's corners give its box."""
    x = np.tile(np.linspace(0.0, 1.0, width), (height, 1))
    y = np.tile(np.linspace(0.0, 1.0, height)[:, None], (1, width))
    image = np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.float32)
    return np.repeat(image[None], n, axis=0)


def measured_boxes(view):
    """Per image, the (y1, x1, y2, x2) of the crop read off a view of coordinate_images.

    Bilinear sampling of a linear ramp is exact, and tf.image.crop_and_resize's convention samples the
    first and last output pixels at the box edges.
    """
    v = view.numpy().astype(np.float64)
    return np.stack([v[:, 0, 0, 1], v[:, 0, 0, 0], v[:, -1, -1, 1], v[:, -1, -1, 0]], axis=1)


def test_shapes_dtypes_ranges_and_order(rng):
    aug = augment.MultiCropAugmentation(global_size=16, local_size=(6, 8), num_global=2, num_local=3, seed=0)
    assert aug.num_views == 5
    for dtype in ("float32", "float16"):
        x = rng.uniform(size=(4, 20, 20, 3)).astype(dtype)
        views = aug(x)
        assert [tuple(v.shape) for v in views] == [(4, 16, 16, 3)] * 2 + [(4, 6, 8, 3)] * 3
        assert all(v.dtype == dtype for v in views)
        assert all(0.0 <= float(tf.reduce_min(v)) and float(tf.reduce_max(v)) <= 1.0 for v in views)
    assert aug.compute_output_shape((None, 20, 20, 3)) == ((None, 16, 16, 3),) * 2 + ((None, 6, 8, 3),) * 3
    grey = aug(rng.uniform(size=(2, 12, 12, 1)).astype(np.float32))  # any input size, 1 channel
    assert [tuple(v.shape) for v in grey] == [(2, 16, 16, 1)] * 2 + [(2, 6, 8, 1)] * 3


def test_same_seed_same_views_new_seed_new_views_and_views_differ(rng):
    x = rng.uniform(size=(6, 16, 16, 3)).astype(np.float32)
    aug = augment.MultiCropAugmentation(12, 6, num_local=4, recipe="byol")
    a, b, c = aug.views(x, [1, 2]), aug.views(x, [1, 2]), aug.views(x, [1, 3])
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
    assert not np.allclose(a[0].numpy(), c[0].numpy()) and not np.allclose(a[3].numpy(), c[3].numpy())
    assert not np.allclose(a[0].numpy(), a[1].numpy())  # the two global views differ
    assert not np.allclose(a[2].numpy(), a[3].numpy())  # and the local ones
    first = [augment.MultiCropAugmentation(12, 6, seed=7)(x)[2].numpy() for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])  # a seeded layer replays its stream
    layer = augment.MultiCropAugmentation(12, 6, seed=7)
    assert not np.allclose(layer(x)[2].numpy(), layer(x)[2].numpy())  # successive calls differ


@pytest.mark.parametrize("height, width", [(32, 32), (24, 40)])
def test_crops_respect_their_scale_and_ratio_bounds(height, width):
    n = 400
    aug = augment.MultiCropAugmentation(
        global_size=9, local_size=5, num_global=2, num_local=2, global_scale=(0.3, 1.0), local_scale=(0.05, 0.14),
        **CROP_ONLY,
    )
    views = aug.views(coordinate_images(n, height, width), [4, 5])
    for k, view in enumerate(views):
        boxes = measured_boxes(view)
        box_h, box_w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        assert boxes.min() >= -1e-6 and boxes.max() <= 1 + 1e-6
        area = box_h * box_w
        ratio = (box_w * width) / (box_h * height)  # in input pixels
        whole = np.isclose(area, 1.0, atol=1e-5)  # the fallback when no attempt fits (rare)
        low, high = (0.3, 1.0) if k < 2 else (0.05, 0.14)
        assert np.all((area[~whole] >= low - 1e-4) & (area[~whole] <= high + 1e-4)), (k, area.min(), area.max())
        assert np.all((ratio[~whole] >= 0.75 - 1e-3) & (ratio[~whole] <= 4 / 3 + 1e-3))
        assert whole.mean() < 0.05
        assert area.max() - area.min() > 0.5 * (high - low)  # spread over the range, not one size
        if k >= 2:  # local crops are placed all over the image
            centres = 0.5 * (boxes[:, 0] + boxes[:, 2])
            assert centres.min() < 0.35 and centres.max() > 0.65


def test_local_crops_see_less_of_the_image_than_global_ones():
    views = augment.MultiCropAugmentation(16, 16, num_local=2, **CROP_ONLY).views(coordinate_images(200, 32, 32), [0, 1])
    spans = [np.ptp(v.numpy()[..., 0], axis=(1, 2)).mean() for v in views]  # mean x-extent of each view
    assert min(spans[:2]) > 2 * max(spans[2:])


def test_compiles_with_xla_without_loops(rng):
    # (The colour stages compile as in TwoViewAugmentation's test; grey images keep this one quick.)
    aug = augment.MultiCropAugmentation(12, 6, num_local=2, recipe="byol", seed=0)
    concrete = tf.function(aug.views).get_concrete_function(
        tf.TensorSpec([None, 16, 16, 1], tf.float32), tf.TensorSpec([2], tf.int64)
    )
    op_types = {op.type for op in concrete.graph.get_operations()}
    assert not {"While", "StatelessWhile", "MapDefun"} & op_types
    assert sum(op.type == "StatelessRandomUniformV2" for op in concrete.graph.get_operations()) == 1
    x = rng.uniform(size=(4, 16, 16, 1)).astype(np.float32)
    views = tf.function(aug.views, jit_compile=True)(x, tf.constant([3, 4], tf.int64))
    assert [tuple(v.shape) for v in views] == [(4, 12, 12, 1)] * 2 + [(4, 6, 6, 1)] * 2
    assert all(0.0 <= float(tf.reduce_min(v)) and float(tf.reduce_max(v)) <= 1.0 for v in views)
    assert aug.supports_jit and not augment.MultiCropAugmentation(16, 8, max_degrees=10.0).supports_jit


def test_serialization_round_trip_reproduces_the_views(rng):
    aug = augment.MultiCropAugmentation(
        (10, 12), 6, num_global=3, num_local=2, global_scale=(0.4, 1.0), local_scale=(0.1, 0.3), recipe="byol",
        crop_ratio=(0.5, 2.0), blur_prob=(0.6, 0.2), max_shift=1, seed=3,
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(aug))
    assert isinstance(restored, augment.MultiCropAugmentation)
    assert restored.get_config() == aug.get_config()
    x = rng.uniform(size=(3, 14, 14, 3)).astype(np.float32)
    for a, b in zip(aug.views(x, [5, 6]), restored.views(x, [5, 6])):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_recipe_defaults_follow_each_view_size():
    # SimCLR blurs views larger than 32 px only: the 224 px global views, not the 32 px local ones.
    aug = augment.MultiCropAugmentation(224, 32)
    assert aug.global_views.blur_prob == (0.5, 0.5) and aug.local_views.blur_prob == (0.0, 0.0)
    assert aug.global_views.crop_scale == (0.14, 1.0) and aug.local_views.crop_scale == (0.05, 0.14)
    assert (aug.num_global, aug.num_local) == (2, 6)


def test_multi_crop_dataset_is_batched_reproducible_and_fresh_every_epoch(rng):
    images = rng.uniform(size=(40, 12, 12, 1)).astype(np.float32)
    aug = augment.MultiCropAugmentation(12, 6, num_local=2, global_scale=(0.5, 1.0), local_scale=(0.1, 0.4), flip=False)
    ds = augment.multi_crop_dataset(images, 16, aug, seed=0, jit_compile=False)
    epochs = [[tuple(v.numpy() for v in batch) for batch in ds] for _ in range(2)]
    assert len(epochs[0]) == 2 and [v.shape for v in epochs[0][0]] == [(16, 12, 12, 1)] * 2 + [(16, 6, 6, 1)] * 2
    again = [tuple(v.numpy() for v in b) for b in augment.multi_crop_dataset(images, 16, aug, seed=0, jit_compile=False)]
    for u, v in zip(again[1], epochs[0][1]):
        np.testing.assert_array_equal(u, v)
    assert not np.allclose(epochs[0][0][2], epochs[1][0][2])  # a new epoch reshuffles and redraws
    kept = list(augment.multi_crop_dataset(images, 16, aug, shuffle=False, drop_remainder=False, jit_compile=False))
    assert [b[0].shape[0] for b in kept] == [16, 16, 8]
    seeds = [s.numpy() for s in tf.data.Dataset.random(seed=0, rerandomize_each_iteration=True).batch(2).take(3)]
    for batch, start, s in zip(kept, (0, 16, 32), seeds):  # the views of views() for the same seeds
        np.testing.assert_array_equal(batch[3].numpy(), aug.views(images[start : start + 16], s)[3].numpy())


def test_bad_arguments_and_images_fail_clearly():
    make = augment.MultiCropAugmentation
    for kwargs, match in [
        (dict(global_size=1), "global_size"),
        (dict(local_size=(8, 8, 8)), "local_size"),
        (dict(local_size="big"), "local_size"),
        (dict(num_global=0), "num_global"),
        (dict(num_local=-1), "num_local"),
        (dict(num_local=2.5), "num_local"),
        (dict(global_scale=(0.0, 1.0)), "global_scale"),
        (dict(local_scale=(0.2, 0.1)), "local_scale"),
        (dict(recipe="dino"), "recipe"),
        (dict(jitter_prob=2.0), "jitter_prob"),
    ]:
        with pytest.raises(ValueError, match=match):
            make(**{"global_size": 16, "local_size": 8, **kwargs})
    aug = make(16, 8)
    with pytest.raises(ValueError, match="images"):
        aug(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="channels"):
        aug(np.zeros((2, 8, 8, 4), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        aug(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="MultiCropAugmentation"):
        augment.multi_crop_dataset(np.zeros((4, 8, 8, 3), np.float32), 2, lambda x: (x, x))
