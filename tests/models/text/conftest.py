"""Tiny text encoders and token-id corpora for the SimCSE / DeCLUTR tests."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.text import text_transformer

VOCAB, LENGTH = 64, 16


def tiny_encoder(dropout: float = 0.1, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return text_transformer(VOCAB, LENGTH, dim=16, depth=1, heads=2, dropout=dropout)


@pytest.fixture
def token_ids():
    """32 documents of 20-80 tokens; each document draws from its own 8 words, so documents differ."""
    rng = np.random.default_rng(0)
    docs = []
    for d in range(32):
        words = 2 + (d * 8 + np.arange(8)) % (VOCAB - 2)
        docs.append(rng.choice(words, size=rng.integers(20, 80)).tolist())
    return tf.ragged.constant(docs, dtype=tf.int32)


@pytest.fixture
def float16_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")
