import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import text
from tfcontrast.text.vectorizer import standardize_words

TEXTS = ["Compute numpy.linalg.eigh of a matrix.", "The n_components of PCA; the matrix rank!", "Ünïcode Wörds"]


def test_standardize_splits_on_punctuation_and_lowercases_unicode():
    out = standardize_words(tf.constant(["numpy.linalg.eigh(a, UPLO='L')", "n_components ÄÖ"])).numpy()
    assert [o.decode().split() for o in out] == [["numpy", "linalg", "eigh", "a", "uplo", "l"], ["n", "components", "äö"]]


def test_vectorizer_ids_padding_and_truncation():
    v = text.build_vectorizer(TEXTS, vocab_size=50, sequence_length=4)
    vocab = v.get_vocabulary()
    assert vocab[:2] == ["", "[UNK]"] and vocab[2] in ("the", "matrix")  # most frequent first
    ids = v(["matrix unknownword", "the matrix the matrix the matrix"]).numpy()
    assert ids.shape == (2, 4)
    assert ids[0].tolist() == [vocab.index("matrix"), 1, 0, 0]  # OOV 1, padding 0
    assert 0 not in ids[1]  # cut to 4


def test_tokenize_keeps_whole_documents_with_the_same_ids():
    v = text.build_vectorizer(TEXTS, vocab_size=50, sequence_length=3)
    ragged = text.tokenize(v, TEXTS)
    assert ragged.dtype == tf.int32 and ragged.shape[0] == 3
    assert ragged.row_lengths().numpy().tolist() == [7, 8, 2]
    np.testing.assert_array_equal(ragged[0][:3].numpy(), v(TEXTS[:1]).numpy()[0])
    counts = text.token_counts(ragged, len(v.get_vocabulary()))
    assert counts.sum() == 17 and counts[v.get_vocabulary().index("matrix")] == 2


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="`texts`.*single string"):
        text.build_vectorizer("one string")
    with pytest.raises(ValueError, match="`vocab_size`"):
        text.build_vectorizer(TEXTS, vocab_size=2)
    with pytest.raises(ValueError, match="`texts` is empty"):
        text.build_vectorizer([])
    with pytest.raises(ValueError, match="entry 0 is bytes"):
        text.build_vectorizer([b"bytes"])


def test_string_model_round_trips_through_keras_file_with_its_vocabulary(tmp_path):
    v = text.build_vectorizer(TEXTS, vocab_size=50, sequence_length=8)
    keras.utils.set_random_seed(0)
    encoder = text.text_transformer(len(v.get_vocabulary()), 8, dim=16, depth=1, heads=2)
    model = text.string_encoder(v, encoder)
    queries = tf.constant(["the matrix rank", "eigh of numpy"])
    before = model(queries).numpy()
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored(queries).numpy(), before, rtol=1e-6, atol=1e-6)
    restored_v = restored.get_layer("text_vectorization")
    assert restored_v.get_vocabulary() == v.get_vocabulary()


def test_embedder_batches_and_returns_float32():
    v = text.build_vectorizer(TEXTS, vocab_size=50, sequence_length=8)
    encoder = text.text_cnn(len(v.get_vocabulary()), 8, dim=5)
    embed = text.embedder(text.string_encoder(v, encoder), batch_size=2)
    out = embed(TEXTS)
    assert out.shape == (3, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[2], embed(TEXTS[2:])[0], rtol=1e-5, atol=1e-6)
