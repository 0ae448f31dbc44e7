"""The fused BatchNormalization against keras.layers.BatchNormalization, and fuse_batch_norm.

Every comparison runs both layers from the same weights on the same inputs:
outputs and gradients (inputs, gamma, beta) must agree to 1e-5 of their
largest magnitude in float32, and to one unit in the last place of the half
type under mixed precision (two float32 computations rounded to float16 can
land one ulp apart); the moving statistics to 1e-5, and against a float64
NumPy reference written here with explicit loops.
"""

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.models import BatchNormalization, fuse_batch_norm

IMAGE = (6, 5, 5, 4)
FLAT = (12, 7)


def _pair(shape, seed=0, **kwargs):
    """(keras.layers.BatchNormalization, ours), built, holding the same random weights."""
    rng = np.random.default_rng(seed)
    layers = keras.layers.BatchNormalization(**kwargs), BatchNormalization(**kwargs)
    for layer in layers:
        layer.build(shape)
    values = [
        rng.normal(size=w.shape) if w.trainable else rng.uniform(0.5, 2.0, size=w.shape)
        for w in layers[0].weights
    ]
    for layer in layers:
        layer.set_weights([v.astype("float32") for v in values])
    return layers


def _inputs(shape, seed=1, mean=1.0, std=2.0):
    return tf.constant(np.random.default_rng(seed).normal(mean, std, size=shape).astype("float32"))


def _forward_backward(layer, training, jit=False):
    """A tf.function returning [y, dL/dx, dL/dgamma, dL/dbeta] for L = sum(y sin y) (float32)."""

    @tf.function(jit_compile=jit)
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            y32 = tf.cast(y, tf.float32)
            loss = tf.reduce_sum(y32 * tf.sin(y32))
        return [y] + tape.gradient(loss, [x] + layer.trainable_weights)

    return run


def _assert_close(got, expected, rtol, what):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape, what
    scale = max(np.abs(expected).max(), 1e-12)
    assert np.abs(got - expected).max() <= rtol * scale, f"{what}: {np.abs(got - expected).max() / scale:.2e}"


def _op_types(layer, x, training=True):
    graph = _forward_backward(layer, training).get_concrete_function(tf.TensorSpec(x.shape, x.dtype)).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("shape", [IMAGE, FLAT], ids=["4d", "2d"])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"scale": False}, {"center": False, "momentum": 0.9, "epsilon": 2e-5}],
    ids=["default", "no-scale", "no-center"],
)
@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
def test_values_and_gradients_match_keras(shape, kwargs, training):
    reference, fused = _pair(shape, **kwargs)
    x = _inputs(shape)
    expected = _forward_backward(reference, training)(x)
    got = _forward_backward(fused, training)(x)
    for name, g, e in zip(["y", "dx", "dgamma/dbeta", "dbeta"], got, expected):
        _assert_close(g, e, 1e-5, name)
    for g, e in zip(fused.weights, reference.weights):
        _assert_close(g.numpy(), e.numpy(), 1e-5, g.name)


@pytest.mark.parametrize("shape", [IMAGE, FLAT], ids=["4d", "2d"])
def test_the_fused_kernel_runs_forward_and_backward(shape):
    ops = _op_types(BatchNormalization(), tf.zeros(shape))
    assert {"FusedBatchNormV3", "FusedBatchNormGradV3"} <= ops
    assert "Mean" not in ops  # no separate moments
    assert "FusedBatchNormV3" not in _op_types(keras.layers.BatchNormalization(), tf.zeros(shape))


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((6, 5, 4), {}),  # rank 3
        (IMAGE, {"axis": 1}),  # channels first
        (IMAGE, {"renorm": True}),
        (IMAGE, {"epsilon": 1e-6}),  # below cuDNN's minimum
    ],
    ids=["rank3", "axis1", "renorm", "tiny-epsilon"],
)
def test_other_cases_run_keras_code_with_keras_results(shape, kwargs):
    reference, fused = _pair(shape, **kwargs)
    x = _inputs(shape)
    assert not fused.fuses(x)
    assert "FusedBatchNormV3" not in _op_types(fused, x)
    for g, e in zip(_forward_backward(fused, True)(x), _forward_backward(reference, True)(x)):
        np.testing.assert_array_equal(g, e)


