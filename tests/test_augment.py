"""Batched geometric transforms and the reproducible nuisance."""

import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import augment


def test_integer_shift_moves_pixels_exactly_and_fills_zeros():
    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
    y = augment.shift_and_rotate(x, [[1, 2]], interpolation="nearest").numpy()[0, ..., 0]
    # content moves right by 1 and down by 2: y[r, c] = x[r - 2, c - 1]
    np.testing.assert_array_equal(y[2:, 1:], x[0, :3, :4, 0])
    assert np.all(y[:2] == 0) and np.all(y[:, 0] == 0)


def test_quarter_turn_is_counter_clockwise_on_screen():
    x = np.tile(np.arange(5, dtype=np.float32), (5, 1)).reshape(1, 5, 5, 1)  # value = column
    y = augment.shift_and_rotate(x, [[0, 0]], [np.pi / 2]).numpy()[0, ..., 0]
    # the right edge (value 4) turns to the top row, the left edge (0) to the bottom
    np.testing.assert_allclose(y[:, 2], [4, 3, 2, 1, 0], atol=1e-5)


def test_random_shift_rotate_is_one_batched_op_with_bounded_shifts():
    x = np.zeros((64, 9, 9, 1), np.float32)
    x[:, 4, 4, 0] = 1.0
    y = tf.function(lambda t: augment.random_shift_rotate(t, max_shift=2))(x).numpy()
    rows, cols = np.nonzero(y[..., 0])[1:]
    assert np.all(np.abs(rows - 4) <= 2) and np.all(np.abs(cols - 4) <= 2)
    assert len(set(zip(rows, cols))) > 10  # different shifts per image


def test_nuisance_is_reproducible_and_breaks_raw_pixel_matching():
    from tfcontrast import data

    split = data.load_digits()
    a = augment.nuisance_transform(split.x_test, seed=0)
    np.testing.assert_array_equal(a, augment.nuisance_transform(split.x_test, seed=0))
    assert not np.array_equal(a, augment.nuisance_transform(split.x_test, seed=1))
    q = a.reshape(len(a), -1)
    r = split.x_train.reshape(len(split.x_train), -1)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    accuracy = np.mean(split.y_train[np.argmax(q @ r.T, axis=1)] == split.y_test)
    assert accuracy < 0.4  # raw pixels: 0.98 clean, about 0.27 under this nuisance


def test_bad_input():
    with pytest.raises(ValueError, match="images"):
        augment.shift_and_rotate(np.zeros((5, 5)), [[0, 0]])
    with pytest.raises(ValueError, match="interpolation"):
        augment.shift_and_rotate(np.zeros((1, 5, 5, 1)), [[0, 0]], interpolation="cubic")
    with pytest.raises(ValueError, match="max_shift"):
        augment.random_shift_rotate(np.zeros((1, 5, 5, 1)), max_shift=-1)


# ------------------------------------------------------------------------------------------
# Two-view recipes: each deterministic operation against an explicit-loop NumPy reference.

import colorsys  # noqa: E402
import math  # noqa: E402

import keras  # noqa: E402


def _bilinear(img, y, x):
    """Bilinear sample of img [h, w, c] at real (y, x) inside the image."""
    h, w = img.shape[:2]
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    dy, dx = y - y0, x - x0
    top = img[y0, x0] * (1 - dx) + img[y0, x1] * dx
    bottom = img[y1, x0] * (1 - dx) + img[y1, x1] * dx
    return top * (1 - dy) + bottom * dy


def _ref_resized_crop(images, boxes, size, flips, shifts):
    out_h, out_w = size
    n, h, w, c = images.shape
    out = np.zeros((n, out_h, out_w, c))
    for b in range(n):
        y1, x1, y2, x2 = boxes[b]
        crop = np.zeros((out_h, out_w, c))
        for i in range(out_h):
            for j in range(out_w):
                y = (y1 + i * (y2 - y1) / (out_h - 1)) * (h - 1)
                x = (x1 + j * (x2 - x1) / (out_w - 1)) * (w - 1)
                crop[i, j] = _bilinear(images[b], y, x)
        if flips[b]:
            crop = crop[:, ::-1]
        dx, dy = shifts[b]
        for i in range(out_h):
            for j in range(out_w):
                if 0 <= i - dy < out_h and 0 <= j - dx < out_w:
                    out[b, i, j] = crop[i - dy, j - dx]
    return out


