"""SiameseNetwork and EmbeddingModel: values against NumPy loops, training, strategies, saving, bad input."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcontrast as tfc
from tfcontrast.models import EmbeddingModel, SiameseNetwork
from tfcontrast.models.siamese import pair_distances

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def digits():
    """The digits split, images flattened to 64-d vectors."""
    split = tfc.data.load_digits()
    return split.x_train.reshape(-1, 64), split.y_train, split.x_test.reshape(-1, 64), split.y_test


def encoder(seed: int = 0, features: int = 16) -> keras.Model:
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(32, activation="relu", kernel_initializer=init)(inputs)
    return keras.Model(inputs, keras.layers.Dense(features, kernel_initializer=init)(h))


def np_distance(a, b, metric):
    """One pair distance, written out per metric."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if metric == "euclidean":
        return np.sqrt(np.sum((a - b) ** 2))
    if metric == "sqeuclidean":
        return np.sum((a - b) ** 2)
    if metric == "cosine":
        return 1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return -(a @ b)


def np_in_batch_means(labels, emb, metric="euclidean"):
    """Mean distance over ordered pairs (i, j != i) of the same class, and of different classes."""
    pos, neg = [], []
    for i in range(len(labels)):
        for j in range(len(labels)):
            if i == j:
                continue
            (pos if labels[i] == labels[j] else neg).append(np_distance(emb[i], emb[j], metric))
    return np.mean(pos), np.mean(neg)