def _numpy_moving_statistics(batches, momentum):
    """Keras' rule in float64 with explicit loops: biased batch variance per channel."""
    channels = batches[0].shape[-1]
    mean, var = np.zeros(channels), np.ones(channels)
    for batch in batches:
        values = np.asarray(batch, np.float64).reshape(-1, channels)
        for c in range(channels):
            column = values[:, c]
            mu = sum(column) / len(column)
            sigma2 = sum((v - mu) ** 2 for v in column) / len(column)
            mean[c] = momentum * mean[c] + (1 - momentum) * mu
            var[c] = momentum * var[c] + (1 - momentum) * sigma2
    return mean, var


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("shape", [IMAGE, FLAT], ids=["4d", "2d"])
def test_moving_statistics_after_several_steps(shape, jit):
    """Batches with different means and spreads; the kernel's Bessel factor must be undone."""
    momentum = 0.8
    reference, fused = keras.layers.BatchNormalization(momentum=momentum), BatchNormalization(momentum=momentum)
    batches = [_inputs(shape, seed=s, mean=s - 2.0, std=0.5 + s) for s in range(4)]
    steps = {layer: _forward_backward(layer, True, jit) for layer in (reference, fused)}
    for x in batches:
        for layer, step in steps.items():
            step(x)
    expected_mean, expected_var = _numpy_moving_statistics(batches, momentum)
    _assert_close(fused.moving_mean.numpy(), expected_mean, 1e-5, "moving_mean vs NumPy")
    _assert_close(fused.moving_variance.numpy(), expected_var, 1e-5, "moving_variance vs NumPy")
    _assert_close(fused.moving_mean.numpy(), reference.moving_mean.numpy(), 1e-5, "moving_mean vs Keras")
    _assert_close(fused.moving_variance.numpy(), reference.moving_variance.numpy(), 1e-5, "moving_variance")