def test_resized_crop_matches_a_loop_reference_and_crop_and_resize(rng):
    images = rng.uniform(size=(5, 9, 7, 3)).astype(np.float32)
    y1, x1 = rng.uniform(0, 0.5, size=(2, 5))
    boxes = np.stack([y1, x1, y1 + rng.uniform(0.2, 0.5, 5), x1 + rng.uniform(0.2, 0.5, 5)], 1).astype(np.float32)
    flips = np.array([True, False, True, False, False])
    shifts = np.array([[0, 0], [1, -2], [-1, 1], [0, 0], [3, 0]])
    got = augment.resized_crop(images, boxes, (6, 8), flips, shifts).numpy()
    np.testing.assert_allclose(got, _ref_resized_crop(images, boxes, (6, 8), flips, shifts), atol=1e-5)
    plain = augment.resized_crop(images, boxes, (6, 8)).numpy()
    reference = tf.image.crop_and_resize(images, boxes, tf.range(5), (6, 8)).numpy()
    np.testing.assert_allclose(plain, reference, atol=1e-5)


def test_whole_image_box_is_the_identity_and_flip_mirrors(rng):
    images = rng.uniform(size=(3, 6, 6, 1)).astype(np.float32)
    whole = np.tile([[0.0, 0.0, 1.0, 1.0]], (3, 1)).astype(np.float32)
    np.testing.assert_allclose(augment.resized_crop(images, whole, (6, 6)).numpy(), images, atol=1e-6)
    flipped = augment.flip_left_right(images, [True, False, True]).numpy()
    np.testing.assert_array_equal(flipped[0], images[0, :, ::-1])
    np.testing.assert_array_equal(flipped[1], images[1])


def _ref_gray(pixel):
    return 0.2989 * pixel[0] + 0.5870 * pixel[1] + 0.1140 * pixel[2]


def _ref_adjust(name, image, value):
    """One colour adjustment of one image [h, w, c], explicit loops."""
    h, w, c = image.shape
    out = image.astype(np.float64).copy()
    if name == "brightness":
        out = image * value
    elif name == "contrast":
        for ch in range(c):
            mean = image[:, :, ch].mean()
            out[:, :, ch] = (image[:, :, ch] - mean) * value + mean
    elif name == "saturation" and c == 3:
        for i in range(h):
            for j in range(w):
                g = _ref_gray(image[i, j])
                out[i, j] = g + (image[i, j] - g) * value
    elif name == "hue" and c == 3:
        for i in range(h):
            for j in range(w):
                hh, ss, vv = colorsys.rgb_to_hsv(*image[i, j])
                out[i, j] = colorsys.hsv_to_rgb((hh + value) % 1.0, ss, vv)
    return np.clip(out, 0.0, 1.0)


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_adjustments_match_loop_references(rng, channels):
    images = rng.uniform(size=(4, 5, 6, channels)).astype(np.float32)
    factors = np.array([0.6, 1.0, 1.3, 0.0], np.float32)
    hues = np.array([-0.1, 0.0, 0.25, 0.5], np.float32)
    cases = {
        "brightness": (augment.adjust_brightness, factors),
        "contrast": (augment.adjust_contrast, factors),
        "saturation": (augment.adjust_saturation, factors),
        "hue": (augment.adjust_hue, hues),
    }
    for name, (fn, values) in cases.items():
        got = fn(images, values).numpy()
        want = np.stack([_ref_adjust(name, images[b], values[b]) for b in range(4)])
        np.testing.assert_allclose(got, want, atol=2e-5, err_msg=name)
        assert got.min() >= 0.0 and got.max() <= 1.0


