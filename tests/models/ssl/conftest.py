"""Tiny encoders and data for the self-supervised model tests."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits_flat():
    """256 real digits as [256, 64] floats in [0, 1]."""
    return (load_digits().images[:256] / 16.0).astype("float32").reshape(256, 64)


def mlp_encoder(features: int = 32, seed: int = 0) -> keras.Model:
    """A 2-layer MLP on flat 64-pixel digits."""
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu", kernel_initializer=init)(inputs)
    return keras.Model(inputs, keras.layers.Dense(features, kernel_initializer=init)(h))


def bn_encoder(seed: int = 0) -> keras.Model:
    """An MLP with a synchronized BatchNorm, so the EMA covers moving statistics too."""
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(32, kernel_initializer=init)(inputs)
    h = keras.layers.BatchNormalization(synchronized=True)(h)
    return keras.Model(inputs, keras.layers.ReLU()(h))


def fixed_views(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two deterministic noisy views of x."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(scale=0.2, size=(2,) + x.shape).astype("float32")
    return x + noise[0], x + noise[1]
