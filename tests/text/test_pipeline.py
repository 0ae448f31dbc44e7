"""The four registry-facing calls, end to end on a small generated corpus."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcontrast as tfc
from tfcontrast import text


def corpus(n=40, seed=0):
    """Documents with a one-line summary, a blank line and a body; each draws from its own topic words."""
    rng = np.random.default_rng(seed)
    texts = []
    for d in range(n):
        own = [f"t{d}x{j}" for j in range(6)]
        shared = ["the", "array", "of", "returns", "parameters"]
        summary = " ".join(rng.choice(own, 4)) + "."
        body = " ".join(rng.choice(own + shared * 2, 120))
        texts.append(f"{summary}\n\n{body}")
    return texts


@pytest.fixture(scope="module")
def data():
    return text.prepare_text_data(corpus(), vocab_size=500, sequence_length=32, test_fraction=0.25, seed=0)


def test_prepare_splits_adapts_on_train_and_tokenises_train(data):
    assert (len(data.train), len(data.held_out), len(data.documents)) == (30, 10, 40)
    vocabulary = set(data.vectorizer.get_vocabulary())
    held_out_only = {w for t in data.held_out.texts for w in re.findall(r"t\d+x\d", t)}
    assert not held_out_only & vocabulary  # the vocabulary saw only training text
    assert data.token_ids.shape[0] == 30 and data.sequence_length == 32
    meta = data.metadata()
    assert meta["train"] == 30 and meta["held_out"] == 10 and meta["vocab_size"] == data.vocab_size
    assert meta["split"] == {"test_fraction": 0.25, "seed": 0, "part": "held_out"}


def test_text_encoder_by_name():
    assert text.text_encoder("cnn", 50, 8, dim=4).output_shape == (None, 4)
    with pytest.raises(ValueError, match=r"\['cnn', 'transformer'\]"):
        text.text_encoder("lstm", 50, 8)


def test_train_evaluate_and_export_from_plain_arguments(data, tmp_path):
    keras.utils.set_random_seed(0)
    encoder = text.text_encoder("transformer", data.vocab_size, data.sequence_length, dim=32, depth=0)
    model = tfc.models.DeCLUTR(encoder, temperature=0.1)
    model.compile(optimizer=keras.optimizers.Adam(5e-3))
    rows_before = text.evaluate_text_encoder(encoder, data, baselines=())
    model.fit(model.batches(data.token_ids, 16, data.sequence_length, min_length=4), steps_per_epoch=30, verbose=0)
    rows = text.evaluate_text_encoder(encoder, data, extra={"random": lambda t: np.random.default_rng(0).normal(size=(len(t), 8))})
    assert set(rows) == {"tfidf", "random", "trained"}
    assert rows["trained"]["span/mrr"] > rows_before["trained"]["span/mrr"]
    path = text.export_text_index(encoder, data, tmp_path / "index", k=3)
    lookup = tf.saved_model.load(path).signatures["lookup"]
    names = lookup(text=tf.constant([data.documents.texts[5]]))["names"].numpy()[0]
    assert names[0].decode() == data.documents.ids[5]
