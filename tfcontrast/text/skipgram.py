"""word2vec skip-gram with negative sampling (Mikolov et al., NeurIPS 2013).

Mikolov, Sutskever, Chen, Corrado and Dean, "Distributed Representations of
Words and Phrases and their Compositionality", NeurIPS 2013. Each word w_I
predicts the words around it: an observed (w_I, w_O) pair should score high,
``k`` noise words drawn from the unigram distribution to the power 3/4 low
(:class:`tfcontrast.losses.NegativeSamplingLoss`). Scores are dot products of
an input vector v (the word vectors kept after training) and an output vector
v'.

As in the reference implementation:

* pairs (:func:`skipgram_pairs`): frequent words are sub-sampled (a token of
  frequency f is discarded with probability ``1 - sqrt(t / f)``), then each
  remaining word is paired with the words within a window of size b drawn
  uniformly from ``1..window`` (closer words are used more often); words out
  of the vocabulary are removed before windowing;
* noise words are drawn from a table in which word w fills a share
  ``f(w)^0.75 / sum_u f(u)^0.75`` of the slots (a uniform slot index is one
  draw: O(1) per noise word, compiled by XLA);
* input vectors start uniform in ``[-0.5/dim, 0.5/dim]``, output vectors at 0.

:meth:`SkipGram.most_similar` answers nearest words by cosine through
:class:`tfcontrast.index.Index`.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.losses.negative_sampling import negative_sampling_loss
from tfcontrast.models.distributed_fit import DistributedFitMixin, multiworker_safe_logs
from tfcontrast.text.vectorizer import OOV_ID, token_counts

NOISE_POWER = 0.75
FIRST_WORD_ID = OOV_ID + 1  # ids below are padding and out-of-vocabulary


def noise_table(counts: np.ndarray, size: int, power: float = NOISE_POWER) -> np.ndarray:
    """int32 ``[size]`` word ids; id w fills a share ``counts[w]^power / sum counts^power`` of the slots.

    Slot j holds the word whose cumulative share first exceeds ``(j + 0.5) / size``,
    so every word's share is met to within one slot.

    Raises:
        ValueError: negative counts or no positive count.
    """
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or np.any(counts < 0) or not np.any(counts > 0):
        raise ValueError("`counts` must be non-negative word counts with at least one positive entry.")
    weights = counts**power
    cumulative = np.cumsum(weights / weights.sum())
    slots = (np.arange(size, dtype=np.float64) + 0.5) / size
    return np.minimum(np.searchsorted(cumulative, slots, side="right"), len(counts) - 1).astype(np.int32)


def skipgram_pairs(
    token_ids: tf.RaggedTensor | Sequence[Sequence[int]],
    window: int = 5,
    subsample: float = 1e-4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One pass of (word, context) id pairs over the documents, as word2vec draws them.

    Args:
        token_ids: ``[documents, (tokens)]`` ids (:func:`tfcontrast.text.tokenize`).
        window: the largest distance between a word and its context.
        subsample: t of the sub-sampling formula (0 keeps every token).
        seed: the draw of sub-sampling and window sizes.

    Returns:
        ``(words int32 [pairs], contexts int32 [pairs])``; both words of a
        pair come from the same document, at most ``window`` kept tokens apart.
    """
    window = validation.check_int(window, "window", 1)
    if not isinstance(subsample, (int, float)) or isinstance(subsample, bool) or subsample < 0:
        raise ValueError(f"`subsample` must be a number >= 0, got {subsample!r}.")
    flat, doc = _flatten(token_ids)
    rng = np.random.default_rng(int(seed))
    keep = flat >= FIRST_WORD_ID
    if subsample > 0 and keep.any():
        counts = np.bincount(flat[keep])
        frequency = counts[flat] / keep.sum()
        keep &= rng.random(len(flat)) < np.sqrt(subsample / np.maximum(frequency, 1e-300))
    flat, doc = flat[keep], doc[keep]
    reach = rng.integers(1, window + 1, size=len(flat))
    words, contexts = [], []
    for offset in range(1, window + 1):
        same_doc = doc[offset:] == doc[:-offset]
        left, right = np.arange(len(flat) - offset), np.arange(offset, len(flat))
        forward = same_doc & (reach[left] >= offset)  # left word, right context
        backward = same_doc & (reach[right] >= offset)  # right word, left context
        words += [flat[left[forward]], flat[right[backward]]]
        contexts += [flat[right[forward]], flat[left[backward]]]
    return np.concatenate(words).astype(np.int32), np.concatenate(contexts).astype(np.int32)