# ------------------------------------------------------------------ values


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine", "inner_product"])
def test_pair_distances_match_a_loop(metric, rng):
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    expected = [np_distance(a[i], b[i], metric) for i in range(5)]
    np.testing.assert_allclose(pair_distances(a, b, metric).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_pair_distance_gradient_is_finite_for_identical_inputs():
    a = tf.Variable([[1.0, 2.0], [0.0, 0.0]])
    with tf.GradientTape() as tape:
        d = pair_distances(a, tf.constant([[1.0, 2.0], [0.0, 0.0]]))
    assert np.all(d.numpy() == 0) and np.all(np.isfinite(tape.gradient(d, a).numpy()))


def test_siamese_shares_one_set_of_weights_and_returns_tower_distances(digits):
    x = digits[0][:6]
    tower = encoder()
    model = SiameseNetwork(tower)
    assert [id(v) for v in model.trainable_variables] == [id(v) for v in tower.trainable_variables]
    assert len(model.weights) == 4  # two Dense kernels and biases: the tower, once
    e = tower(x).numpy()
    pairs = model((x, x[::-1])).numpy()
    np.testing.assert_allclose(pairs, [np_distance(e[i], e[5 - i], "euclidean") for i in range(6)], rtol=1e-5)
    assert np.all(model((x, x)).numpy() == 0)
    triplets = model((x, x[::-1], np.roll(x, 1, axis=0))).numpy()
    assert triplets.shape == (6, 2)
    np.testing.assert_allclose(triplets[:, 1], [np_distance(e[i], e[i - 1], "euclidean") for i in range(6)], rtol=1e-5)
    np.testing.assert_allclose(model.embed(x).numpy(), e, rtol=1e-6)


def test_siamese_triplet_loss_and_metrics_match_a_loop(digits, rng):
    a, p, n = (digits[0][rng.integers(0, 100, 8)] for _ in range(3))
    model = SiameseNetwork(encoder(), margin=0.7)
    model.compile(optimizer="sgd")  # no loss: triplets use the built-in margin loss
    logs = model.evaluate((a, p, n), batch_size=8, verbose=0, return_dict=True)
    e_a, e_p, e_n = (model.embed(t).numpy() for t in (a, p, n))
    d_ap = [np_distance(e_a[i], e_p[i], "euclidean") for i in range(8)]
    d_an = [np_distance(e_a[i], e_n[i], "euclidean") for i in range(8)]
    hinge = [max(d_ap[i] - d_an[i] + 0.7, 0.0) for i in range(8)]
    assert logs["loss"] == pytest.approx(np.mean(hinge), rel=1e-5)
    assert logs["pos_dist"] == pytest.approx(np.mean(d_ap), rel=1e-5)
    assert logs["neg_dist"] == pytest.approx(np.mean(d_an), rel=1e-5)
    assert logs["dist_gap"] == pytest.approx(np.mean(d_an) - np.mean(d_ap), rel=1e-4, abs=1e-6)


def test_siamese_pair_metrics_split_distances_by_pair_label(digits):
    x = digits[0][:8]
    y = np.array([1, 0, 0, 1, 1, 0, 0, 0], np.float32)
    model = SiameseNetwork(encoder(), distance="cosine")
    model.compile(optimizer="sgd", loss=tfc.losses.ContrastiveLoss(margin=0.5))
    logs = model.evaluate((x, x[::-1]), y, batch_size=8, verbose=0, return_dict=True)
    e = model.embed(x).numpy()
    d = np.array([np_distance(e[i], e[7 - i], "cosine") for i in range(8)])
    # Hadsell et al.: y d^2 + (1 - y) max(margin - d, 0)^2, mean over pairs.
    expected = np.mean(y * d**2 + (1 - y) * np.maximum(0.5 - d, 0) ** 2)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["pos_dist"] == pytest.approx(d[y == 1].mean(), rel=1e-5)
    assert logs["neg_dist"] == pytest.approx(d[y == 0].mean(), rel=1e-5)


def test_embedding_model_embeds_on_the_unit_sphere_and_reports_in_batch_distances(digits):
    x, y = digits[0][:12], digits[1][:12]
    model = EmbeddingModel(encoder(), embedding_dim=5)
    model.compile(optimizer="sgd", loss=tfc.losses.TripletLoss(margin=0.2))
    emb = model.predict(x, verbose=0)
    assert emb.shape == (12, 5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    logs = model.evaluate(x, y, batch_size=12, verbose=0, return_dict=True)
    pos, neg = np_in_batch_means(y, emb)
    assert logs["pos_dist"] == pytest.approx(pos, rel=1e-4)
    assert logs["neg_dist"] == pytest.approx(neg, rel=1e-4)
    assert logs["loss"] == pytest.approx(float(tfc.losses.triplet_loss(y, emb, margin=0.2)), rel=1e-5)
    raw = EmbeddingModel(encoder(), normalize=False)
    np.testing.assert_allclose(raw.predict(x, verbose=0), raw.encoder(x).numpy(), rtol=1e-6)


# ---------------------------------------------------------------- training


def test_siamese_fit_on_pairs_lowers_the_contrastive_loss(digits):
    keras.utils.set_random_seed(0)
    x, y = digits[0], digits[1]
    held = next(iter(tfc.data.pair_dataset(x, y, batch_size=256, steps=1, seed=7)))
    model = SiameseNetwork(encoder())
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=tfc.losses.ContrastiveLoss(margin=1.0))
    before = model.evaluate(*held, verbose=0, return_dict=True)
    model.fit(tfc.data.pair_dataset(x, y, batch_size=64, steps=60), verbose=0)
    after = model.evaluate(*held, verbose=0, return_dict=True)
    assert after["loss"] < 0.5 * before["loss"], (before, after)
    # The contrastive loss also shrinks the scale, so compare the ratio, not the gap.
    ratio = lambda logs: logs["neg_dist"] / logs["pos_dist"]  # noqa: E731
    assert ratio(after) > ratio(before) + 0.4, (before, after)


def test_siamese_fit_on_triplets_lowers_the_triplet_loss(digits):
    keras.utils.set_random_seed(0)
    x, y = digits[0], digits[1]
    held = next(iter(tfc.data.triplet_dataset(x, y, batch_size=256, steps=1, seed=7)))
    model = SiameseNetwork(encoder(), margin=1.0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(held, verbose=0, return_dict=True)["loss"]
    history = model.fit(tfc.data.triplet_dataset(x, y, batch_size=64, steps=60), verbose=0)
    after = model.evaluate(held, verbose=0, return_dict=True)["loss"]
    assert after < 0.5 * before, (before, after)
    assert set(history.history) == {"loss", "pos_dist", "neg_dist", "dist_gap"}


@pytest.mark.parametrize(
    "loss", [tfc.losses.TripletLoss(margin=0.2), tfc.losses.SupConLoss(temperature=0.1)], ids=["triplet", "supcon"]
)
def test_embedding_model_fit_lowers_the_loss(loss, digits):
    keras.utils.set_random_seed(0)
    x, y = digits[0], digits[1]
    model = EmbeddingModel(encoder(), embedding_dim=16)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
    held = next(iter(tfc.data.class_balanced_batches(x, y, 10, 16, steps=1, seed=7)))
    before = model.evaluate(*held, verbose=0, return_dict=True)
    model.fit(tfc.data.class_balanced_batches(x, y, 8, 8, steps=60), verbose=0)
    after = model.evaluate(*held, verbose=0, return_dict=True)
    # Lowest reachable value on the held batch (10 classes x 16): 0 for the triplet hinge;
    # for SupCon log(15): each anchor's 15 positives at most share the softmax mass equally.
    floor = 0.0 if isinstance(loss, tfc.losses.TripletLoss) else np.log(15)
    assert after["loss"] - floor < 0.6 * (before["loss"] - floor), (before, after)
    assert after["dist_gap"] > before["dist_gap"] + 0.2, (before, after)


def test_embedding_model_fits_arrays_with_validation_data_and_callbacks(digits):
    x, y, x_test, y_test = digits
    seen = []
    model = EmbeddingModel(encoder(), embedding_dim=8)
    model.compile(optimizer="adam", loss=tfc.losses.TripletLoss(margin=0.2, mining="hard"))
    history = model.fit(
        x[:256], y[:256], batch_size=64, epochs=2, verbose=0, validation_data=(x_test[:128], y_test[:128]),
        callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs["loss"]))],
    )
    assert len(seen) == 8 and np.all(np.isfinite(seen))
    assert {"val_loss", "val_pos_dist", "val_neg_dist", "val_dist_gap"} <= set(history.history)


