"""The contract every registered method satisfies, checked on each one from its registration alone.

Each method is built the way ``tfcontrast train`` builds it
(:func:`tfcontrast.jobs.components.build_model` on ``base(method)`` with the
method's and its batch kind's registered ``example`` values), with a tiny MLP
encoder, and trained on the batches of its registered batch kind
(:func:`tfcontrast.jobs.inputs.training_stream` on the bundled digits). A new
method gets these tests by registering itself: nothing here names a method.
The XLA and bfloat16 variants are marked slow (``pytest -m slow`` runs them).
"""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import registry
from tfcontrast.jobs import components, inputs

from ..tiny_configs import IMAGE_METHODS, tiny_config

METHODS = IMAGE_METHODS
SHAPE = (8, 8, 1)
TRAIN_STEPS = 80


def config_of(name: str, steps: int = TRAIN_STEPS + 1):
    """The method's tiny config on a small MLP encoder (fast under every policy and strategy)."""
    return tiny_config(name, steps=steps, **{"encoder.name": "mlp", "encoder.widths": (32, 16),
                                             "train.steps_per_epoch": 1})


@pytest.fixture(scope="module")
def run_data():
    return inputs.load_split(config_of(METHODS[0]))


_STREAMS: dict = {}


def batches(name: str, run_data) -> list:
    """The first ``TRAIN_STEPS + 1`` batches of the method's training stream (augmented as in a run).

    Built once per batch kind (the pipeline's first batches take seconds to
    trace), seeded first as in a run, where the model is built (and seeded)
    before the stream: its shuffle and view seeds combine with TensorFlow's
    global seed.
    """
    kind = registry.methods.get(name).batch
    if kind not in _STREAMS:
        config = config_of(name)
        policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("float32")  # float32 images, whatever the test's policy
        try:
            keras.utils.set_random_seed(config.seed)
            views = inputs.augmentation(config, run_data.input_shape)
            _STREAMS[kind] = list(inputs.training_stream(config, run_data, views))
        finally:
            keras.mixed_precision.set_global_policy(policy)
    return _STREAMS[kind]


def build(config, optimizer, jit_compile=False, strategy=None):
    """The job's model (seeded by ``config.seed``), recompiled with ``optimizer`` and the job's loss."""
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        keras.utils.set_random_seed(config.seed)
        model = components.build_model(config, components.build_encoder(config, SHAPE), SHAPE, num_classes=10)
        model.compile(optimizer=optimizer, loss=model.loss, jit_compile=jit_compile)
    return model


def one(batch) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensors(batch)


def stacked(stream: list) -> tf.data.Dataset:
    """The batches of ``stream`` as a dataset, one element per batch."""
    return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda *b: tf.stack(b), *stream))


# Known limitation, kept visible (strict: the test fails once it passes): VICReg's held-out loss in
# inference mode, with BatchNorm's moving statistics after only 80 steps, does not fall (0.905 -> 0.908)
# although the same held-out batch in training mode falls 1.21 -> 0.85 (tested below).
INFERENCE_MODE_FLAT = {"vicreg"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="inference-mode BN statistics after 80 steps"))
        if n in INFERENCE_MODE_FLAT
        else n
        for n in METHODS
    ],
)
def test_a_few_dozen_steps_lower_the_loss_on_a_held_out_batch(name, run_data):
    """80 steps of the method's own stream lower its loss on the next, unseen batch.

    The reference is the same model after the same 80 steps at learning rate
    0: nothing learned, but every piece of state a step fills besides the
    weights (BatchNorm statistics, MoCo's queue, PIRL's memory bank and noise
    level) filled from the same stream. Against the untrained model a
    method with a queue or a memory would compare its trained loss, whose
    negatives are real keys, with a loss against the random unit vectors the
    queue starts with (MoCo 1.74 at step 0, 4.41 after the lr-0 steps).

    By at least 2.5% of max(|loss|, 1): on this seeded setting (lr 0 -> lr
    3e-3) SimCLR 4.90 -> 4.08 (NT-Xent, log 63 = 4.14 at chance), BYOL 4.60 ->
    2.19, SimSiam -0.02 -> -0.21, MoCo 4.41 -> 4.17, PIRL 81 -> 16, triplet
    0.95 -> 0.90, contrastive 0.51 -> 0.27. The momentum methods register a
    fast target (tau_base 0.9) as their example: 0.99 barely moves the target
    in so few steps.
    """
    config = config_of(name)
    stream = batches(name, run_data)
    train, held_out = stream[:TRAIN_STEPS], one(stream[TRAIN_STEPS])
    losses = []
    for learning_rate in (0.0, 3e-3):
        model = build(config, keras.optimizers.Adam(learning_rate))
        model.fit(stacked(train), verbose=0)
        losses.append(model.evaluate(held_out, verbose=0, return_dict=True)["loss"])
    before, after = losses
    assert np.isfinite(after) and after < before - 0.025 * max(abs(before), 1.0), (before, after)


