"""FineTuner: what it copies, what it trains (and what it must not), its loss, XLA, replicas, mixed precision, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.models import FineTuner, SimCLR

from .checks import assert_jit_fit_matches_graph_fit, assert_one_step_matches


@pytest.fixture(scope="module")
def digits(digits_vectors):
    return digits_vectors


def bn_encoder(seed: int = 0) -> keras.Model:
    """Dense -> synchronized BatchNorm -> ReLU: trainable weights and moving statistics."""
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(24, use_bias=False, kernel_initializer=init)(inputs)  # a bias before BN has a ~0 gradient that Adam blows up
    h = keras.layers.BatchNormalization(synchronized=True)(h)
    return keras.Model(inputs, keras.layers.ReLU()(h))


@pytest.fixture(scope="module")
def ssl(digits) -> SimCLR:
    """A SimCLR with SimCLRv2's 3-layer head after 2 steps, so its BatchNorm statistics have moved.

    Shared by the tests: a FineTuner copies what it keeps, so none of them changes it.
    """
    keras.utils.set_random_seed(0)
    model = SimCLR(bn_encoder(0), projection_dim=8, hidden_dim=16, head_layers=3, temperature=0.2)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    x = digits[0][:64]
    model.fit((x + 0.1, x - 0.1), batch_size=32, epochs=1, verbose=0)
    return model


def values(network) -> list:
    return [w.numpy().copy() for w in network.weights]


def np_mean_cross_entropy(logits, labels) -> float:
    total = 0.0
    for row, y in zip(np.asarray(logits, np.float64), labels):
        top = max(row)
        total += -(row[y] - top - np.log(sum(np.exp(v - top) for v in row)))
    return total / len(labels)


# ------------------------------------------------------------ what it copies


@pytest.mark.parametrize("from_layer", [0, 1, 2, 3])
def test_from_layer_keeps_copies_of_the_first_pretrained_head_layers(from_layer, digits, ssl):
    model = FineTuner(ssl, 10, from_layer=from_layer)
    x = digits[0][:16]
    # The representation is the pretrained encoder followed by the first `from_layer` head blocks.
    want = ssl.encoder(x, training=False)
    dense_seen = 0
    for layer in ssl.projector.layers:
        if isinstance(layer, keras.layers.Dense):
            dense_seen += 1
            if dense_seen > from_layer:
                break
        want = layer(want, training=False)
    np.testing.assert_allclose(model.representation(x).numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert model.representation_dim == want.shape[-1] == (24 if from_layer == 0 else 16 if from_layer < 3 else 8)
    kept = model.head.layers if model.head is not None else []
    assert [type(layer).__name__ for layer in kept] == [type(layer).__name__ for layer in ssl.projector.layers[: len(kept)]]
    assert len(kept) == [0, 3, 6, 7][from_layer]
    # Copies, not the same variables: the pretrained model stays what it was.
    ours = {id(w.value) for w in model.weights}
    assert not any(id(w.value) in ours for w in ssl.weights)


def test_fine_tuning_changes_the_copies_never_the_pretrained_model(digits, ssl):
    before = values(ssl)
    model = FineTuner(ssl, 10, from_layer=1)
    start = values(model.encoder) + values(model.head)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(digits[0][:128], digits[1][:128], batch_size=32, epochs=2, verbose=0)
    for a, b in zip(before, values(ssl)):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(start, values(model.encoder) + values(model.head)))


def test_linear_evaluation_trains_only_the_classifier_bit_for_bit(digits, ssl):
    """Frozen: encoder and kept head (weights and BatchNorm statistics) are unchanged to the bit; accuracy rises."""
    x, y, x_test, y_test = digits
    model = FineTuner(ssl, 10, from_layer=1, freeze_encoder=True)
    frozen = values(model.encoder) + values(model.head)
    classifier = values(model.classifier)
    assert [v.path for v in model.trainable_variables] == ["classifier/kernel", "classifier/bias"]
    model.compile(optimizer=keras.optimizers.Adam(3e-2))
    before = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    model.fit(x[:400], y[:400], batch_size=50, epochs=8, verbose=0)
    after = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    for a, b in zip(frozen, values(model.encoder) + values(model.head)):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(classifier, values(model.classifier)))
    assert after > before + 0.2, (before, after)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd_momentum"])
def test_encoder_lr_multiplier_scales_the_pretrained_step_for_any_optimizer(optimizer, digits, ssl):
    """One step with m = 0.1 moves every pretrained weight by 0.1 x its m = 1 step; the classifier's step is the same.

    With Adam, scaling the gradients instead would give the same step as m = 1.
    """
    make = {
        "adam": lambda: keras.optimizers.Adam(1e-2),
        "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1),
        "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    }[optimizer]
    x, y = digits[0][:32], digits[1][:32]
    steps = {}
    for m in (1.0, 0.1):
        model = FineTuner(ssl, 10, from_layer=1, encoder_lr_multiplier=m)
        keras.utils.set_random_seed(1)
        model.classifier.set_weights([np.random.default_rng(1).normal(size=(16, 10)).astype("float32"), np.zeros(10, "float32")])
        start = [v.numpy().copy() for v in model.trainable_variables]
        model.compile(optimizer=make())
        model.train_on_batch(x, y)
        steps[m] = [v.numpy() - s for v, s in zip(model.trainable_variables, start)]
    names = [v.path for v in model.trainable_variables]
    for name, full, slow in zip(names, steps[1.0], steps[0.1]):
        assert np.any(full), name
        factor = 1.0 if name.startswith("classifier") else 0.1
        np.testing.assert_allclose(slow, factor * full, rtol=1e-3, atol=1e-7, err_msg=name)


# ----------------------------------------------------------------- the loss


def test_loss_is_the_mean_cross_entropy_and_accuracy_the_hit_rate(digits, ssl):
    x, y = digits[0][:48], digits[1][:48]
    model = FineTuner(ssl, 10, from_layer=2)
    model.compile(optimizer="sgd")
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    logits = model.predict(x, verbose=0)
    assert logits.dtype == np.float32 and logits.shape == (48, 10)
    assert logs["loss"] == pytest.approx(np_mean_cross_entropy(logits, y), rel=1e-5)
    assert logs["accuracy"] == pytest.approx(np.mean(np.argmax(logits, axis=1) == y))


def test_augment_applies_to_training_batches_only(digits, ssl):
    """A linear probe with augment = blank images: the training loss is that of blank images, evaluate is not."""
    x, y = digits[0][:32], digits[1][:32]
    model = FineTuner(ssl, 10, freeze_encoder=True, augment=lambda images: tf.zeros_like(images))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    blank = np_mean_cross_entropy(model.predict(np.zeros_like(x), verbose=0), y)
    plain = np_mean_cross_entropy(model.predict(x, verbose=0), y)
    assert abs(blank - plain) > 1e-3
    assert model.train_on_batch(x, y, return_dict=True)["loss"] == pytest.approx(blank, rel=1e-5)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(plain, rel=1e-5)


# ------------------------------------------------------- XLA, replicas, precision


def test_jit_compiled_fit_matches_the_graph_fit(digits, ssl):
    def build():
        keras.utils.set_random_seed(5)  # the same new classifier
        return FineTuner(ssl, 10, from_layer=1, encoder_lr_multiplier=0.5)

    assert_jit_fit_matches_graph_fit(build, digits[0][:64], digits[1][:64])


def test_two_replicas_equal_one_device_after_a_step(two_replicas, digits, ssl):
    """Global cross-entropy, synchronized BatchNorm and the slowed encoder: identical to one device holding the batch."""
    x, y = digits[0][:32], digits[1][:32]
    single = FineTuner(ssl, 10, from_layer=1, encoder_lr_multiplier=0.3)
    single.compile(optimizer=keras.optimizers.Adam(1e-2))
    with two_replicas.scope():  # the optimizer too: its slots are mirrored
        mirrored = FineTuner(ssl, 10, from_layer=1, encoder_lr_multiplier=0.3)
        mirrored.compile(optimizer=keras.optimizers.Adam(1e-2))
    mirrored.set_weights(single.get_weights())
    assert_one_step_matches(single, mirrored, x, y, ["loss", "accuracy"])
    for w in mirrored.weights:
        copies = two_replicas.experimental_local_results(w.value)
        np.testing.assert_array_equal(copies[0].numpy(), copies[1].numpy(), err_msg=w.path)


def test_mixed_float16_fine_tunes_a_float32_model_with_float32_logits(digits, ssl, float16_policy):
    assert ssl.encoder.compute_dtype == "float32"  # pretrained in float32; the copies follow the global policy
    model = FineTuner(ssl, 10, from_layer=1, encoder_lr_multiplier=0.5)
    assert model.encoder.compute_dtype == "float16" and model.head.compute_dtype == "float16"
    assert model.classifier.compute_dtype == "float32"
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    start = values(model.encoder)
    history = model.fit(digits[0][:128], digits[1][:128], batch_size=32, epochs=2, verbose=0)
    assert all(np.isfinite(v) for v in history.history["loss"])
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(digits[0][:4], verbose=0).dtype == np.float32
    assert any(not np.array_equal(a, b) for a, b in zip(start, values(model.encoder)))
    assert all(np.all(np.isfinite(w.numpy())) for w in model.weights)


# -------------------------------------------------------------------- saving


def test_keras_file_round_trip(tmp_path, digits, ssl):
    model = FineTuner(ssl, 10, from_layer=1, freeze_encoder=True)
    model.compile(optimizer="adam")
    model.fit(digits[0][:64], digits[1][:64], batch_size=32, verbose=0)
    clone = FineTuner.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    model.save(tmp_path / "clf.keras")
    restored = keras.models.load_model(tmp_path / "clf.keras")
    assert isinstance(restored, FineTuner) and restored.freeze_encoder and restored.from_layer == 1
    assert [v.path for v in restored.trainable_variables] == ["classifier/kernel", "classifier/bias"]
    np.testing.assert_array_equal(restored.predict(digits[2], verbose=0), model.predict(digits[2], verbose=0))


# ----------------------------------------------------------------- bad input


def test_bad_arguments_are_value_errors_naming_them(digits, ssl):
    for kwargs, match in [
        ({"num_classes": 1}, "num_classes"),
        ({"from_layer": 4}, r"from_layer.*\[0, 3\]"),
        ({"from_layer": -1}, "from_layer"),
        ({"encoder_lr_multiplier": 0.0}, "encoder_lr_multiplier"),
        ({"freeze_encoder": True, "encoder_lr_multiplier": 0.1}, "encoder_lr_multiplier"),
        ({"augment": "shift"}, "augment"),
    ]:
        with pytest.raises(ValueError, match=match):
            FineTuner(ssl, **{"num_classes": 10, **kwargs})
    with pytest.raises(ValueError, match="no `projector`"):
        FineTuner(ssl.encoder, 10, from_layer=1)
    with pytest.raises(ValueError, match="pretrained"):
        FineTuner(lambda x: x, 10)


def test_bad_training_input_fails_before_training(digits, ssl):
    x, y = digits[0][:32], digits[1][:32]
    model = FineTuner(ssl, 10)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"class ids in \[0, 10\)"):
        model.fit(x, np.where(y == 3, 10, y), verbose=0)
    with pytest.raises(ValueError, match=r"class ids in \[0, 10\)"):
        model.fit(x, np.where(y == 3, -1, y), verbose=0)
    with pytest.raises(ValueError, match="no labels"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match="sample weights"):
        model.fit(x, y, sample_weight=np.ones(32), verbose=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="optimizer only"):
        model.fit(x, y, verbose=0)