@pytest.mark.parametrize("kind", ["embedding", "pairs", "triplets"])
def test_jit_compiled_step_matches_the_graph_step(kind, digits):
    x, y = digits[0], digits[1]
    if kind == "embedding":
        batch = next(iter(tfc.data.class_balanced_batches(x, y, 4, 4, steps=1)))
        make = lambda: EmbeddingModel(encoder(3), embedding_dim=8)  # noqa: E731
        loss = tfc.losses.TripletLoss(margin=0.5)
    elif kind == "pairs":
        batch = next(iter(tfc.data.pair_dataset(x, y, 16, steps=1)))
        make, loss = lambda: SiameseNetwork(encoder(3)), tfc.losses.ContrastiveLoss()  # noqa: E731
    else:
        batch = next(iter(tfc.data.triplet_dataset(x, y, 16, steps=1)))
        make, loss = lambda: SiameseNetwork(encoder(3)), None  # noqa: E731
    results, weights = [], make().get_weights()
    for jit in (False, True):
        model = make()
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, jit_compile=jit)
        history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(2), verbose=0)
        results.append((history.history["loss"][0], model.get_weights()))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-4)
    for g, j in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(j, g, rtol=1e-4, atol=1e-6)


# -------------------------------------------------------------- strategies


@pytest.mark.parametrize("kind", ["embedding", "pairs", "triplets"])
def test_two_replicas_match_one_device_on_the_global_batch(kind, two_replicas, digits):
    x, y = digits[0], digits[1]
    if kind == "embedding":
        batch = next(iter(tfc.data.class_balanced_batches(x, y, 4, 4, steps=1)))
        make, loss = lambda: EmbeddingModel(encoder(5), embedding_dim=8), tfc.losses.TripletLoss(0.5)  # noqa: E731
    elif kind == "pairs":
        batch = next(iter(tfc.data.pair_dataset(x, y, 16, steps=1)))
        make, loss = lambda: SiameseNetwork(encoder(5)), tfc.losses.ContrastiveLoss()  # noqa: E731
    else:
        batch = next(iter(tfc.data.triplet_dataset(x, y, 16, steps=1)))
        make, loss = lambda: SiameseNetwork(encoder(5), margin=1.0), None  # noqa: E731
    single = make()
    with two_replicas.scope():
        mirrored = make()
    mirrored.set_weights(single.get_weights())
    results = []
    for model in (single, mirrored):
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
        history = model.fit(tf.data.Dataset.from_tensors(batch), verbose=0)
        results.append(({k: v[0] for k, v in history.history.items()}, model.get_weights()))
    (logs_1, w_1), (logs_2, w_2) = results
    assert logs_1["loss"] > 0.01
    for name in ("loss", "pos_dist", "neg_dist", "dist_gap"):
        assert logs_2[name] == pytest.approx(logs_1[name], rel=1e-5), name
    for a, b in zip(w_1, w_2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ saving


def as_json(config):
    """The config as a .keras file stores it (tuples become lists)."""
    return json.loads(json.dumps(config))


def test_config_round_trip_and_keras_file_round_trip(tmp_path, digits):
    x, y = digits[0][:64], digits[1][:64]
    models = {
        "embedding": EmbeddingModel(encoder(), embedding_dim=6, normalize=False, distance="cosine"),
        "siamese": SiameseNetwork(encoder(), distance="sqeuclidean", margin=0.3),
    }
    models["embedding"].compile(optimizer="adam", loss=tfc.losses.SupConLoss(temperature=0.2))
    models["siamese"].compile(optimizer="adam", loss=tfc.losses.ContrastiveLoss(margin=2.0))
    models["embedding"].fit(x, y, batch_size=32, verbose=0)
    models["siamese"].fit((x, x[::-1]), (y == y[::-1]).astype("float32"), batch_size=32, verbose=0)
    for name, model in models.items():
        clone = type(model).from_config(model.get_config())
        assert clone.get_config() == model.get_config()
        model.save(tmp_path / f"{name}.keras")
        restored = keras.models.load_model(tmp_path / f"{name}.keras")
        assert type(restored) is type(model) and as_json(restored.get_config()) == as_json(model.get_config())
        assert restored.loss.get_config() == model.loss.get_config()
        embed = restored.predict if name == "embedding" else lambda v, **_: restored.embed(v).numpy()
        reference = model.predict(x, verbose=0) if name == "embedding" else model.embed(x).numpy()
        np.testing.assert_array_equal(embed(x, verbose=0), reference)
        np.save(tmp_path / f"{name}.npy", reference)
    code = (
        "import sys, keras, numpy as np, tfcontrast\n"
        f"d = {str(tmp_path)!r}\n"
        "e = keras.models.load_model(d + '/embedding.keras')\n"
        "s = keras.models.load_model(d + '/siamese.keras')\n"
        "x = np.load(d + '/x.npy')\n"
        "ok = np.array_equal(e.predict(x, verbose=0), np.load(d + '/embedding.npy'))\n"
        "ok &= np.array_equal(s.embed(x).numpy(), np.load(d + '/siamese.npy'))\n"
        "print(type(e).__name__, type(s).__name__, s.margin, bool(ok))\n"
    )
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "EmbeddingModel SiameseNetwork 0.3 True"


def test_export_embedder_writes_the_model_as_a_savedmodel(tmp_path, digits):
    model = EmbeddingModel(encoder(), embedding_dim=6)
    x = digits[2][:5]
    references = model.predict(digits[0][:30], verbose=0)
    nn = tfc.index.NearestNeighbors(references, labels=digits[1][:30], k=3)
    path = model.export_embedder(tmp_path / "embedder", index=nn)
    assert tfc.export.is_export(path)
    loaded = tf.saved_model.load(path)  # the SavedModel holds no EmbeddingModel class: no tfcontrast needed
    embed = loaded.signatures["embed"](inputs=tf.constant(x, tf.float32))["embeddings"].numpy()
    np.testing.assert_allclose(embed, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(loaded.signatures["lookup"](inputs=tf.constant(x, tf.float32))["ids"], nn.search(embed).ids)


# --------------------------------------------------------------- bad input


def test_mismatched_pair_shapes_are_named():
    model = SiameseNetwork(encoder())
    with pytest.raises(ValueError, match=r"`x1` and `x2` must have the same shape.*\(4, 64\).*\(4, 32\)"):
        model((np.zeros((4, 64)), np.zeros((4, 32))))
    with pytest.raises(ValueError, match="`anchor` and `negative`"):
        model((np.zeros((4, 64)), np.zeros((4, 64)), np.zeros((3, 64))))


def test_inputs_that_are_not_pairs_or_triplets_explain_the_triplet_wrapping(digits):
    model = SiameseNetwork(encoder())
    model.compile(optimizer="sgd")
    x = digits[0][:8]
    bare = tf.data.Dataset.from_tensors((x, x, x))  # read by Keras as (x, y, sample_weight)
    with pytest.raises(ValueError, match=r"pair \(x1, x2\) or a triplet.*\(\(anchor, positive, negative\),\)"):
        model.fit(bare, verbose=0)


def test_pair_batches_need_a_compiled_loss_and_labels(digits):
    x = digits[0][:8]
    model = SiameseNetwork(encoder())
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="ContrastiveLoss"):
        model.fit((x, x), np.ones(8), verbose=0)
    model.compile(optimizer="sgd", loss=tfc.losses.ContrastiveLoss())
    with pytest.raises(ValueError, match="got no y"):
        model.fit(tf.data.Dataset.from_tensors(((x, x),)), verbose=0)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.linspace(0, 1, 32), "non-integer"),
        (np.array(["a", "b"] * 16), "dtype"),
        (np.zeros((32, 3), np.int32), "shape"),
        (np.zeros(31, np.int32), "shape"),
    ],
    ids=["fractional", "strings", "one-hot", "length"],
)
def test_labels_that_are_not_integer_class_ids_are_rejected(labels, match, digits):
    model = EmbeddingModel(encoder(), embedding_dim=4)
    model.compile(optimizer="sgd", loss=tfc.losses.TripletLoss())
    with pytest.raises(ValueError, match=match):
        model.fit(digits[0][:32], labels, verbose=0)


