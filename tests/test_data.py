"""Bundled digits and the stratified split."""

import numpy as np
import pytest

from tfcontrast import data


def test_digits_are_float_images_in_unit_range_with_a_stratified_split():
    split = data.load_digits()
    assert split.x_train.shape == (1437, 8, 8, 1) and split.x_test.shape == (360, 8, 8, 1)
    assert split.x_train.dtype == np.float32 and 0.0 == split.x_train.min() and split.x_train.max() == 1.0
    # Stratified: each class's share of the test split is within one example of 20%.
    train_counts, test_counts = np.bincount(split.y_train), np.bincount(split.y_test)
    assert np.all(np.abs(test_counts - 0.2 * (train_counts + test_counts)) <= 1)


def test_split_is_deterministic_in_the_seed():
    a, b, c = data.load_digits(seed=0), data.load_digits(seed=0), data.load_digits(seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.y_test, c.y_test)


def test_raw_pixel_cosine_nearest_neighbour_is_the_published_baseline():
    """Cosine 1-NN on raw pixels, test queries against train: 0.98 (the bar the issues quote)."""
    split = data.load_digits()
    q = split.x_test.reshape(360, -1)
    r = split.x_train.reshape(1437, -1)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    accuracy = np.mean(split.y_train[np.argmax(q @ r.T, axis=1)] == split.y_test)
    assert accuracy == pytest.approx(0.98, abs=0.005)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"labels": np.zeros(3)}, "labels"),
        ({"labels": np.array([0, 0, 0, 1])}, "single example"),
    ],
)
def test_bad_split_arguments(kwargs, match):
    args = {"x": np.zeros((4, 2)), "labels": np.array([0, 0, 1, 1]), **kwargs}
    with pytest.raises(ValueError, match=match):
        data.stratified_split(args.pop("x"), args.pop("labels"), **args)