@pytest.mark.parametrize("name", sorted(INFERENCE_MODE_FLAT))
def test_the_held_out_loss_with_batch_statistics_falls(name, run_data):
    """For the methods above: the same 80 steps, the held-out batch scored with batch statistics."""
    config = config_of(name)
    stream = batches(name, run_data)
    held_out = stream[TRAIN_STEPS]
    losses = []
    for learning_rate in (0.0, 3e-3):
        model = build(config, keras.optimizers.Adam(learning_rate))
        model.fit(stacked(stream[:TRAIN_STEPS]), verbose=0)
        views, inputs_ = model.batch_inputs(held_out)
        losses.append(float(model.multi_view_loss(views, training=True, **inputs_)[0]))
    before, after = losses
    assert np.isfinite(after) and after < before - 0.025 * max(abs(before), 1.0), (before, after)


@pytest.mark.parametrize("name", METHODS)
def test_a_keras_file_round_trip_gives_the_same_embeddings(name, run_data, tmp_path):
    config = config_of(name, steps=3)
    model = build(config, keras.optimizers.Adam(1e-3))
    model.fit(one(batches(name, run_data)[0]), verbose=0)  # weights and optimizer state away from the start
    spec = registry.methods.get(name)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is spec.model
    x = run_data.x_test[:16]
    want = spec.embedder(model)(x, training=False).numpy()
    np.testing.assert_allclose(spec.embedder(loaded)(x, training=False).numpy(), want, rtol=1e-6, atol=1e-6)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # it can train on where it stopped: the same compiled loss and optimizer state
    assert type(loaded.loss) is type(model.loss)
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables) > 2
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.slow  # an XLA compilation per method
@pytest.mark.parametrize("name", METHODS)
def test_jit_compiled_steps_match_the_graph_steps(name, run_data):
    config = config_of(name, steps=2)
    stream = batches(name, run_data)[:2]
    results = []
    for jit in (False, True):
        model = build(config, keras.optimizers.SGD(0.1), jit_compile=jit)
        logs = model.fit(stacked(stream), verbose=0, epochs=2, steps_per_epoch=1).history["loss"]
        results.append((logs, [w.numpy() for w in model.weights]))
    (graph_logs, graph_w), (xla_logs, xla_w) = results
    np.testing.assert_allclose(xla_logs, graph_logs, rtol=1e-4, atol=1e-5)
    for g, x in zip(graph_w, xla_w):
        np.testing.assert_allclose(x, g, rtol=1e-3, atol=1e-5)


@pytest.fixture(params=["mixed_float16", pytest.param("mixed_bfloat16", marks=pytest.mark.slow)])
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", METHODS)
def test_trains_under_mixed_precision_with_a_finite_loss(name, run_data, policy):
    """float16 with dynamic loss scaling (Keras wraps the optimizer); bfloat16 needs none."""
    config = config_of(name, steps=2)
    model = build(config, keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    before = [w.numpy() for w in model.encoder.trainable_weights]
    history = model.fit(stacked(batches(name, run_data)[:2]), verbose=0)
    assert all(np.isfinite(v) for values in history.history.values() for v in values)
    assert model.encoder.compute_dtype == policy.split("_")[1] and model.encoder.variable_dtype == "float32"
    for w in model.weights:
        assert np.all(np.isfinite(w.numpy())), w.path
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(before, model.encoder.trainable_weights))


@pytest.mark.parametrize("name", METHODS)
def test_two_replicas_equal_one_device_after_a_step_on_the_global_batch(name, run_data, two_replicas):
    config = config_of(name, steps=1)
    batch = batches(name, run_data)[0]
    single = build(config, keras.optimizers.SGD(0.5))
    mirrored = build(config, keras.optimizers.SGD(0.5), strategy=two_replicas)
    mirrored.set_weights(single.get_weights())
    results = []
    for model in (single, mirrored):
        history = model.fit(one(batch), epochs=1, verbose=0)
        results.append((history.history["loss"][0], model.get_weights()))
    (loss_1, w_1), (loss_2, w_2) = results
    assert loss_2 == pytest.approx(loss_1, rel=1e-5, abs=1e-6)
    for a, b in zip(w_1, w_2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    # and the replicas hold the same values
    for w in mirrored.weights:
        copies = two_replicas.experimental_local_results(w.value)
        np.testing.assert_array_equal(copies[0].numpy(), copies[1].numpy(), err_msg=w.path)


def test_every_method_names_a_registered_batch_kind_and_loss():
    for spec in registry.methods:
        assert spec.batch in registry.batch_kinds, spec.name
        if spec.loss is not None:
            assert registry.losses.get(spec.default_loss).inputs == spec.loss, spec.name
        assert set(spec.example) <= set(spec.fields), spec.name