@pytest.mark.parametrize("shape", [IMAGE, FLAT], ids=["4d", "2d"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
def test_xla_values_and_gradients_match_keras(shape, training):
    reference, fused = _pair(shape)
    x = _inputs(shape)
    expected = _forward_backward(reference, training, jit=True)(x)
    for name, g, e in zip(["y", "dx", "dgamma", "dbeta"], _forward_backward(fused, training, jit=True)(x), expected):
        _assert_close(g, e, 1e-5, name)
    for g, e in zip(fused.weights, reference.weights):
        _assert_close(g.numpy(), e.numpy(), 1e-5, g.name)


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def half_policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("shape", [IMAGE, FLAT], ids=["4d", "2d"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
def test_mixed_precision_matches_keras(half_policy, shape, training, jit):
    reference, fused = _pair(shape)
    half = keras.mixed_precision.global_policy().compute_dtype
    ulp = float(np.finfo(ml_dtypes.bfloat16 if half == "bfloat16" else np.float16).eps)
    x = _inputs(shape)
    assert fused.fuses(tf.cast(x, half))
    expected = _forward_backward(reference, training, jit)(x)
    got = _forward_backward(fused, training, jit)(x)
    assert got[0].dtype == expected[0].dtype == half
    for name, g, e in zip(["y", "dx", "dgamma", "dbeta"], got, expected):
        _assert_close(tf.cast(g, tf.float32), tf.cast(e, tf.float32), ulp, name)
    for g, e in zip(fused.weights, reference.weights):
        assert g.dtype == e.dtype == "float32"
        _assert_close(g.numpy(), e.numpy(), 1e-5, g.name)


def _per_replica(strategy, layer, x):
    """Runs ``layer(training=True)`` on two halves of x, one per replica; returns the concatenated outputs."""
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: x[ctx.replica_id_in_sync_group * (len(x) // 2):][: len(x) // 2]
    )
    fused = []

    @tf.function
    def run(values):
        def step(v):
            if isinstance(layer, BatchNormalization):
                fused.append(layer.fuses(v))
            return layer(v, training=True)

        return strategy.run(step, args=(values,))

    outputs = strategy.experimental_local_results(run(values))
    return np.concatenate([o.numpy() for o in outputs]), fused


@pytest.mark.parametrize("synchronized", [True, False], ids=["synchronized", "per-replica"])
def test_under_two_replicas(two_replicas, synchronized):
    """Synchronized statistics over two replicas stay Keras' (global); per-replica ones are fused."""
    x = np.random.default_rng(2).normal(size=IMAGE[:1] + (3, 3, 4)).astype("float32")
    x[len(x) // 2:] += 4.0  # the replicas' halves differ: global and local statistics disagree
    with two_replicas.scope():
        reference, fused = (cls(synchronized=synchronized, center=False, scale=False)
                            for cls in (keras.layers.BatchNormalization, BatchNormalization))
        for layer in (reference, fused):
            layer.build(x.shape)
    got, fused_calls = _per_replica(two_replicas, fused, x)
    expected, _ = _per_replica(two_replicas, reference, x)
    assert set(fused_calls) == {not synchronized}
    _assert_close(got, expected, 1e-5, "outputs")
    _assert_close(fused.moving_mean.numpy(), reference.moving_mean.numpy(), 1e-5, "moving_mean")
    _assert_close(fused.moving_variance.numpy(), reference.moving_variance.numpy(), 1e-5, "moving_variance")
    groups = [x] if synchronized else np.split(x, 2)  # the batch whose statistics each row sees
    normalised = [(g - g.mean(axis=(0, 1, 2))) / np.sqrt(g.var(axis=(0, 1, 2)) + 1e-3) for g in groups]
    _assert_close(got, np.concatenate(normalised), 1e-5, "vs NumPy")


def test_a_non_trainable_layer_runs_in_inference_mode_and_a_frozen_one_with_batch_statistics():
    """Keras' semantics, which the EMA target of BYOL relies on (models/ssl/momentum.py)."""
    x = _inputs(IMAGE)
    reference, fused = _pair(IMAGE)
    for layer in (reference, fused):
        layer.trainable = False
    before = [w.numpy() for w in fused.weights]
    _assert_close(fused(x, training=True), fused(x, training=False), 1e-6, "frozen = inference")
    _assert_close(fused(x, training=True), reference(x, training=True), 1e-5, "as Keras")
    for b, w in zip(before, fused.weights):
        np.testing.assert_array_equal(b, w.numpy())
    # trainable layer, non-trainable variables: batch statistics, moving statistics still move
    for layer in (reference, fused):
        layer.trainable = True
        for variable in layer.variables:
            variable.trainable = False
    assert fused.trainable_weights == []
    y = fused(x, training=True).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), fused.beta.numpy(), atol=1e-5)
    _assert_close(y, reference(x, training=True), 1e-5, "as Keras")
    _assert_close(fused.moving_mean.numpy(), reference.moving_mean.numpy(), 1e-5, "moving_mean")
    assert not np.allclose(fused.moving_mean.numpy(), before[2])


def test_variables_and_config_are_keras_and_round_trip():
    reference, fused = _pair(IMAGE, momentum=0.9, center=False)
    assert [(w.name, w.shape, w.dtype, w.trainable) for w in fused.weights] == [
        (w.name, w.shape, w.dtype, w.trainable) for w in reference.weights
    ]
    config = fused.get_config()
    assert config.keys() == reference.get_config().keys()
    assert {k: v for k, v in config.items() if k != "name"} == {
        k: v for k, v in reference.get_config().items() if k != "name"
    }
    assert keras.saving.serialize_keras_object(fused)["registered_name"] == "tfcontrast>BatchNormalization"
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(fused))
    assert type(clone) is BatchNormalization and clone.get_config() == config


def _cnn(batch_norm, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE[1:])
    h = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    h = batch_norm()(h)
    h = keras.Sequential([keras.layers.Dense(6), batch_norm()], name="head")(keras.layers.Flatten()(h))
    return keras.Model(inputs, h)


@pytest.mark.parametrize("direction", ["keras->fused", "fused->keras"])
def test_weights_files_load_across_the_two_classes(tmp_path, direction):
    source, target = _cnn(keras.layers.BatchNormalization, 0), _cnn(BatchNormalization, 1)
    if direction == "fused->keras":
        source, target = _cnn(BatchNormalization, 0), _cnn(keras.layers.BatchNormalization, 1)
    x = _inputs(IMAGE)
    source(x, training=True)  # move the moving statistics off their initial values
    source.save_weights(tmp_path / "w.weights.h5")
    target.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    _assert_close(target(x, training=False), source(x, training=False), 1e-5, "outputs")


def test_a_saved_model_keeps_the_fused_class(tmp_path):
    model = _cnn(BatchNormalization)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    kinds = [type(layer) for layer in loaded._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert kinds == [BatchNormalization] * 2


class _ScaledBatchNorm(keras.layers.BatchNormalization):
    """A user's own BatchNorm subclass: fuse_batch_norm must leave it alone."""


def test_fuse_batch_norm_swaps_every_batch_norm_and_copies_the_weights():
    inputs = keras.Input(IMAGE[1:])
    h = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9)(h)
    h = _ScaledBatchNorm()(h)
    h = keras.Sequential([keras.layers.Dense(6), keras.layers.BatchNormalization(scale=False)], name="head")(
        keras.layers.Flatten()(h)
    )
    model = keras.Model(inputs, h)
    x = _inputs(IMAGE)
    model(x, training=True)  # non-initial moving statistics
    fused = fuse_batch_norm(model)

    def kinds(m):
        return [type(layer) for layer in m._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]

    assert kinds(fused) == [BatchNormalization, _ScaledBatchNorm, BatchNormalization]
    assert kinds(model) == [keras.layers.BatchNormalization, _ScaledBatchNorm, keras.layers.BatchNormalization]
    for a, b in zip(model.weights, fused.weights):
        assert a is not b and a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    _assert_close(fused(x, training=False), model(x, training=False), 1e-5, "inference")
    _assert_close(fused(x, training=True), model(x, training=True), 1e-5, "training")
    _assert_close(fused.weights[-1].numpy(), model.weights[-1].numpy(), 1e-5, "moving statistics")


def test_fuse_batch_norm_refuses_subclassed_models():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.bn = keras.layers.BatchNormalization()

        def call(self, x):
            return self.bn(x)

    with pytest.raises(TypeError, match="subclassed"):
        fuse_batch_norm(Net())
    with pytest.raises(TypeError, match="model"):
        fuse_batch_norm(keras.layers.BatchNormalization())
