"""MoCHi's hard negative mixing: the definition (checked against a loop reference), hardness, no gradient, the start step."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import config as config_lib, losses
from tfcontrast.jobs import components
from tfcontrast.models import HardNegativeMixing, MoCo

from ...tiny_configs import tiny_config
from ..checks import assert_checkpoint_resume_is_bit_exact, assert_resume_restores_state_bit_exactly
from .conftest import bn_encoder, fixed_views


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def mochi(start_step=0, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    mixing = HardNegativeMixing(num_mixed=12, num_query_mixed=6, top_k=8, start_step=start_step)
    return MoCo(bn_encoder(), projection_dim=8, hidden_dim=16, queue_size=48, tau_base=0.9, total_steps=20,
                mixing=mixing, **kwargs)


def trained(model, digits, steps=6):
    v1, v2 = fixed_views(digits[:32])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), run_eagerly=True)
    for _ in range(steps):
        model.train_on_batch(v1, v2)
    return tf.constant(v1), tf.constant(v2)


def best_fit(h, a, b):
    """``(residual, weight of a)`` of the unit vector ``h`` as a positive mixture ``c (w a + (1 - w) b)``."""
    basis = np.stack([a, b], axis=1)
    coef, *_ = np.linalg.lstsq(basis, h, rcond=None)
    residual = np.linalg.norm(basis @ coef - h)
    return residual, (coef[0] / coef.sum() if coef.sum() > 0 else -1.0)


def test_synthetic_negatives_are_the_paper_s_mixtures_of_the_hardest_queue_entries(rng):
    queue = unit(rng.normal(size=(30, 5)))
    queries = unit(rng.normal(size=(4, 5)))
    mixing = HardNegativeMixing(num_mixed=10, num_query_mixed=6, top_k=5)
    negatives = mixing.negatives(tf.constant(queries * 2.0, tf.float32), tf.constant(queue, tf.float32),
                                 seed=tf.constant(7, tf.int64), step=tf.constant(3, tf.int64)).numpy()
    assert negatives.shape == (4, 16, 5)
    np.testing.assert_allclose(np.linalg.norm(negatives, axis=2), 1.0, rtol=1e-5)
    alphas, betas = [], []
    for i, q in enumerate(queries):
        similarity = [float(q @ n) for n in queue]
        hardest = sorted(range(30), key=lambda j: -similarity[j])[:5]  # the top-k, by a loop
        for h in negatives[i, :10]:  # h = normalise(a n_i + (1 - a) n_j), n_i, n_j among the hardest, a in (0, 1)
            fits = [best_fit(h, queue[a], queue[b]) if a != b else (np.linalg.norm(h - queue[a]), 0.5)
                    for a, b in itertools.combinations_with_replacement(hardest, 2)]
            residual, alpha = min(fits)  # (n_i = n_j gives h = n_i: any pair holding n_i fits, with a weight 0 or 1)
            assert residual < 1e-5 and -1e-6 < alpha < 1.0 + 1e-6, (residual, alpha)
            alphas.append(alpha)
        for h in negatives[i, 10:]:  # h = normalise(b q + (1 - b) n_j), n_j among the hardest, b in (0, 0.5)
            residual, beta = min(best_fit(h, q, queue[j]) for j in hardest)
            assert residual < 1e-5 and 0.0 < beta < 0.5, (residual, beta)
            betas.append(beta)
    assert np.std(alphas) > 0.1 and np.std(betas) > 0.05  # drawn, not constant


def test_draws_are_a_pure_function_of_seed_step_and_stream(rng):
    queue = tf.constant(unit(rng.normal(size=(20, 4))), tf.float32)
    q = tf.constant(rng.normal(size=(3, 4)), tf.float32)
    mixing = HardNegativeMixing(num_mixed=4, num_query_mixed=2, top_k=6)

    def draw(seed, step, stream=0):
        return mixing.negatives(q, queue, tf.constant(seed, tf.int64), tf.constant(step, tf.int64), stream).numpy()

    np.testing.assert_array_equal(draw(1, 5), draw(1, 5))
    for other in (draw(2, 5), draw(1, 6), draw(1, 5, stream=1)):
        assert not np.allclose(other, draw(1, 5))


def test_mixed_negatives_are_harder_than_the_queue_and_raise_the_loss(digits_flat):
    model = mochi()
    v1, v2 = trained(model, digits_flat)
    queries = tf.math.l2_normalize(model.projector(model.encoder(v1, training=False)), axis=1)
    queue = tf.convert_to_tensor(model.queue)
    synthetic = model.mixing.negatives(queries, queue, model.sample_seed, model.step)
    added = float(tf.reduce_mean(tf.einsum("nd,nmd->nm", queries, synthetic)))
    queue_mean = float(tf.reduce_mean(queries @ tf.transpose(queue)))
    assert added > queue_mean + 0.1, (added, queue_mean)

    mixed = float(model.two_view_loss(v1, v2, training=False)[0])
    mixing, model.mixing = model.mixing, None  # the same weights, queue and batch without mixing
    plain = float(model.two_view_loss(v1, v2, training=False)[0])
    model.mixing = mixing
    assert mixed > plain + 0.01, (mixed, plain)


def test_no_gradient_flows_through_the_synthetic_negatives(digits_flat):
    model = mochi()
    v1, v2 = trained(model, digits_flat, steps=2)
    q = tf.Variable(model.projector(model.encoder(v1, training=False)))
    keys, queue = model.keys(v2, training=False), tf.convert_to_tensor(model.queue)
    with tf.GradientTape(persistent=True) as tape:
        through_model = model.contrast(q, keys, queue)
        frozen = losses.info_nce_loss(
            q, keys, queue, tf.constant(model.mixing.negatives(q, queue, model.sample_seed, model.step)), 0.2
        )
        plain = losses.info_nce_loss(q, keys, queue, temperature=0.2)
    np.testing.assert_allclose(float(through_model), float(frozen), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(through_model, q).numpy(), tape.gradient(frozen, q).numpy(),
                               rtol=1e-5, atol=1e-7)
    # the query still gets the gradient of its synthetic logits
    assert not np.allclose(tape.gradient(through_model, q).numpy(), tape.gradient(plain, q).numpy(), atol=1e-6)


def test_no_mixing_before_the_start_step(digits_flat):
    model = mochi(start_step=3)
    v1, v2 = fixed_views(digits_flat[:32])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), run_eagerly=True)
    for step in range(5):
        assert int(model.step) == step
        mixed = float(model.two_view_loss(tf.constant(v1), tf.constant(v2), False)[0])
        mixing, model.mixing = model.mixing, None
        plain = float(model.two_view_loss(tf.constant(v1), tf.constant(v2), False)[0])
        model.mixing = mixing
        if step < 3:
            assert mixed == plain
        else:
            assert mixed > plain
        model.train_on_batch(v1, v2)


# ------------------------------------------------------- registration, state


def test_the_registered_method_builds_moco_with_its_mixing():
    config = tiny_config("mochi")
    model = components.build_model(config, components.build_encoder(config, (8, 8, 1)), (8, 8, 1))
    assert type(model) is MoCo and model.mixing.get_config() == {
        "num_mixed": 16, "num_query_mixed": 4, "top_k": 16, "start_step": 0,
    }
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model.mixing))
    assert isinstance(restored, HardNegativeMixing) and restored.get_config() == model.mixing.get_config()
    with pytest.raises(config_lib.ConfigError, match=r"config\.model\.top_k: must be <= model\.queue_size \(64\)"):
        tiny_config("mochi", **{"model.top_k": 65})


@pytest.mark.slow  # the queue's restore is MoCo's (test_moco), the seed's is PIRL's (test_pirl)
def test_a_checkpoint_restores_the_queue_and_the_draws_bit_exactly(digits_flat, tmp_path):
    v1, v2 = fixed_views(digits_flat[:64])

    def build(seed):
        model = mochi(seed=seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)  # no trace: fast
        return model

    def dataset(start, stop):
        return tf.data.Dataset.from_tensor_slices((v1[16 * start:16 * stop], v2[16 * start:16 * stop])).batch(16)

    assert_checkpoint_resume_is_bit_exact(build, dataset, ("queue", "queue_pointer", "sample_seed", "step"), tmp_path)


@pytest.mark.slow  # three runs of the job
def test_resume_through_the_job_restores_the_queue_and_the_draws_bit_exactly(tmp_path):
    assert_resume_restores_state_bit_exactly("mochi", tmp_path, ("queue", "queue_pointer", "sample_seed", "step"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_mixed=-1), "num_mixed"),
        (dict(num_query_mixed=1.5), "num_query_mixed"),
        (dict(top_k=0), "top_k"),
        (dict(start_step=-2), "start_step"),
        (dict(num_mixed=0, num_query_mixed=0), "must be >= 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HardNegativeMixing(**kwargs)


def test_top_k_beyond_the_queue_is_refused():
    with pytest.raises(ValueError, match=r"`top_k` \(8\) must be <= the queue size \(4\)"):
        MoCo(bn_encoder(), projection_dim=4, hidden_dim=8, queue_size=4, mixing=HardNegativeMixing(4, 2, top_k=8))
