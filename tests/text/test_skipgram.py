import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import text
from tfcontrast.text.skipgram import noise_table


def topic_corpus(docs=120, length=30, seed=0):
    """Two topics with disjoint words; documents mix 'the' (frequent) with one topic's words."""
    rng = np.random.default_rng(seed)
    topics = [["matrix", "eigen", "vector", "linalg", "solve"], ["image", "pixel", "filter", "blur", "edge"]]
    texts = []
    for i in range(docs):
        words = topics[i % 2]
        texts.append(" ".join(rng.choice(words + ["the"] * 3, size=length)))
    return texts


def test_noise_table_follows_the_unigram_distribution_to_the_three_quarters():
    counts = np.array([0, 0, 1000, 100, 10, 1], np.float64)
    table = noise_table(counts, 100_000)
    share = np.bincount(table, minlength=6) / len(table)
    want = counts**0.75 / np.sum(counts**0.75)
    np.testing.assert_allclose(share, want, atol=1.0 / len(table))
    assert share[0] == 0 and share[1] == 0
    with pytest.raises(ValueError, match="counts"):
        noise_table(np.zeros(4), 10)


def test_pairs_with_window_one_are_exactly_the_neighbours_and_skip_oov():
    # ids: 1 is OOV and is removed before windowing, so 3 and 4 become neighbours.
    ids = tf.ragged.constant([[2, 3, 1, 4], [5, 6]], dtype=tf.int32)
    words, contexts = text.skipgram_pairs(ids, window=1, subsample=0.0)
    got = sorted(zip(words.tolist(), contexts.tolist()))
    want = sorted([(2, 3), (3, 2), (3, 4), (4, 3), (5, 6), (6, 5)])
    assert got == want  # never across documents, never the OOV id


def test_pairs_stay_within_the_window_in_one_document():
    rng = np.random.default_rng(0)
    docs = [list(rng.integers(2, 50, size=n)) for n in (30, 5, 60)]
    # give every token a unique id so a pair identifies its positions
    offset, unique = 0, []
    for d in docs:
        unique.append(list(range(offset + 2, offset + 2 + len(d))))
        offset += len(d)
    words, contexts = text.skipgram_pairs(tf.ragged.constant(unique, dtype=tf.int32), window=4, subsample=0.0, seed=3)
    doc_of = {t: i for i, d in enumerate(unique) for t in d}
    assert all(doc_of[w] == doc_of[c] and 1 <= abs(w - c) <= 4 for w, c in zip(words, contexts))
    # dynamic windows: the distance-1 pairs are all there, farther ones only sometimes
    distances = np.abs(words - contexts)
    assert np.sum(distances == 1) == 2 * sum(len(d) - 1 for d in unique)
    assert 0 < np.sum(distances == 4) < 2 * sum(len(d) - 4 for d in unique if len(d) > 4)


def test_subsampling_drops_frequent_words_more():
    ids = tf.ragged.constant([[2] * 900 + list(range(3, 103))], dtype=tf.int32)
    words, _ = text.skipgram_pairs(ids, window=1, subsample=1e-3, seed=0)
    frequent_share = np.mean(words == 2)
    assert frequent_share < 0.5  # 90% of the tokens, far fewer of the pairs


def test_training_puts_words_of_a_topic_together(tmp_path):
    texts = topic_corpus()
    vectorizer = text.build_vectorizer(texts, vocab_size=20, sequence_length=30)
    vocabulary = vectorizer.get_vocabulary()
    ids = text.tokenize(vectorizer, texts)
    keras.utils.set_random_seed(0)
    model = text.SkipGram(len(vocabulary), dim=16, window=3, num_negatives=4, vocabulary=vocabulary)
    model.adapt(ids)
    noise = np.bincount(model.noise.numpy(), minlength=len(vocabulary))
    assert noise[0] == 0 and noise[1] == 0 and noise[vocabulary.index("the")] == noise.max()
    model.compile(optimizer=keras.optimizers.Adam(0.02), jit_compile=True)
    held_out_pairs = model.dataset(ids, batch_size=256, subsample=0.0, seed=9)
    before = model.evaluate(held_out_pairs, verbose=0)
    model.fit(model.dataset(ids, batch_size=256, subsample=0.0, epochs=3), verbose=0)
    after = model.evaluate(held_out_pairs, verbose=0)
    assert before == pytest.approx(5 * np.log(2), rel=0.01) and after < before - 1.0  # (1 + k) log 2 at the start
    neighbours = [w for w, _ in model.most_similar("matrix", k=4)]
    assert set(neighbours) == {"eigen", "vector", "linalg", "solve"}, model.most_similar("matrix", k=6)
    # the mean vector of a document is the mean of its in-vocabulary word vectors
    means = model.mean_vectors(ids[:2])
    vectors = model.word_vectors()
    np.testing.assert_allclose(means[0], vectors[ids[0].numpy()].mean(axis=0), rtol=1e-5, atol=1e-7)
    # saved and loaded with its vocabulary, vectors and noise table
    model.save(tmp_path / "w2v.keras")
    restored = keras.models.load_model(tmp_path / "w2v.keras")
    np.testing.assert_array_equal(restored.word_vectors(), vectors)
    np.testing.assert_array_equal(restored.noise.numpy(), model.noise.numpy())
    assert restored.most_similar("matrix", k=4) == model.most_similar("matrix", k=4)


def test_most_similar_errors():
    model = text.SkipGram(5, dim=4)
    with pytest.raises(ValueError, match="vocabulary"):
        model.most_similar("a")
    model = text.SkipGram(5, dim=4, vocabulary=["", "[UNK]", "a", "b", "c"])
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        model.most_similar("z")
    assert [w for w, _ in model.most_similar("a", k=10)] and "a" not in [w for w, _ in model.most_similar("a")]
    with pytest.raises(ValueError, match="`vocabulary` has 2 words"):
        text.SkipGram(5, vocabulary=["", "[UNK]"])
