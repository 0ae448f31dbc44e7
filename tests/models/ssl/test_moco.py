"""MoCo v2: the queue (FIFO, wrap-around, what is enqueued), the loss wiring, the key network's BatchNorm, resume.

The shared contract (loss falls, .keras round trip, XLA, mixed precision, two
replicas = one device) is in ``tests/models/test_registered_methods.py``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.losses.test_infonce import reference_info_nce
from tfcontrast.models import MoCo

from ..checks import assert_checkpoint_resume_is_bit_exact, assert_resume_restores_state_bit_exactly
from .conftest import bn_encoder, fixed_views, mlp_encoder


def plain_bn_encoder(seed: int = 0) -> keras.Model:
    """An MLP with a per-replica (not synchronized) Keras BatchNorm."""
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    h = keras.layers.BatchNormalization()(keras.layers.Dense(32, kernel_initializer=init)(inputs))
    return keras.Model(inputs, keras.layers.ReLU()(h))


def moco(encoder=None, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    kwargs = {"projection_dim": 4, "hidden_dim": 16, "queue_size": 40, "tau_base": 0.9, "total_steps": 10, **kwargs}
    return MoCo(encoder if encoder is not None else bn_encoder(), **kwargs)


def target_keys(model, images):
    """The key network's keys of ``images`` (batch statistics), leaving its BatchNorm statistics as they were."""
    saved = [w.numpy() for w in model.target_encoder.weights + model.target_projector.weights]
    keys = model.keys(tf.constant(images), training=True).numpy()
    for w, value in zip(model.target_encoder.weights + model.target_projector.weights, saved):
        w.assign(value)
    return keys


# ------------------------------------------------------------------ queue


def test_the_queue_is_a_fifo_ring_that_wraps_around():
    model = moco(mlp_encoder(), queue_size=5)
    start = model.queue.numpy()
    ring, pointer = [row for row in start], 0  # the reference: one slot per row, written in arrival order
    counter = 0
    for n in (3, 3, 1, 7, 2, 5):  # crosses the end of the ring, then a batch larger than the ring
        keys = np.stack([np.full(4, counter + i, np.float32) for i in range(n)])
        counter += n
        model.enqueue(tf.constant(keys))
        for key in keys:
            ring[pointer] = key
            pointer = (pointer + 1) % 5
        np.testing.assert_array_equal(model.queue.numpy(), np.stack(ring))
        assert int(model.queue_pointer.numpy()) == pointer
    # after 21 keys the ring holds keys 16..20, the oldest (16) at the write position 21 mod 5 = 1
    np.testing.assert_array_equal(model.queue.numpy()[:, 0], [20, 16, 17, 18, 19])


def test_the_queue_starts_with_random_unit_vectors():
    a, b = moco(queue_size=64).queue.numpy(), moco(queue_size=64).queue.numpy()
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(a, b)  # a function of the seed
    assert np.abs(a.mean(axis=0)).max() < 0.35 and np.linalg.matrix_rank(a) == 4  # spread, not one direction
    keras.utils.set_random_seed(1)
    assert not np.array_equal(MoCo(bn_encoder(), projection_dim=4, hidden_dim=16, queue_size=64).queue.numpy(), a)


@pytest.mark.parametrize("symmetric", [False, True])
def test_a_step_enqueues_the_key_network_s_normalised_keys_of_the_batch(symmetric, digits_flat):
    v1, v2 = fixed_views(digits_flat[:8])
    model = moco(symmetric=symmetric, queue_size=20)
    model.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=True)
    model.train_on_batch(v1, v2)  # pointer 8 (asymmetric) or 16 (symmetric: the next 16 keys wrap around)
    before, pointer = model.queue.numpy(), int(model.queue_pointer.numpy())
    want = target_keys(model, np.concatenate([v1, v2]) if symmetric else v2)  # [k1; k2] or k2, before the update
    model.train_on_batch(v1, v2)
    rows = (pointer + np.arange(len(want))) % 20
    np.testing.assert_allclose(model.queue.numpy()[rows], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(model.queue.numpy()[rows], axis=1), 1.0, rtol=1e-5)
    untouched = np.setdiff1d(np.arange(20), rows)
    np.testing.assert_array_equal(model.queue.numpy()[untouched], before[untouched])
    assert int(model.queue_pointer.numpy()) == (pointer + len(want)) % 20


# ------------------------------------------------------------------- loss


