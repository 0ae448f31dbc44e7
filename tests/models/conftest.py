"""Shared fixtures of the model tests."""

import keras
import pytest

import tfcontrast as tfc


@pytest.fixture(scope="module")
def digits_vectors():
    """The digits split with images flattened to 64-d vectors: (x_train, y_train, x_test, y_test)."""
    split = tfc.data.load_digits()
    return split.x_train.reshape(-1, 64), split.y_train, split.x_test.reshape(-1, 64), split.y_test


@pytest.fixture
def float16_policy():
    """The global policy mixed_float16 for one test."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")
