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
