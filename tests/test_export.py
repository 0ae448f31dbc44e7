"""tfcontrast.export: SavedModels that TensorFlow's own tools run (issue 12 §1, §3; issue 11 D3).

One module fixture writes two exports and runs, all at once, the real clients
a user would: ``saved_model_cli show --all`` and ``saved_model_cli run`` (the
console script of this environment) and a Python process that cannot import
tfcontrast. Each test then compares what they returned with the in-process
answers.

* ``digits``: a Conv + BatchNormalization encoder (BatchNorm's moving
  statistics are what the old ``tf.Module`` export failed to restore under
  ``saved_model_cli``), a faiss hnsw index with removed entries and the
  digits' input contract ([0, 1], raw values / 16).
* ``mixed``: a mixed-precision (float16 compute) encoder, embed only.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import data, export
from tfcontrast.contract import InputContract
from tfcontrast.index import Index, NearestNeighbors

K = 5
CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")

# Runs in an isolated interpreter (-I: no PYTHONPATH, no user site) that also
# refuses any tfcontrast module: the SavedModel must stand on TensorFlow alone.
# Calls every signature (raw inputs for *_raw ones) and saves the outputs.
SERVING_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, os, sys

    class RefuseTfcontrast(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tfcontrast" or name.startswith("tfcontrast."):
                raise ImportError("the serving process must not import tfcontrast")

    sys.meta_path.insert(0, RefuseTfcontrast())
    try:
        import tfcontrast
    except ImportError as err:
        print("tfcontrast unimportable:", err)
    else:
        raise SystemExit("tfcontrast was importable")
    import numpy as np
    import tensorflow as tf

    prepared, raw, out_path, *model_dirs = sys.argv[1:]
    inputs = {False: tf.constant(np.load(prepared)), True: tf.constant(np.load(raw))}
    out = {}
    for model_dir in model_dirs:
        loaded = tf.saved_model.load(model_dir)
        for signature, fn in sorted(loaded.signatures.items()):
            for key, value in fn(inputs=inputs[signature.endswith("_raw")]).items():
                out[f"{os.path.basename(model_dir)}/{signature}/{key}"] = value.numpy()
    np.savez(out_path, **out)
    print("tfcontrast modules:", sorted(m for m in sys.modules if m.startswith("tfcontrast")))
    """
)


def conv_bn_encoder(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(8)(h))


def with_moving_statistics(encoder, rng):
    """Moving mean / variance away from their initial 0 / 1, so that a lost restore shows."""
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=layer.moving_variance.shape).astype("float32"))
    return encoder


def mixed_precision_encoder(seed=1):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        encoder = conv_bn_encoder(seed)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert encoder.outputs[0].dtype == "float16"
    return encoder