def test_empty_data_is_rejected(digits):
    model = EmbeddingModel(encoder(), embedding_dim=4)
    model.compile(optimizer="sgd", loss=tfc.losses.TripletLoss())
    empty = tf.data.Dataset.from_tensor_slices((np.zeros((0, 64), "float32"), np.zeros(0, "int32"))).batch(8)
    with pytest.raises(ValueError, match="empty dataset"):
        model.fit(empty, verbose=0)
    with pytest.raises(ValueError, match="empty"):
        model.fit(np.zeros((0, 64), "float32"), np.zeros(0, "int32"), verbose=0)
    unknown = tf.data.Dataset.from_tensor_slices((digits[0][:8], digits[1][:8])).filter(lambda a, b: False).batch(4)
    with pytest.raises(ValueError, match="no batch"):
        model.fit(unknown, verbose=0)


def test_compiled_metrics_and_missing_loss_are_rejected(digits):
    model = EmbeddingModel(encoder(), embedding_dim=4)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="label-based loss"):
        model.fit(digits[0][:16], digits[1][:16], verbose=0)
    model.compile(optimizer="sgd", loss=tfc.losses.TripletLoss(), metrics=["mae"])
    with pytest.raises(ValueError, match="metrics"):
        model.fit(digits[0][:16], digits[1][:16], verbose=0)


def test_encoder_must_output_rank_two_and_embedding_dim_be_positive():
    inputs = keras.Input((8, 8, 1))
    conv = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    for cls in (SiameseNetwork, EmbeddingModel):
        with pytest.raises(ValueError, match=r"\[batch, features\].*\(None, 6, 6, 4\)"):
            cls(conv)
    with pytest.raises(ValueError, match="embedding_dim"):
        EmbeddingModel(encoder(), embedding_dim=0)
    with pytest.raises(ValueError, match="distance"):
        SiameseNetwork(encoder(), distance="manhattan")
    with pytest.raises(ValueError, match="margin"):
        SiameseNetwork(encoder(), margin=-1.0)


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("script", [pytest.param("siamese_digits.py", marks=pytest.mark.slow), "triplet_digits.py"])
def test_example_runs_end_to_end_with_a_few_steps(script):
    out = subprocess.run(
        [sys.executable, os.path.join("examples", script), "--steps", "3"],
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    recalls = re.findall(r"held-out recall@1[^:]*: ([0-9.]+)", out.stdout)
    assert len(recalls) == 2 and all(0.0 <= float(r) <= 1.0 for r in recalls), out.stdout
    assert re.search(r"wall time: [0-9.]+ s", out.stdout), out.stdout
