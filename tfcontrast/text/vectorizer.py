"""Tokenisation inside the model: a ``keras.layers.TextVectorization`` adapted on the training texts.

The same layer serves three places, so a model never sees a token the
tokeniser of another place would have produced differently:

* training streams tokenise each document once, to variable-length token ids
  (:func:`tokenize`), and sample spans from them in ``tf.data``, so the
  compiled train step sees only integer ids (string ops do not run under XLA);
* the end-to-end model :func:`string_encoder` (``tf.string`` -> embeddings)
  holds the layer, so a ``.keras`` file and a SavedModel carry the
  vocabulary and take raw text;
* evaluation embeds strings through that model (:func:`embedder`).

Token ids: 0 is padding, 1 the out-of-vocabulary token, then words by
decreasing training frequency. Standardisation is :func:`standardize_words`:
lower-case (Unicode), every run of characters that are not letters or digits
becomes a space, so ``"numpy.linalg.eigh"`` gives ``numpy linalg eigh`` and
``n_components`` gives ``n components``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import validation

PADDING_ID = 0
OOV_ID = 1


@keras.saving.register_keras_serializable(package="tfcontrast")
def standardize_words(texts: tf.Tensor) -> tf.Tensor:
    """Lower-cases ``texts`` and turns every run of non-letters / non-digits into one space."""
    texts = tf.strings.lower(texts, encoding="utf-8")
    return tf.strings.regex_replace(texts, r"[^\p{L}\p{N}]+", " ")


def build_vectorizer(
    texts: Sequence[str],
    vocab_size: int = 20000,
    sequence_length: int = 128,
    standardize: str | Callable = standardize_words,
) -> keras.layers.TextVectorization:
    """A ``TextVectorization`` (int output, padded / truncated to ``sequence_length``) adapted on ``texts``.

    Args:
        texts: the training texts (never the held-out ones).
        vocab_size: the most frequent words kept, padding and OOV included.
        sequence_length: token ids per text; longer texts are cut, shorter padded with 0.
        standardize: the layer's ``standardize`` (a registered function to keep
            ``.keras`` files loadable).

    Raises:
        ValueError: no text, non-string texts or a size < 3.

    Example:
        >>> v = build_vectorizer(["the cat sat", "the dog"], vocab_size=10, sequence_length=4)
        >>> v(["the cat"]).numpy().tolist()
        [[2, 3, 0, 0]]
    """
    texts = _check_texts(texts, "texts")
    vocab_size = validation.check_int(vocab_size, "vocab_size", 3)
    sequence_length = validation.check_int(sequence_length, "sequence_length", 1)
    layer = keras.layers.TextVectorization(
        max_tokens=vocab_size,
        standardize=standardize,
        output_mode="int",
        output_sequence_length=sequence_length,
        name="text_vectorization",
    )
    layer.adapt(tf.constant(texts))
    return layer


def tokenize(vectorizer: keras.layers.TextVectorization, texts: Sequence[str]) -> tf.RaggedTensor:
    """Every token id of every text (no truncation): an int32 ``RaggedTensor`` ``[n, (length)]``.

    Uses ``vectorizer``'s vocabulary, standardisation and split, without its
    ``sequence_length``: the training streams cut spans from whole documents.
    """
    texts = _check_texts(texts, "texts")
    config = vectorizer.get_config()
    ragged = keras.layers.TextVectorization(
        standardize=config["standardize"],  # the callable itself (get_config does not serialise it)
        split=config["split"],
        vocabulary=vectorizer.get_vocabulary(),
        output_mode="int",
        ragged=True,
        encoding=config["encoding"],
    )
    ids = [ragged(tf.constant(texts[i : i + 1024])) for i in range(0, len(texts), 1024)]
    return tf.cast(tf.concat(ids, axis=0), tf.int32)


def token_counts(token_ids: tf.RaggedTensor, vocab_size: int) -> np.ndarray:
    """How often each id occurs in ``token_ids``: int64 ``[vocab_size]``."""
    flat = np.asarray(token_ids.flat_values, np.int64)
    return np.bincount(flat, minlength=int(vocab_size)).astype(np.int64)[: int(vocab_size)]


def string_encoder(
    vectorizer: keras.layers.TextVectorization, encoder: keras.Model, name: str = "string_encoder"
) -> keras.Model:
    """The end-to-end model ``tf.string [batch] -> [batch, dim]``: vectorizer then encoder.

    It saves to ``.keras`` with the vocabulary, and exports (e.g.
    :func:`tfcontrast.text.export_text_model`) as a SavedModel that takes raw
    strings. ``encoder`` is shared, not copied.
    """
    inputs = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(inputs, encoder(vectorizer(inputs)), name=name)


def embedder(
    model: keras.Model, batch_size: int = 256
) -> Callable[[Sequence[str]], np.ndarray]:
    """``texts -> float32 [n, dim]`` through a string model (:func:`string_encoder`), in batches."""

    predict = tf.function(
        lambda batch: tf.cast(model(batch, training=False), tf.float32),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )

    def embed(texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts, "texts")
        parts = [predict(tf.constant(texts[i : i + batch_size])).numpy() for i in range(0, len(texts), batch_size)]
        return np.concatenate(parts, axis=0)

    return embed


def _check_texts(texts, name: str) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"`{name}` must be a sequence of strings, got a single string.")
    texts = list(texts)
    if not texts:
        raise ValueError(f"`{name}` is empty.")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"`{name}` must hold strings, entry {i} is {type(text).__name__}.")
    return texts