def run_all(commands, cwd):
    """Starts every command at once (each starts TensorFlow: seconds); returns name -> CompletedProcess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    running = {
        name: subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, cmd in commands.items()
    }
    done = {}
    for name, proc in running.items():
        stdout, stderr = proc.communicate(timeout=300)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return done


def cli_run(model_dir, signature, npy, outdir=None):
    cmd = [CLI, "run", "--dir", model_dir, "--tag_set", "serve", "--signature_def", signature]
    return cmd + ["--inputs", f"inputs={npy}"] + (["--outdir", outdir] if outdir else [])


def load_outputs(directory):
    return {name[: -len(".npy")]: np.load(os.path.join(directory, name)) for name in os.listdir(directory)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    assert os.path.exists(CLI), f"saved_model_cli is not beside {sys.executable}"
    tmp = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    split = data.load_digits()
    contract = InputContract.from_data(split.x_train, scale=16)
    encoder = with_moving_statistics(conv_bn_encoder(), rng)
    references = encoder(split.x_train[:300]).numpy()
    index = Index("cosine", "hnsw", ef_search=512)  # ef_search > n: this hnsw search is exhaustive
    index.add(references, labels=split.y_train[:300], ids=np.arange(300) * 7 + 1)
    index.remove([1, 8])
    digits = export.export_saved_model(encoder, tmp / "digits", index=index, k=K, contract=contract)
    mixed_encoder = mixed_precision_encoder()
    mixed = export.export_saved_model(mixed_encoder, tmp / "mixed")

    queries = split.x_test[:7]
    raw = queries * 16.0  # the digits as sklearn gives them: 0-16
    np.save(tmp / "q.npy", queries)
    np.save(tmp / "raw.npy", raw)
    processes = run_all(
        {
            "show": [CLI, "show", "--dir", digits, "--all"],
            "lookup": cli_run(digits, "lookup", "q.npy", "out_lookup"),
            "embed": cli_run(digits, "embed", "q.npy", "out_embed"),
            "refused": cli_run(digits, "lookup", "raw.npy"),
            "mixed": cli_run(mixed, "serving_default", "q.npy", "out_mixed"),
            "no_tfcontrast": [sys.executable, "-I", "-c", SERVING_SCRIPT, "q.npy", "raw.npy", "served.npz"]
            + [digits, mixed],
        },
        cwd=tmp,
    )
    embeddings = encoder(queries).numpy()
    return dict(
        tmp=tmp, digits=digits, mixed=mixed, encoder=encoder, mixed_encoder=mixed_encoder, index=index,
        contract=contract, queries=queries, raw=raw, embeddings=embeddings, expected=index.search(embeddings, k=K),
        processes=processes,
    )  # fmt: skip


def succeeded(exported, name):
    proc = exported["processes"][name]
    assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"
    return proc


def assert_neighbours(out, expected):
    assert out["ids"].dtype == np.int64 and out["ids"].shape == expected.ids.shape
    np.testing.assert_array_equal(out["ids"], expected.ids)
    np.testing.assert_array_equal(out["labels"], expected.labels)
    np.testing.assert_allclose(out["distances"], expected.distances, rtol=1e-5, atol=1e-6)


def test_the_queries_have_no_near_ties(exported):
    """Guard: comparing neighbour ids across two implementations needs distinct distances."""
    full = exported["index"].search(exported["embeddings"], k=K + 1).distances
    assert np.diff(full, axis=1).min() > 1e-5  # float32 round-off is ~1e-7 here


def test_saved_model_cli_show_lists_every_signature(exported):
    shown = succeeded(exported, "show").stdout
    for name in ("serving_default", "embed", "lookup", "embed_raw", "lookup_raw"):
        assert f"signature_def['{name}']" in shown
    assert "inputs['inputs'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 8, 8, 1)" in shown
    outputs = [("embeddings", "DT_FLOAT", "(-1, 8)"), ("ids", "DT_INT64", f"(-1, {K})"),
               ("distances", "DT_FLOAT", f"(-1, {K})"), ("labels", "DT_INT64", f"(-1, {K})")]  # fmt: skip
    for key, dtype, shape in outputs:
        assert f"outputs['{key}'] tensor_info:\n        dtype: {dtype}\n        shape: {shape}" in shown


def test_saved_model_cli_runs_lookup_and_embed_with_batchnorm(exported):
    succeeded(exported, "lookup")
    succeeded(exported, "embed")
    assert_neighbours(load_outputs(exported["tmp"] / "out_lookup"), exported["expected"])
    assert not np.isin(load_outputs(exported["tmp"] / "out_lookup")["ids"], [1, 8]).any()  # removed entries
    embedded = load_outputs(exported["tmp"] / "out_embed")
    assert embedded["embeddings"].dtype == np.float32
    np.testing.assert_allclose(embedded["embeddings"], exported["embeddings"], rtol=1e-5, atol=1e-6)


def test_saved_model_cli_refuses_raw_digits_naming_the_range(exported):
    proc = exported["processes"]["refused"]
    assert proc.returncode != 0
    assert "InvalidArgumentError" in proc.stderr
    assert "inputs must be finite values in [0, 1]" in proc.stderr
    assert "raw values divided by 16" in proc.stderr and "embed_raw / lookup_raw" in proc.stderr


def test_mixed_precision_embeddings_come_out_float32(exported):
    succeeded(exported, "mixed")
    served = load_outputs(exported["tmp"] / "out_mixed")["embeddings"]
    assert served.dtype == np.float32 and served.shape == (7, 8)
    want = exported["mixed_encoder"](exported["queries"]).numpy().astype(np.float32)
    np.testing.assert_allclose(served, want, rtol=1e-2, atol=1e-2)  # float16 compute
    assert np.abs(served).max() > 0.1  # not a zeroed (unrestored) network


def test_a_process_without_tfcontrast_serves_every_signature(exported):
    proc = succeeded(exported, "no_tfcontrast")
    assert "tfcontrast unimportable: the serving process must not import tfcontrast" in proc.stdout
    assert "tfcontrast modules: []" in proc.stdout
    served = dict(np.load(exported["tmp"] / "served.npz"))
    signatures = ["serving_default", "embed", "lookup", "embed_raw", "lookup_raw"]
    assert sorted(k for k in served if k.startswith("digits/")) == sorted(
        [f"digits/{s}/embeddings" for s in signatures if "embed" in s or s == "serving_default"]
        + [f"digits/{s}/{key}" for s in ("lookup", "lookup_raw") for key in ("ids", "distances", "labels")]
    )
    assert sorted(k for k in served if k.startswith("mixed/")) == [
        "mixed/embed/embeddings", "mixed/serving_default/embeddings"
    ]  # fmt: skip
    for signature in ("serving_default", "embed", "embed_raw"):  # raw / 16 = the prepared queries
        served_embeddings = served[f"digits/{signature}/embeddings"]
        np.testing.assert_allclose(served_embeddings, exported["embeddings"], rtol=1e-5, atol=1e-6)
    for signature in ("lookup", "lookup_raw"):
        neighbours = {key: served[f"digits/{signature}/{key}"] for key in ("ids", "distances", "labels")}
        assert_neighbours(neighbours, exported["expected"])
    via_cli = load_outputs(exported["tmp"] / "out_mixed")["embeddings"]
    np.testing.assert_allclose(served["mixed/embed/embeddings"], via_cli)


def test_the_contract_is_enforced_in_process_and_recorded_in_the_marker(exported):
    loaded = tf.saved_model.load(exported["digits"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"inputs must be finite values in \[0, 1\]"):
        loaded.signatures["embed"](inputs=tf.constant(exported["raw"]))
    nan = exported["queries"].copy()
    nan[2, 3, 3, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite values"):
        loaded.signatures["lookup"](inputs=tf.constant(nan))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"raw inputs must be finite values in \[0, 16\]"):
        loaded.signatures["lookup_raw"](inputs=tf.constant(exported["raw"] * 16))
    # Exactly the bounds pass (an all-white digit is 16 / 16 = 1).
    ones = loaded.signatures["embed_raw"](inputs=tf.fill([1, 8, 8, 1], 16.0))["embeddings"]
    np.testing.assert_allclose(ones, exported["encoder"](np.ones((1, 8, 8, 1), np.float32)), rtol=1e-5, atol=1e-6)

    marker = export.read_marker(exported["digits"])
    assert InputContract.from_dict(marker["input_contract"]) == exported["contract"]
    assert marker["signatures"] == ["serving_default", "embed", "lookup", "embed_raw", "lookup_raw"]
    assert marker["lookup"] == {"k": K, "metric": "cosine", "size": 298}
    assert marker["input"] == {"key": "inputs", "shape": [None, 8, 8, 1], "dtype": "float32"}
    assert export.read_marker(exported["mixed"])["input_contract"] is None


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tflite_converts_embed_and_lookup(exported):
    converter = tf.lite.TFLiteConverter.from_saved_model(exported["digits"], signature_keys=["embed", "lookup"])
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    embed, lookup = interpreter.get_signature_runner("embed"), interpreter.get_signature_runner("lookup")
    out = embed(inputs=exported["queries"])["embeddings"]
    np.testing.assert_allclose(out, exported["embeddings"], rtol=1e-4, atol=1e-5)
    assert_neighbours(lookup(inputs=exported["queries"]), exported["expected"])
    # TFLite has no assertion op: an out-of-range example embeds as NaN and looks up as padding
    # (id -1; the converter turns the padding distance inf into the largest float32).
    mixed = np.concatenate([exported["queries"][:2], exported["raw"][2:3]])
    out = embed(inputs=mixed)["embeddings"]
    assert np.isfinite(out[:2]).all() and np.isnan(out[2]).all()
    padded = lookup(inputs=mixed)
    assert (padded["ids"][2] == -1).all() and (padded["labels"][2] == -1).all()
    assert (padded["distances"][2] >= np.finfo(np.float32).max).all()
    np.testing.assert_array_equal(padded["ids"][:2], exported["expected"].ids[:2])


def test_a_nearest_neighbors_layer_is_exported_as_is_or_rebuilt_for_another_k(rng, tmp_path):
    encoder = conv_bn_encoder()
    references = rng.normal(size=(40, 8))
    nn = NearestNeighbors(references, labels=np.arange(40) % 3, k=4, metric="euclidean", ids=np.arange(40) + 100)
    x = rng.uniform(size=(5, 8, 8, 1)).astype(np.float32)
    want = nn.search(encoder(x).numpy())
    for k in (None, 2):
        loaded = tf.saved_model.load(export.export_saved_model(encoder, tmp_path / f"k{k}", index=nn, k=k))
        out = {key: v.numpy() for key, v in loaded.signatures["lookup"](inputs=tf.constant(x)).items()}
        width = k or nn.k
        np.testing.assert_array_equal(out["ids"], want.ids[:, :width])
        np.testing.assert_array_equal(out["labels"], want.labels[:, :width])
        np.testing.assert_allclose(out["distances"], want.distances[:, :width], rtol=1e-5, atol=1e-5)
    beyond = tf.saved_model.load(export.export_saved_model(encoder, tmp_path / "k50", index=nn, k=50))
    clamped = beyond.signatures["lookup"](inputs=tf.constant(x))  # k is clamped to the 40 entries
    assert clamped["ids"].shape == (5, 40)
    np.testing.assert_array_equal(np.sort(clamped["ids"].numpy(), axis=1), np.tile(np.arange(40) + 100, (5, 1)))


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
    spec = tf.TensorSpec([None, 5], tf.float32)
    path = export.export_saved_model(encoder, tmp_path / "m", index=nn, k=2, input_signature=spec)
    loaded = tf.saved_model.load(path)
    served_spec = loaded.signatures["lookup"].structured_input_signature[1]["inputs"]
    assert served_spec.shape.as_list() == [None, 5]
    for batch in (1, 6):
        x = rng.normal(size=(batch, 5)).astype(np.float32)
        out = loaded.signatures["lookup"](inputs=tf.constant(x))
        assert out["ids"].shape == (batch, 2)
        full = nn(encoder(x))  # k = 4; the export asked for k = 2: the same first two
        np.testing.assert_array_equal(out["ids"].numpy(), full["ids"].numpy()[:, :2])


def test_bad_arguments_are_refused(rng, tmp_path):
    encoder = conv_bn_encoder()
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
    with pytest.raises(ValueError, match=r"`contract` describes float32 inputs of shape \[4, 4, 1\].*\[8, 8, 1\]"):
        export.export_saved_model(encoder, tmp_path / "a", contract=InputContract((4, 4, 1)))
    with pytest.raises(ValueError, match="`contract` describes float64"):
        export.export_saved_model(encoder, tmp_path / "a", contract=InputContract((8, 8, 1), dtype="float64"))
    with pytest.raises(TypeError, match="`contract` must be"):
        export.export_saved_model(encoder, tmp_path / "a", contract={"shape": [8, 8, 1]})
    assert not os.path.exists(tmp_path / "a")


def test_failed_export_leaves_the_previous_one_intact(rng, tmp_path, monkeypatch):
    encoder = conv_bn_encoder()
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
    assert sorted(tf.saved_model.load(path).signatures) == ["embed", "serving_default"]


def test_markers_of_other_kinds_are_not_exports(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / export.MARKER).write_text(json.dumps({"format": "something.else"}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / export.MARKER).write_text("{not json")
    (tmp_path / "c").mkdir()
    os.symlink("/dev/zero", tmp_path / "c" / export.MARKER)
    assert not any(export.is_export(tmp_path / name) for name in "abc")
    with pytest.raises(ValueError, match="not a tfcontrast export marker"):
        export.read_marker(tmp_path / "a")