@pytest.mark.parametrize("symmetric", [False, True])
def test_the_loss_is_info_nce_of_view_1_queries_against_view_2_keys_and_the_queue(symmetric, digits_flat):
    v1, v2 = fixed_views(digits_flat[:6])
    model = moco(symmetric=symmetric, temperature=0.3)
    model.queue.assign(tf.math.l2_normalize(tf.random.normal([40, 4], seed=3), axis=1))
    loss, projections, representations, extras = model.two_view_loss(tf.constant(v1), tf.constant(v2), False)

    def queries(v):
        return model.projector(model.encoder(v, training=False), training=False).numpy().astype(np.float64)

    def keys(v):
        return model.target_projector(model.target_encoder(v, training=False), training=False).numpy()

    queue = model.queue.numpy().astype(np.float64)
    want = reference_info_nce(queries(v1), keys(v2), queue, t=0.3)
    if symmetric:
        want = (want + reference_info_nce(queries(v2), keys(v1), queue, t=0.3)) / 2
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    assert projections.shape == (12 if symmetric else 6, 4) and representations.shape[0] == projections.shape[0]
    assert len(extras["keys"]) == (2 if symmetric else 1)


def test_neither_the_queue_nor_the_key_network_gets_a_gradient(digits_flat):
    v1, v2 = fixed_views(digits_flat[:8])
    model = moco()
    trainable = {id(v) for v in model.trainable_variables}
    frozen = [model.queue] + model.target_encoder.weights + model.target_projector.weights
    assert not trainable & {id(v) for v in frozen}
    with tf.GradientTape() as tape:
        loss = model.two_view_loss(tf.constant(v1), tf.constant(v2), True)[0]
    assert all(g is None for g in tape.gradient(loss, frozen))


def test_the_key_network_normalises_with_global_batch_statistics(digits_flat, two_replicas):
    """Shuffle BN's job, done by synchronized BatchNorm in the key network (the user's encoder is per-replica).

    Two replicas each holding half of the batch enqueue the keys one device
    computes with the statistics of the whole batch; with per-replica
    statistics the keys would differ.
    """
    model = moco(plain_bn_encoder())
    target_bn = [layer for layer in model.target_encoder.layers if isinstance(layer, keras.layers.BatchNormalization)]
    online_bn = [layer for layer in model.encoder.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert target_bn and all(layer.synchronized for layer in target_bn)
    assert not any(layer.synchronized for layer in online_bn)  # the user's own network is left as it is

    v1, v2 = fixed_views(digits_flat[:16])
    v2 = v2 + np.linspace(0, 3, 16, dtype=np.float32)[:, None]  # the two halves have different statistics
    single = moco(plain_bn_encoder())
    single.compile(optimizer=keras.optimizers.SGD(0.1))
    with two_replicas.scope():
        mirrored = moco(plain_bn_encoder())
        mirrored.compile(optimizer=keras.optimizers.SGD(0.1))
    mirrored.set_weights(single.get_weights())
    for model in (single, mirrored):
        model.fit(tf.data.Dataset.from_tensors((v1, v2)), verbose=0)
    want = single.queue.numpy()[:16]
    for copy in two_replicas.experimental_local_results(mirrored.queue.value):
        np.testing.assert_allclose(copy.numpy()[:16], want, rtol=1e-4, atol=1e-5)
    # per-replica statistics would have given other keys
    halves = [target_keys(moco(plain_bn_encoder()), v2[:8]), target_keys(moco(plain_bn_encoder()), v2[8:])]
    assert not np.allclose(np.concatenate(halves), want, atol=1e-3)


# ----------------------------------------------------------- resume, errors


def test_a_checkpoint_restores_the_queue_bit_exactly(digits_flat, tmp_path):
    v1, v2 = fixed_views(digits_flat[:64])

    def build(seed):
        model = moco(seed=seed)  # a queue of 40 rows, 16 keys a step: wraps around at step 3
        model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)  # no trace: fast
        return model

    def dataset(start, stop):
        return tf.data.Dataset.from_tensor_slices((v1[16 * start:16 * stop], v2[16 * start:16 * stop])).batch(16)

    state = assert_checkpoint_resume_is_bit_exact(build, dataset, ("queue", "queue_pointer", "step"), tmp_path)
    assert int(state["step"]) == 4 and int(state["queue_pointer"]) == 64 % 40


@pytest.mark.slow  # three runs of the job
def test_resume_through_the_job_restores_the_queue_bit_exactly(tmp_path):
    state = assert_resume_restores_state_bit_exactly("moco", tmp_path, ("queue", "queue_pointer", "step"))
    assert int(state["step"]) == 6 and int(state["queue_pointer"]) == (6 * 32) % 64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(queue_size=0), "queue_size"),
        (dict(queue_size=8.0), "queue_size"),
        (dict(symmetric="yes"), "symmetric"),
        (dict(temperature=0.0), "temperature"),
        (dict(mixing="mochi"), "mixing"),
        (dict(tau_base=1.0), "tau_base"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        moco(mlp_encoder(), **kwargs)