def skipgram_dataset(
    token_ids,
    batch_size: int = 1024,
    window: int = 5,
    subsample: float = 1e-4,
    epochs: int = 1,
    seed: int = 0,
) -> tf.data.Dataset:
    """``(words, contexts)`` batches over ``epochs`` passes, each pass drawn and shuffled with its own seed."""
    batch_size, epochs = validation.check_int(batch_size, "batch_size", 1), validation.check_int(epochs, "epochs", 1)
    passes = [skipgram_pairs(token_ids, window, subsample, seed * 1000 + e) for e in range(epochs)]
    rng = np.random.default_rng(int(seed))
    words, contexts = [], []
    for w, c in passes:
        order = rng.permutation(len(w))
        words.append(w[order])
        contexts.append(c[order])
    pairs = (np.concatenate(words), np.concatenate(contexts))
    if len(pairs[0]) == 0:
        raise ValueError("`token_ids` gives no (word, context) pair: documents too short or all out of vocabulary.")
    return tf.data.Dataset.from_tensor_slices(pairs).batch(batch_size).prefetch(tf.data.AUTOTUNE)


@keras.saving.register_keras_serializable(package="tfcontrast")
class SkipGram(DistributedFitMixin, keras.Model):
    """word2vec skip-gram with negative sampling, trained with ``model.fit`` on (word, context) pairs.

    Args:
        vocab_size: word ids are ``0 .. vocab_size - 1`` (0 padding, 1 out of
            vocabulary: neither is ever drawn as a noise word).
        dim: vector size.
        window: the context window of :meth:`dataset` (kept for the config).
        num_negatives: k noise words per pair (paper: 5-20 for small data).
        vocabulary: the words of the ids (``vectorizer.get_vocabulary()``), for :meth:`most_similar`.
        noise_table_size: slots of the noise table (its resolution is 1 / size).

    Call :meth:`adapt` on the training token ids before ``fit``: it sets the
    noise distribution from their unigram counts.

    Example:
        >>> texts = ["the matrix has eigenvalues", "the sparse matrix is stored"] * 20
        >>> vectorizer = tfc.text.build_vectorizer(texts, vocab_size=50)    # doctest: +SKIP
        >>> ids = tfc.text.tokenize(vectorizer, texts)                         # doctest: +SKIP
        >>> model = SkipGram(50, dim=16, window=2, num_negatives=3, vocabulary=vectorizer.get_vocabulary())  # doctest: +SKIP
        >>> model.adapt(ids); model.compile(optimizer="adam")                  # doctest: +SKIP
        >>> model.fit(model.dataset(ids, batch_size=64), epochs=2)             # doctest: +SKIP
        >>> model.most_similar("matrix", k=3)                                  # doctest: +SKIP
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 128,
        window: int = 5,
        num_negatives: int = 5,
        vocabulary: Sequence[str] | None = None,
        noise_table_size: int = 1_000_000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = validation.check_int(vocab_size, "vocab_size", FIRST_WORD_ID + 1)
        self.dim = validation.check_int(dim, "dim", 1)
        self.window = validation.check_int(window, "window", 1)
        self.num_negatives = validation.check_int(num_negatives, "num_negatives", 1)
        self.noise_table_size = validation.check_int(noise_table_size, "noise_table_size", 1)
        self.vocabulary = None if vocabulary is None else [str(w) for w in vocabulary]
        if self.vocabulary is not None and len(self.vocabulary) != self.vocab_size:
            raise ValueError(f"`vocabulary` has {len(self.vocabulary)} words but `vocab_size` is {self.vocab_size}.")
        bound = 0.5 / self.dim
        self.word_embedding = keras.layers.Embedding(
            self.vocab_size, self.dim, embeddings_initializer=keras.initializers.RandomUniform(-bound, bound), name="words"
        )
        self.context_embedding = keras.layers.Embedding(
            self.vocab_size, self.dim, embeddings_initializer="zeros", name="contexts"
        )
        self.word_embedding.build((None,))
        self.context_embedding.build((None,))
        uniform = noise_table(np.r_[0, 0, np.ones(self.vocab_size - FIRST_WORD_ID)], self.noise_table_size)
        self.noise = self.add_weight(
            shape=(self.noise_table_size,), dtype="int32", trainable=False, name="noise_table",
            initializer=keras.initializers.Constant(uniform),
        )
        self.seed_generator = keras.random.SeedGenerator(0)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    def adapt(self, token_ids) -> None:
        """Sets the noise distribution to the unigram^0.75 counts of ``token_ids`` (padding and OOV excluded)."""
        counts = token_counts(token_ids, self.vocab_size).astype(np.float64)
        counts[:FIRST_WORD_ID] = 0
        self.noise.assign(noise_table(counts, self.noise_table_size))

    def dataset(self, token_ids, batch_size: int = 1024, subsample: float = 1e-4, epochs: int = 1, seed: int = 0):
        """:func:`skipgram_dataset` with this model's window."""
        return skipgram_dataset(token_ids, batch_size, self.window, subsample, epochs, seed)

    def call(self, word_ids):
        """The word vectors of ``word_ids``."""
        return self.word_embedding(word_ids)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def batch_loss(self, data) -> tf.Tensor:
        words, contexts, _ = keras.utils.unpack_x_y_sample_weight(data)
        if contexts is None:
            words, contexts = words
        v = self.word_embedding(words)
        slots = keras.random.randint(
            (tf.shape(words)[0], self.num_negatives), 0, self.noise_table_size, seed=self.seed_generator
        )
        negatives = self.context_embedding(tf.gather(self.noise, slots))
        positive_logits = tf.reduce_sum(v * self.context_embedding(contexts), axis=-1)
        negative_logits = tf.einsum("bd,bkd->bk", v, negatives)
        return negative_sampling_loss(positive_logits, negative_logits)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss = self.batch_loss(data)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(distribute.unscale_share(loss))
        return multiworker_safe_logs({"loss": self.loss_tracker.result()})

    def test_step(self, data):
        self.loss_tracker.update_state(distribute.unscale_share(self.batch_loss(data)))
        return multiworker_safe_logs({"loss": self.loss_tracker.result()})

    def word_vectors(self) -> np.ndarray:
        """float32 ``[vocab_size, dim]``: the input vectors, row = word id."""
        return np.asarray(keras.ops.convert_to_numpy(self.word_embedding.embeddings), np.float32)

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` words closest to ``word`` by cosine, ``[(word, cosine), ...]``, best first.

        Padding, the OOV token and ``word`` itself are never returned.

        Raises:
            ValueError: no ``vocabulary`` was given, or ``word`` is not in it.
        """
        from tfcontrast.index import Index

        if self.vocabulary is None:
            raise ValueError("most_similar needs the `vocabulary` passed to SkipGram(...).")
        if word not in self.vocabulary:
            raise ValueError(f"`word` {word!r} is not in the vocabulary.")
        k = validation.check_int(k, "k", 1)
        vectors = self.word_vectors()
        index = Index(metric="cosine")
        index.add(vectors[FIRST_WORD_ID:], ids=np.arange(FIRST_WORD_ID, self.vocab_size))
        query = self.vocabulary.index(word)
        result = index.search(vectors[query : query + 1], k=min(k + 1, len(index)))
        pairs = [
            (self.vocabulary[i], 1.0 - float(d))
            for i, d in zip(result.ids[0], result.distances[0])
            if i >= 0 and i != query
        ]
        return pairs[:k]

    def mean_vectors(self, token_ids: tf.RaggedTensor) -> np.ndarray:
        """float32 ``[documents, dim]``: the mean word vector of each document's in-vocabulary tokens (0 if none)."""
        vectors = self.word_vectors()
        flat, doc = _flatten(token_ids)
        keep = flat >= FIRST_WORD_ID
        sums = np.zeros((_num_rows(token_ids), self.dim), np.float64)
        np.add.at(sums, doc[keep], vectors[flat[keep]])
        counts = np.bincount(doc[keep], minlength=len(sums))[:, None]
        return (sums / np.maximum(counts, 1)).astype(np.float32)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "dim": self.dim,
            "window": self.window,
            "num_negatives": self.num_negatives,
            "vocabulary": self.vocabulary,
            "noise_table_size": self.noise_table_size,
        }


def _num_rows(token_ids) -> int:
    return int(token_ids.nrows()) if isinstance(token_ids, tf.RaggedTensor) else len(token_ids)


def _flatten(token_ids) -> tuple[np.ndarray, np.ndarray]:
    """``(flat ids int64, document index int64)`` of ragged ids or a list of id lists."""
    if isinstance(token_ids, tf.RaggedTensor):
        flat = np.asarray(token_ids.flat_values, np.int64)
        lengths = np.asarray(token_ids.row_lengths(), np.int64)
    else:
        rows = [np.asarray(r, np.int64).reshape(-1) for r in token_ids]
        flat = np.concatenate(rows) if rows else np.zeros([0], np.int64)
        lengths = np.array([len(r) for r in rows], np.int64)
    return flat, np.repeat(np.arange(len(lengths)), lengths)
