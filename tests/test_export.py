import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import export
from tfcontrast.index import Index, NearestNeighbors

# Runs in a fresh interpreter that cannot import tfcontrast: the SavedModel must
# stand on TensorFlow alone. Writes every signature's outputs to an .npz file.
SERVING_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, os, sys

    class RefuseTfcontrast(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tfcontrast" or name.startswith("tfcontrast."):
                raise ImportError("the serving process must not import tfcontrast")

    sys.meta_path.insert(0, RefuseTfcontrast())
    import numpy as np
    import tensorflow as tf

    inputs_path, out_path, *model_dirs = sys.argv[1:]
    x = tf.constant(np.load(inputs_path))
    out = {}
    for model_dir in model_dirs:
        loaded = tf.saved_model.load(model_dir)
        for signature, fn in sorted(loaded.signatures.items()):
            for key, value in fn(inputs=x).items():
                out[f"{os.path.basename(model_dir)}/{signature}/{key}"] = value.numpy()
    np.savez(out_path, **out)
    print("tfcontrast modules:", sorted(m for m in sys.modules if m.startswith("tfcontrast")))
    """
)


def make_encoder(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(8)(h))


def test_saved_model_serves_the_same_neighbours_in_a_process_without_tfcontrast(rng, tmp_path):
    encoder = make_encoder()
    references = encoder(rng.normal(size=(300, 4, 4, 1)).astype(np.float32)).numpy()
    idx = Index("cosine", "hnsw", ef_search=512)  # ef_search > n: the hnsw search is exhaustive here
    idx.add(references, labels=np.arange(300) % 10, ids=np.arange(300) * 7 + 1)
    idx.remove([1, 8])
    nn = NearestNeighbors(references[:50], labels=np.arange(50) % 3, k=3, metric="euclidean")
    with_index = export.export_saved_model(encoder, tmp_path / "with_index", index=idx, k=5)
    with_layer = export.export_saved_model(encoder, tmp_path / "with_layer", index=nn)
    embed_only = export.export_saved_model(encoder, tmp_path / "embed_only")

    x = rng.normal(size=(7, 4, 4, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", SERVING_SCRIPT, str(tmp_path / "x.npy"), str(tmp_path / "out.npz"), with_index, with_layer, embed_only],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tfcontrast modules: []" in proc.stdout
    served = dict(np.load(tmp_path / "out.npz"))
    assert sorted(served) == sorted(
        ["with_index/embed/embeddings", "embed_only/embed/embeddings", "with_layer/embed/embeddings"]
        + [f"{m}/lookup/{key}" for m in ("with_index", "with_layer") for key in ("ids", "distances", "labels")]
    )
    embeddings = encoder(x).numpy()
    for name in ("with_index", "with_layer", "embed_only"):
        np.testing.assert_allclose(served[f"{name}/embed/embeddings"], embeddings, rtol=1e-5, atol=1e-6)
    # The exported lookup is exact; so is this hnsw search (ef_search > n).
    want = idx.search(embeddings, k=5)
    assert served["with_index/lookup/ids"].shape == (7, 5) and served["with_index/lookup/ids"].dtype == np.int64
    np.testing.assert_array_equal(served["with_index/lookup/ids"], want.ids)
    np.testing.assert_array_equal(served["with_index/lookup/labels"], want.labels)
    np.testing.assert_allclose(served["with_index/lookup/distances"], want.distances, rtol=1e-5, atol=1e-6)
    assert not np.isin(served["with_index/lookup/ids"], [1, 8]).any()
    want_layer = nn(embeddings)
    for key in ("ids", "labels"):
        np.testing.assert_array_equal(served[f"with_layer/lookup/{key}"], want_layer[key].numpy())
    np.testing.assert_allclose(served["with_layer/lookup/distances"], want_layer["distances"].numpy(), rtol=1e-5, atol=1e-6)


def test_signatures_accept_any_batch_and_subclassed_encoders_need_a_signature(rng, tmp_path):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x, training=False):
            return self.dense(x)

    encoder = Subclassed()
    with pytest.raises(ValueError, match="input_signature"):
        export.export_saved_model(encoder, tmp_path / "m")
    nn = NearestNeighbors(rng.normal(size=(10, 3)), k=4, metric="inner_product")
    path = export.export_saved_model(encoder, tmp_path / "m", index=nn, k=2, input_signature=tf.TensorSpec([None, 5], tf.float32))
    loaded = tf.saved_model.load(path)
    spec = loaded.signatures["lookup"].structured_input_signature[1]["inputs"]
    assert spec.shape.as_list() == [None, 5]
    for batch in (1, 6):
        x = rng.normal(size=(batch, 5)).astype(np.float32)
        out = loaded.signatures["lookup"](inputs=tf.constant(x))
        assert out["ids"].shape == (batch, 2)
        full = nn(encoder(x))  # k = 4; the export asked for k = 2: the same first two
        np.testing.assert_array_equal(out["ids"].numpy(), full["ids"].numpy()[:, :2])


def test_bad_arguments_are_refused(rng, tmp_path):
    encoder = make_encoder()
    wrong_dim = Index()
    wrong_dim.add(rng.normal(size=(5, 6)))
    with pytest.raises(ValueError, match="6-d embeddings but the encoder outputs 8-d"):
        export.export_saved_model(encoder, tmp_path / "a", index=wrong_dim)
    with pytest.raises(ValueError, match="empty"):
        export.export_saved_model(encoder, tmp_path / "a", index=Index())
    with pytest.raises(ValueError, match="`index` must be"):
        export.export_saved_model(encoder, tmp_path / "a", index=np.zeros((3, 8)))
    with pytest.raises(ValueError, match="`k` is only used"):
        export.export_saved_model(encoder, tmp_path / "a", k=3)
    two_outputs = keras.Model(encoder.inputs, [encoder.outputs[0], encoder.outputs[0]])
    with pytest.raises(ValueError, match=r"one \[batch, dim\] tensor"):
        export.export_saved_model(two_outputs, tmp_path / "a")
    assert not os.path.exists(tmp_path / "a")


def test_failed_export_leaves_the_previous_one_intact(rng, tmp_path, monkeypatch):
    encoder = make_encoder()
    path = export.export_saved_model(encoder, tmp_path / "m")

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    idx = Index()
    idx.add(rng.normal(size=(4, 8)))
    with pytest.raises(OSError, match="simulated"):
        export.export_saved_model(encoder, path, index=idx)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == [".m.tfcontrast-lock", "m"]
    assert list(tf.saved_model.load(path).signatures) == ["embed"]