def test_color_jitter_applies_each_images_own_order(rng):
    images = rng.uniform(size=(3, 4, 4, 3)).astype(np.float32)
    params = {
        "brightness": np.array([1.4, 0.7, 1.2], np.float32),
        "contrast": np.array([0.5, 1.3, 0.8], np.float32),
        "saturation": np.array([1.5, 0.2, 0.9], np.float32),
        "hue": np.array([0.1, -0.2, 0.05], np.float32),
    }
    order = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
    got = augment.color_jitter(images, *params.values(), order).numpy()
    names = list(params)
    for b in range(3):
        want = images[b].astype(np.float64)
        for slot in range(4):
            name = names[order[b, slot]]
            want = _ref_adjust(name, want, params[name][b])
        np.testing.assert_allclose(got[b], want, atol=5e-5)
    # the order matters: brightness then contrast is not contrast then brightness
    swapped = augment.color_jitter(images, *params.values(), order[[1, 0, 2]]).numpy()
    assert not np.allclose(swapped[0], got[0], atol=1e-3)


def test_grayscale_and_solarize_match_loop_references(rng):
    images = rng.uniform(size=(3, 4, 5, 3)).astype(np.float32)
    mask = np.array([True, False, True])
    gray = augment.to_grayscale(images, mask).numpy()
    solar = augment.solarize(images, mask).numpy()
    for b in range(3):
        for i in range(4):
            for j in range(5):
                expected = _ref_gray(images[b, i, j]) if mask[b] else None
                for c in range(3):
                    want = expected if mask[b] else images[b, i, j, c]
                    assert gray[b, i, j, c] == pytest.approx(want, abs=1e-6)
                    v = images[b, i, j, c]
                    assert solar[b, i, j, c] == pytest.approx((v if v < 0.5 else 1 - v) if mask[b] else v)
    ones = rng.uniform(size=(2, 3, 3, 1)).astype(np.float32)
    np.testing.assert_array_equal(augment.to_grayscale(ones, [True, True]).numpy(), ones)


def test_gaussian_blur_matches_a_loop_reference_with_reflected_borders(rng):
    images = rng.uniform(size=(3, 7, 6, 2)).astype(np.float32)
    sigmas = np.array([0.8, 0.0, 1.7], np.float32)
    k, r = 5, 2
    got = augment.gaussian_blur(images, sigmas, k).numpy()
    for b in range(3):
        if sigmas[b] <= 0:
            np.testing.assert_array_equal(got[b], images[b])
            continue
        g = np.array([math.exp(-(t * t) / (2 * sigmas[b] ** 2)) for t in range(-r, r + 1)])
        g /= g.sum()
        padded = np.pad(images[b], ((r, r), (r, r), (0, 0)), mode="reflect")
        want = np.zeros_like(images[b], dtype=np.float64)
        for i in range(7):
            for j in range(6):
                for c in range(2):
                    want[i, j, c] = sum(
                        g[u] * g[v] * padded[i + u, j + v, c] for u in range(k) for v in range(k)
                    )
        np.testing.assert_allclose(got[b], want, atol=1e-5)
    constant = np.full((2, 6, 6, 3), 0.3, np.float32)
    np.testing.assert_allclose(augment.gaussian_blur(constant, [1.0, 2.0], 5).numpy(), constant, atol=1e-6)


def test_blur_kernel_is_ten_percent_of_the_side():
    # SimCLR: 10% of the side, made odd; at least 3.
    assert augment.blur_kernel_size(224, 224) == 23
    assert augment.blur_kernel_size(32, 32) == 3
    assert augment.blur_kernel_size(8, 8) == 3
    assert augment.blur_kernel_size(96, 64) == 7


