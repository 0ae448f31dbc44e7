"""The end-to-end string model: exported as a SavedModel that ``saved_model_cli`` runs on raw strings, and saved as .keras."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import text

TEXTS = [
    "Compute the eigenvalues of a symmetric matrix with numpy.linalg.eigh.",
    "Solve a sparse linear system of equations.",
    "Fit a linear regression model by least squares.",
    "Apply a Gaussian filter to an image to blur it.",
]
NAMES = ["numpy.linalg.eigh", "scipy.sparse.linalg.spsolve", "sklearn.linear_model.LinearRegression", "scipy.ndimage.gaussian_filter"]
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


@pytest.fixture(scope="module")
def string_model():
    vectorizer = text.build_vectorizer(TEXTS, vocab_size=64, sequence_length=16)
    keras.utils.set_random_seed(0)
    encoder = text.text_transformer(len(vectorizer.get_vocabulary()), 16, dim=16, depth=1, heads=2)
    return text.string_encoder(vectorizer, encoder)


def run_cli(directory, signature, query):
    out = subprocess.run(
        [
            SAVED_MODEL_CLI, "run", "--dir", str(directory), "--tag_set", "serve",
            "--signature_def", signature, "--input_exprs", f"text={[query]!r}",
        ],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_saved_model_cli_answers_names_for_a_raw_string(string_model, tmp_path):
    embeddings = string_model(tf.constant(TEXTS)).numpy()
    path = text.export_text_model(string_model, tmp_path / "text_model", names=NAMES, embeddings=embeddings, k=2)
    query = TEXTS[0]  # the indexed text itself must come back first
    stdout = run_cli(path, "lookup", query)
    names = re.findall(r"b'([^']+)'", stdout.split("names")[1])
    assert names[0] == "numpy.linalg.eigh" and len(names) == 2
    # the CLI answer is the in-process one
    loaded = tf.saved_model.load(path)
    in_process = loaded.signatures["lookup"](text=tf.constant([query, "blur an image"]))
    assert [n.decode() for n in in_process["names"].numpy()[0]] == names
    assert in_process["names"].numpy()[1, 0].decode() == "scipy.ndimage.gaussian_filter"
    np.testing.assert_allclose(in_process["scores"].numpy()[0, 0], 1.0, atol=1e-5)  # cosine with itself
    embedded = loaded.signatures["embed"](text=tf.constant(TEXTS[:2]))["embeddings"].numpy()
    np.testing.assert_allclose(embedded, embeddings[:2], rtol=1e-5, atol=1e-6)


def test_embed_only_export_and_padding_columns(string_model, tmp_path):
    path = text.export_text_model(string_model, tmp_path / "embed_only")
    stdout = run_cli(path, "embed", "a sparse matrix")
    assert "embeddings" in stdout
    assert set(tf.saved_model.load(path).signatures) == {"embed", "serving_default"}  # the default is embed
    # k above the number of documents is clamped to them (as every index does): two columns, both real
    embeddings = string_model(tf.constant(TEXTS[:2])).numpy()
    loaded = tf.saved_model.load(text.export_text_model(string_model, tmp_path / "k5", NAMES[:2], embeddings, k=5))
    out = loaded.signatures["lookup"](text=tf.constant(["matrix"]))
    assert sorted(n.decode() for n in out["names"].numpy()[0]) == sorted(NAMES[:2])
    assert np.all(np.isfinite(out["scores"].numpy()))


def test_keras_file_round_trip_takes_raw_strings(string_model, tmp_path):
    string_model.save(tmp_path / "text.keras")
    restored = keras.models.load_model(tmp_path / "text.keras")
    queries = tf.constant(["eigenvalues of a symmetric matrix", "unknown words only"])
    np.testing.assert_allclose(restored(queries).numpy(), string_model(queries).numpy(), rtol=1e-5, atol=1e-6)


def test_bad_arguments(string_model, tmp_path):
    embeddings = string_model(tf.constant(TEXTS)).numpy()
    with pytest.raises(ValueError, match="go together"):
        text.export_text_model(string_model, tmp_path / "x", names=NAMES)
    with pytest.raises(ValueError, match=r"\[len\(names\)=4, dim\]"):
        text.export_text_model(string_model, tmp_path / "x", names=NAMES, embeddings=embeddings[:3])
    with pytest.raises(ValueError, match="8-d but the model outputs 16-d"):
        text.export_text_model(string_model, tmp_path / "x", names=NAMES, embeddings=np.zeros((4, 8)))
    assert not (tmp_path / "x").exists()
