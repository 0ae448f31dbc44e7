"""EmbeddingModel with a loss_head that owns class weights: fit, save/load, strategies, mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcontrast as tfc
from tfcontrast.models import EmbeddingModel

CLASSES, DIM, WIDTH = 4, 6, 8
HEADS = {
    "arcface": lambda: tfc.losses.ArcFaceLoss(CLASSES, DIM, margin=0.3, scale=16.0),
    "cosface": lambda: tfc.losses.CosFaceLoss(CLASSES, DIM, margin=0.2, scale=16.0),
    "proxy_anchor": lambda: tfc.losses.ProxyAnchorLoss(CLASSES, DIM, margin=0.1, alpha=16.0),
    "proxy_nca": lambda: tfc.losses.ProxyNCALoss(CLASSES, DIM, temperature=0.2),
}


@pytest.fixture(scope="module")
def clusters():
    """Four well-separated Gaussian clusters in 8-d: 256 training and 128 held-out points."""
    rng = np.random.default_rng(1)
    centers = 4.0 * rng.normal(size=(CLASSES, WIDTH))
    y = np.arange(384) % CLASSES
    x = (centers[y] + rng.normal(size=(384, WIDTH))).astype("float32")
    return x[:256], y[:256], x[256:], y[256:]


def encoder(seed: int = 0) -> keras.Model:
    inputs = keras.Input((WIDTH,))
    return keras.Model(inputs, keras.layers.Dense(16, kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs))


def make(head: str, seed: int = 0) -> EmbeddingModel:
    keras.utils.set_random_seed(seed)
    return EmbeddingModel(encoder(seed), embedding_dim=DIM, loss_head=HEADS[head]())


def nearest_class_accuracy(model, x, y) -> float:
    """Accuracy of the class whose (normalised) weight is closest in cosine to each embedding."""
    emb = model.predict(x, verbose=0)
    w = model.loss_head.class_weights.numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    return float(np.mean(np.argmax(emb @ w.T, axis=1) == y))


@pytest.mark.parametrize(
    "head",
    ["arcface", "proxy_anchor"] + [pytest.param(h, marks=pytest.mark.slow) for h in ("cosface", "proxy_nca")],
)
def test_fit_trains_encoder_and_class_weights(head, clusters):
    x, y, x_test, y_test = clusters
    model = make(head)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    start = model.loss_head.class_weights.numpy().copy()
    before = model.evaluate(x_test, y_test, batch_size=128, verbose=0, return_dict=True)
    accuracy_before = nearest_class_accuracy(model, x_test, y_test)
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    after = model.evaluate(x_test, y_test, batch_size=128, verbose=0, return_dict=True)
    assert set(history.history) == {"loss", "pos_dist", "neg_dist", "dist_gap"}
    assert after["loss"] < 0.4 * before["loss"], (before, after)
    # The clusters separate even under the random encoder; the random class weights do not label them.
    assert accuracy_before < 0.7 and nearest_class_accuracy(model, x_test, y_test) >= 0.95, accuracy_before
    assert np.max(np.abs(model.loss_head.class_weights.numpy() - start)) > 1e-3  # the optimizer moved them
    assert any(v is model.loss_head.class_weights for v in model.trainable_variables)
    # predict returns the embeddings, not class scores: unit vectors of width DIM, equal to model(x).
    emb = model.predict(x_test[:16], verbose=0)
    assert emb.shape == (16, DIM)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(emb, model(x_test[:16]).numpy(), rtol=1e-5, atol=1e-6)


def test_keras_file_and_weights_file_restore_class_weights_exactly_and_training_continues(tmp_path, clusters):
    x, y, _, _ = clusters
    model = make("arcface")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert type(restored.loss_head) is tfc.losses.ArcFaceLoss
    assert restored.loss_head.get_config() == model.loss_head.get_config()
    assert np.array_equal(restored.loss_head.class_weights.numpy(), model.loss_head.class_weights.numpy())
    np.testing.assert_array_equal(restored.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0))
    # One more step on the same batch from both: same weights afterwards, so the Adam slots of the
    # class weights (and the step count) came back too.
    for m in (model, restored):
        m.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    # A weights file carries the class weights into a fresh model of the same architecture.
    model.save_weights(tmp_path / "m.weights.h5")
    fresh = make("arcface", seed=5)
    assert not np.array_equal(fresh.loss_head.class_weights.numpy(), model.loss_head.class_weights.numpy())
    fresh.load_weights(tmp_path / "m.weights.h5")
    assert np.array_equal(fresh.loss_head.class_weights.numpy(), model.loss_head.class_weights.numpy())


@pytest.mark.parametrize("head", ["arcface", "proxy_anchor"])
def test_two_replicas_match_one_device_on_the_global_batch(head, two_replicas, clusters):
    x, y, _, _ = clusters
    batch = (x[:24], y[:24])
    single = make(head)
    with two_replicas.scope():
        mirrored = make(head)
    assert isinstance(mirrored.loss_head.class_weights.value, tf.distribute.DistributedValues)
    with two_replicas.scope(), pytest.raises(ValueError, match="inside `strategy.scope"):
        EmbeddingModel(encoder(), embedding_dim=DIM, loss_head=single.loss_head)  # a head made outside the scope
    mirrored.set_weights(single.get_weights())
    start = single.loss_head.class_weights.numpy().copy()
    results = []
    for model in (single, mirrored):
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        history = model.fit(tf.data.Dataset.from_tensors(batch), verbose=0)
        results.append((history.history["loss"][0], model.loss_head.class_weights.numpy(), model.get_weights()))
    (loss_1, w_1, all_1), (loss_2, w_2, all_2) = results
    assert loss_1 > 0.01 and loss_2 == pytest.approx(loss_1, rel=1e-5)
    assert np.max(np.abs(w_1 - start)) > 1e-4  # the step moved the class weights
    np.testing.assert_allclose(w_2, w_1, rtol=1e-4, atol=1e-6)
    for a, b in zip(all_1, all_2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_a_head_without_embedding_dim_is_built_by_the_model_for_its_width_inside_the_scope(two_replicas, clusters):
    x, y, _, _ = clusters
    projected = EmbeddingModel(encoder(), embedding_dim=DIM, loss_head=tfc.losses.ProxyAnchorLoss(CLASSES))
    assert projected.loss_head.class_weights.shape == (CLASSES, DIM)
    unprojected = EmbeddingModel(encoder(), loss_head=tfc.losses.ArcFaceLoss(CLASSES, scale=16.0))  # the encoder's 16
    assert unprojected.loss_head.embedding_dim == 16 and unprojected.loss_head.class_weights.shape == (CLASSES, 16)
    unprojected.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert np.isfinite(unprojected.fit(x, y, batch_size=64, epochs=1, verbose=0).history["loss"]).all()
    with two_replicas.scope():
        mirrored = EmbeddingModel(encoder(), embedding_dim=DIM, loss_head=tfc.losses.CosFaceLoss(CLASSES))
    assert isinstance(mirrored.loss_head.class_weights.value, tf.distribute.DistributedValues)


@pytest.mark.parametrize("policy", ["mixed_float16", pytest.param("mixed_bfloat16", marks=pytest.mark.slow)])
def test_mixed_precision_keeps_the_head_in_float32(policy, clusters):
    x, y, _, _ = clusters
    reference = make("arcface")
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = make("arcface")
        model.set_weights(reference.get_weights())
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        half = model.evaluate(x[:64], y[:64], batch_size=64, verbose=0, return_dict=True)["loss"]
        history = model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    reference.compile(optimizer="sgd")
    full = reference.evaluate(x[:64], y[:64], batch_size=64, verbose=0, return_dict=True)["loss"]
    assert model.loss_head.class_weights.dtype == "float32" and model.loss_head.compute_dtype == "float32"
    assert half == pytest.approx(full, rel=0.02)  # only the encoder's half-precision rounding differs
    assert np.all(np.isfinite(history.history["loss"]))


def test_a_compiled_loss_is_added_to_the_head(clusters):
    x, y, _, _ = clusters
    weights = make("cosface").get_weights()  # encoder, projection, then the class weights

    def evaluate(with_head: bool, loss) -> float:
        model = EmbeddingModel(encoder(), embedding_dim=DIM, loss_head=HEADS["cosface"]() if with_head else None)
        model.set_weights(weights if with_head else weights[:4])
        model.compile(optimizer="sgd", loss=loss)
        return model.evaluate(x[:64], y[:64], batch_size=64, verbose=0)[0]

    triplet = tfc.losses.TripletLoss(margin=1.0, mining="hard")
    head_only, triplet_only, both = evaluate(True, None), evaluate(False, triplet), evaluate(True, triplet)
    assert head_only > 0.1 and triplet_only > 0.1
    assert both == pytest.approx(head_only + triplet_only, rel=1e-5)


def test_without_a_head_the_config_and_errors_are_unchanged(clusters):
    x, y, _, _ = clusters
    plain = EmbeddingModel(encoder(), embedding_dim=DIM)
    assert "loss_head" not in plain.get_config()
    plain.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="label-based loss"):
        plain.fit(x, y, batch_size=64, verbose=0)


def test_bad_heads_and_bad_use_are_named(clusters):
    x, y, _, _ = clusters
    with pytest.raises(ValueError, match="width 5.*width 6"):
        EmbeddingModel(encoder(), embedding_dim=DIM, loss_head=tfc.losses.ArcFaceLoss(CLASSES, 5))
    with pytest.raises(ValueError, match="width 3.*width 16"):
        EmbeddingModel(encoder(), loss_head=tfc.losses.ArcFaceLoss(CLASSES, 3))
    with pytest.raises(ValueError, match="Keras layer"):
        EmbeddingModel(encoder(), embedding_dim=DIM, loss_head=tfc.losses.TripletLoss())
    model = make("arcface")
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"class ids in \[0, 4\)"):
        model.fit(x, np.where(y == 3, 4, y), batch_size=64, verbose=0)
    with pytest.raises(ValueError, match="sample weights"):
        model.fit(x, y, sample_weight=np.ones(len(y)), batch_size=64, verbose=0)
    misused = EmbeddingModel(encoder(), embedding_dim=DIM)
    misused.compile(optimizer="sgd", loss=tfc.losses.ArcFaceLoss(CLASSES, DIM))
    with pytest.raises(ValueError, match="loss_head"):
        misused.fit(x, y, batch_size=64, verbose=0)