def test_crop_boxes_respect_scale_ratio_and_image_bounds():
    uniform = np.random.default_rng(1).uniform(size=(4000, 22))
    boxes = augment.sample_crop_boxes(uniform, (0.08, 1.0), (0.75, 4 / 3)).numpy()
    heights, widths = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0 + 1e-6
    whole = np.isclose(heights, 1.0) & np.isclose(widths, 1.0)
    area, ratio = heights * widths, widths / heights
    ok = ~whole
    assert np.all((area[ok] >= 0.08 - 1e-5) & (area[ok] <= 1.0 + 1e-5))
    assert np.all((ratio[ok] >= 0.75 - 1e-4) & (ratio[ok] <= 4 / 3 + 1e-4))
    assert 0.45 < area.mean() < 0.6  # E[area] = 0.54 before the rare fallback to the whole image
    # Two attempts: (area 1, ratio 2) has width sqrt(2) > 1 and is rejected; (area 0.25, ratio 1) is kept.
    uniform = [[1.0, 0.0, 1.0, 0.5, 0.0, 0.0]]  # areas, log-ratio positions, offsets
    np.testing.assert_allclose(
        augment.sample_crop_boxes(uniform, (0.25, 1.0), (0.5, 2.0)).numpy(), [[0.0, 0.0, 0.5, 0.5]], atol=1e-6
    )
    never_fits = augment.sample_crop_boxes(np.zeros((5, 22)), (1.0, 1.0), (2.0, 2.0)).numpy()
    np.testing.assert_allclose(never_fits, np.tile([0.0, 0.0, 1.0, 1.0], (5, 1)))


# ------------------------------------------------------------------ the TwoViewAugmentation layer

QUIET = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False, jitter_prob=0.0,
             grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0)


@pytest.mark.parametrize(
    "recipe,size,channels", [("simclr", (32, 32), 3), ("byol", (32, 32), 3), ("simclr", (8, 8), 1)]
)
def test_views_keep_shape_dtype_and_range(recipe, size, channels, rng):
    aug = augment.TwoViewAugmentation(recipe, size, seed=1)
    for dtype in ("float32", "float16"):
        x = rng.uniform(size=(16, *size, channels)).astype(dtype)
        v1, v2 = aug(x)
        for v in (v1, v2):
            assert v.shape == x.shape and v.dtype == dtype
            assert float(tf.reduce_min(v)) >= 0.0 and float(tf.reduce_max(v)) <= 1.0
        assert not np.allclose(v1.numpy(), v2.numpy())


def test_all_quiet_settings_give_the_images_back(rng):
    x = rng.uniform(size=(4, 8, 8, 3)).astype(np.float32)
    v1, v2 = augment.TwoViewAugmentation("byol", (8, 8), **QUIET)(x)
    np.testing.assert_allclose(v1.numpy(), x, atol=1e-6)
    np.testing.assert_allclose(v2.numpy(), x, atol=1e-6)


def test_recipe_defaults_follow_the_papers():
    simclr = augment.TwoViewAugmentation("simclr", (32, 32))
    byol = augment.TwoViewAugmentation("byol", (224, 224))
    assert simclr.jitter_strength == (0.4, 0.4, 0.4, 0.1) and simclr.blur_prob == (0.0, 0.0)
    assert augment.TwoViewAugmentation("simclr", (96, 96)).blur_prob == (0.5, 0.5)
    assert byol.jitter_strength == (0.4, 0.4, 0.2, 0.1)
    assert byol.blur_prob == (1.0, 0.1) and byol.solarize_prob == (0.0, 0.2) and byol.blur_kernel_size == 23
    assert augment.TwoViewAugmentation("simclr", (32, 32), jitter_strength=2.0).jitter_strength == (0.8, 0.8, 0.8, 0.2)


def test_same_seed_same_views_and_new_seed_new_views(rng):
    x = rng.uniform(size=(8, 16, 16, 3)).astype(np.float32)
    aug = augment.TwoViewAugmentation("byol", (16, 16))
    a = aug.views(x, [3, 4])
    b = aug.views(x, [3, 4])
    c = aug.views(x, [3, 5])
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    assert not np.allclose(a[0].numpy(), c[0].numpy())
    # a seeded layer replays its stream; successive calls differ
    first = [augment.TwoViewAugmentation("byol", (16, 16), seed=7)(x)[0].numpy() for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    layer = augment.TwoViewAugmentation("byol", (16, 16), seed=7)
    assert not np.allclose(layer(x)[0].numpy(), layer(x)[0].numpy())


def _fraction(mask) -> float:
    return float(np.mean(mask))


def test_probabilities_are_respected_per_view(rng):
    n = 4000  # binomial sd <= 0.008: tolerances are >= 4 sd
    colourful = rng.uniform(size=(n, 6, 6, 3)).astype(np.float32)
    v1, v2 = augment.TwoViewAugmentation("simclr", (6, 6), **{**QUIET, "grayscale_prob": 0.2})(colourful)
    gray = lambda v: np.all(np.ptp(v.numpy(), axis=-1) < 1e-6, axis=(1, 2))  # noqa: E731
    assert abs(_fraction(gray(v1)) - 0.2) < 0.035 and abs(_fraction(gray(v2)) - 0.2) < 0.035

    flat = np.full((n, 6, 6, 3), 0.75, np.float32)
    v1, v2 = augment.TwoViewAugmentation("byol", (6, 6), **{**QUIET, "solarize_prob": (0.0, 0.2)})(flat)
    assert _fraction(np.isclose(v1.numpy()[:, 0, 0, 0], 0.25)) == 0.0
    assert abs(_fraction(np.isclose(v2.numpy()[:, 0, 0, 0], 0.25)) - 0.2) < 0.035

    settings = {**QUIET, "blur_prob": (1.0, 0.1), "blur_sigma": (1.0, 2.0)}
    v1, v2 = augment.TwoViewAugmentation("byol", (6, 6), **settings)(colourful)
    blurred = lambda v: np.any(np.abs(v.numpy() - colourful) > 1e-3, axis=(1, 2, 3))  # noqa: E731
    assert _fraction(blurred(v1)) == 1.0 and abs(_fraction(blurred(v2)) - 0.1) < 0.035

    settings = {**QUIET, "jitter_prob": 0.8, "jitter_strength": (0.4, 0.0, 0.0, 0.0)}
    v1, _ = augment.TwoViewAugmentation("byol", (6, 6), **settings)(np.full((n, 6, 6, 1), 0.5, np.float32))
    assert abs(_fraction(~np.isclose(v1.numpy()[:, 0, 0, 0], 0.5)) - 0.8) < 0.035

    ramp = np.tile(np.arange(6, dtype=np.float32) / 5, (n, 6, 1))[..., None]
    v1, _ = augment.TwoViewAugmentation("byol", (6, 6), **{**QUIET, "flip": True})(ramp)
    assert abs(_fraction(v1.numpy()[:, 0, 0, 0] > 0.5) - 0.5) < 0.035


def test_small_geometric_jitter_shifts_within_bounds(rng):
    x = np.zeros((200, 9, 9, 1), np.float32)
    x[:, 4, 4] = 1.0
    v1, _ = augment.TwoViewAugmentation("simclr", (9, 9), **{**QUIET, "max_shift": 2})(x)
    rows, cols = np.nonzero(v1.numpy()[..., 0] > 0.5)[1:]
    assert np.all(np.abs(rows - 4) <= 2) and np.all(np.abs(cols - 4) <= 2) and len(set(zip(rows, cols))) > 10
    rotating = augment.TwoViewAugmentation("simclr", (9, 9), **{**QUIET, "max_degrees": 20.0})
    assert not rotating.supports_jit and augment.TwoViewAugmentation("simclr", (9, 9)).supports_jit
    assert rotating(x)[0].shape == x.shape


def _op_types(concrete) -> set:
    types = {op.type for op in concrete.graph.get_operations()}
    for function in concrete.graph.as_graph_def().library.function:
        types |= {node.op for node in function.node_def}
    return types


def test_one_batched_graph_without_loops_that_compiles_with_xla(rng):
    aug = augment.TwoViewAugmentation("byol", (32, 32), seed=0)
    concrete = tf.function(aug).get_concrete_function(tf.TensorSpec([None, 32, 32, 3], tf.float32))
    types = _op_types(concrete)
    loops = {"While", "StatelessWhile", "For", "MapDefun", "TensorListReserve"} & types
    assert not loops, loops
    assert {"Einsum", "RGBToHSV"} <= types  # the batched crop and blur, the hue rotation
    x = rng.uniform(size=(8, 32, 32, 3)).astype(np.float32)
    params = aug.sample_params(8, 3, [1, 2], index=0)  # every step on: blur, jitter, grayscale, flip
    assert {"boxes", "flips", "order", "grayscale", "sigmas"} <= set(params)
    # One XLA compilation: the deterministic ops on fixed parameters, and a full random call
    # (sampling compiles too, drawing from XLA's own Philox stream).
    compiled, (v1, v2) = tf.function(lambda t, p: (aug.apply_params(t, p), aug(t)), jit_compile=True)(x, params)
    np.testing.assert_allclose(compiled.numpy(), aug.apply_params(x, params).numpy(), atol=1e-4)
    assert v1.shape == x.shape and 0.0 <= float(tf.reduce_min(v2)) and float(tf.reduce_max(v2)) <= 1.0


def test_replicas_draw_different_views(two_replicas, rng):
    with two_replicas.scope():
        aug = augment.TwoViewAugmentation("byol", (8, 8), seed=0)
    x = tf.constant(rng.uniform(size=(4, 8, 8, 3)).astype(np.float32))
    views = tf.function(lambda: two_replicas.run(lambda: aug(x)[0]))()
    a, b = two_replicas.experimental_local_results(views)
    assert not np.allclose(a.numpy(), b.numpy())


def test_serialization_round_trip_reproduces_the_views(rng):
    aug = augment.TwoViewAugmentation("byol", (8, 8), crop_scale=(0.3, 0.9), blur_prob=0.4, max_shift=1, seed=3)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(aug))
    assert isinstance(restored, augment.TwoViewAugmentation)
    assert restored.get_config() == aug.get_config()
    x = rng.uniform(size=(4, 8, 8, 3)).astype(np.float32)
    for a, b in zip(aug.views(x, [5, 6]), restored.views(x, [5, 6])):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_bad_arguments_and_images_fail_clearly():
    make = augment.TwoViewAugmentation
    for kwargs, match in [
        (dict(recipe="moco"), "recipe"),
        (dict(crop_scale=(0.0, 1.0)), "crop_scale"),
        (dict(crop_scale=(0.5, 1.2)), "crop_scale"),
        (dict(crop_scale=(0.9, 0.5)), "crop_scale"),
        (dict(crop_ratio=(0.0, 1.0)), "crop_ratio"),
        (dict(jitter_prob=1.5), "jitter_prob"),
        (dict(grayscale_prob=-0.1), "grayscale_prob"),
        (dict(blur_prob=(0.5, 2.0)), "blur_prob"),
        (dict(solarize_prob=(0.1, 0.2, 0.3)), "solarize_prob"),
        (dict(jitter_strength=-1.0), "jitter_strength"),
        (dict(jitter_strength=(0.4, 0.4, 0.4, 0.7)), "hue"),
        (dict(image_size=(8,)), "image_size"),
        (dict(max_shift=-1), "max_shift"),
        (dict(max_degrees=-5.0), "max_degrees"),
    ]:
        with pytest.raises(ValueError, match=match):
            make(**kwargs)
    aug = make("simclr", (8, 8))
    with pytest.raises(ValueError, match="images"):
        aug(np.zeros((8, 8, 3), np.float32))  # no batch axis
    with pytest.raises(ValueError, match="image_size"):
        aug(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="channels"):
        aug(np.zeros((2, 8, 8, 4), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        aug(np.zeros((2, 8, 8, 3), np.uint8))


# ------------------------------------------------------------------ two_view_dataset and training


def test_two_view_dataset_is_batched_reproducible_and_fresh_every_epoch(rng):
    images = rng.uniform(size=(70, 8, 8, 1)).astype(np.float32)
    aug = augment.TwoViewAugmentation("simclr", (8, 8), crop_scale=(0.5, 1.0), flip=False)
    ds = augment.two_view_dataset(images, 32, aug, seed=0, jit_compile=False)
    epochs = [[tuple(v.numpy() for v in batch) for batch in ds] for _ in range(2)]
    assert len(epochs[0]) == 2 and epochs[0][0][0].shape == (32, 8, 8, 1)  # 70 // 32, remainder dropped
    again = [tuple(v.numpy() for v in b) for b in augment.two_view_dataset(images, 32, aug, seed=0, jit_compile=False)]
    np.testing.assert_array_equal(again[0][0], epochs[0][0][0])
    np.testing.assert_array_equal(again[1][1], epochs[0][1][1])
    assert not np.allclose(epochs[0][0][0], epochs[1][0][0])  # a new epoch reshuffles and redraws
    kept = list(augment.two_view_dataset(images, 32, aug, shuffle=False, drop_remainder=False, jit_compile=False))
    assert [b[0].shape[0] for b in kept] == [32, 32, 6]
    # the plain-graph pipeline draws the views that views() gives eagerly for the same seeds
    seeds = [s.numpy() for s in tf.data.Dataset.random(seed=0, rerandomize_each_iteration=True).batch(2).take(3)]
    for batch, start, s in zip(kept, (0, 32, 64), seeds):
        np.testing.assert_array_equal(batch[1].numpy(), aug.views(images[start : start + 32], s)[1].numpy())
    repeated = augment.two_view_dataset(images, 32, aug, repeat=True)  # XLA-compiled views (the default)
    xla_views = list(repeated.take(5))
    assert len(xla_views) == 5 and all(v.shape == (32, 8, 8, 1) for pair in xla_views for v in pair)
    values = np.concatenate([v.numpy().ravel() for v in xla_views[0]])
    assert 0.0 <= values.min() and values.max() <= 1.0
    # any callable images -> (view_1, view_2) is mapped after batching; a dataset of images works too
    double = lambda x: (x, 1.0 - x)  # noqa: E731
    mapped = augment.two_view_dataset(tf.data.Dataset.from_tensor_slices(images), 35, double, shuffle=False)
    a, b = next(iter(mapped))
    np.testing.assert_allclose(a.numpy(), images[:35])
    np.testing.assert_allclose(b.numpy(), 1.0 - images[:35])
    with pytest.raises(ValueError, match="batch_size"):
        augment.two_view_dataset(images, 0, aug)
    with pytest.raises(ValueError, match="images"):
        augment.two_view_dataset(images[0], 8, aug)


def test_models_train_on_the_pipeline_and_with_in_step_augmentation():
    from tfcontrast import data
    from tfcontrast.models import SimCLR
    from tfcontrast.models.encoders import mlp_encoder

    keras.utils.set_random_seed(0)
    x = data.load_digits().x_train[:128]
    aug = augment.TwoViewAugmentation("simclr", (8, 8), crop_scale=(0.5, 1.0), flip=False, seed=0)
    model = SimCLR(mlp_encoder((8, 8, 1), widths=(32, 16)), projection_dim=8, augment=aug)
    # (XLA compiles the augmentation: see the test above; compiling a whole SSL step takes ~10 s here.)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    in_step = model.fit(x, batch_size=64, epochs=1, verbose=0).history["loss"]
    pipeline = augment.two_view_dataset(x, 64, aug, jit_compile=False)
    piped = model.fit(pipeline, epochs=1, shuffle=False, verbose=0).history["loss"]
    assert np.isfinite(in_step + piped).all()
    restored = SimCLR.from_config(model.get_config())
    assert restored.augment.get_config() == aug.get_config()
