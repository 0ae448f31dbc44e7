"""SwAV (tfcontrast/models/ssl/swav.py): the multi-crop loss, frozen and renormalised prototypes, the queue."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.losses import sinkhorn
from tfcontrast.models import SwAV
from tfcontrast.models.encoders import any_resolution, digits_cnn

B, LARGE, SMALL = 16, 2, 3


def crops(seed: int = 0) -> tuple:
    """2 large 8x8 and 3 small 5x5 views of the same B images (random pixels: only the arithmetic matters)."""
    rng = np.random.default_rng(seed)
    return tuple(rng.random((B, s, s, 1), dtype=np.float32) for s in [8] * LARGE + [5] * SMALL)


def swav(**kwargs) -> SwAV:
    keras.utils.set_random_seed(0)
    encoder = any_resolution(digits_cnn((8, 8, 1), features=16, width=4))
    return SwAV(encoder, projection_dim=8, hidden_dim=16, num_prototypes=6, **kwargs)


def large_crop_projections(model: SwAV, views) -> list:
    """Normalised projections of the large crops, recomputed as a step does (training mode, one pass per size)."""
    reps = [model.encoder(tf.concat(views[:LARGE], 0), training=True),
            model.encoder(tf.concat(views[LARGE:], 0), training=True)]
    z = tf.math.l2_normalize(model.projector(tf.concat(reps, 0), training=True), axis=1).numpy()
    return np.split(z, LARGE + SMALL)[:LARGE], z


@pytest.fixture(scope="module")
def model():
    return swav(temperature=0.5, epsilon=0.3)


def test_every_crop_predicts_the_code_of_every_other_large_crop(model):
    """Codes from the 2 large crops only; each is predicted by the other 4 crops: 8 (code, prediction) pairs."""
    views = crops()
    loss = float(model.multi_view_loss(views, training=True)[0])
    _, z = large_crop_projections(model, views)
    scores = np.split(z.astype(np.float64) @ model.prototypes.numpy().astype(np.float64), LARGE + SMALL)
    codes = [sinkhorn(tf.constant(scores[c], tf.float32), 0.3, 3).numpy().astype(np.float64) for c in range(LARGE)]
    total, pairs = 0.0, 0
    for c in range(LARGE):
        for v in range(LARGE + SMALL):
            if v == c:
                continue
            for b in range(B):
                logits = [s / 0.5 for s in scores[v][b]]
                log_norm = math.log(sum(math.exp(x) for x in logits))
                total += -sum(q * (x - log_norm) for q, x in zip(codes[c][b], logits)) / B
            pairs += 1
    assert pairs == 8
    assert loss == pytest.approx(total / pairs, rel=1e-5)


def test_two_view_batches_work_and_too_few_views_are_refused(model):
    views = crops()
    assert np.isfinite(float(model.multi_view_loss(views[:2], training=False)[0]))
    with pytest.raises(ValueError, match="at least 3 views"):
        SwAV(model.encoder, projection_dim=8, hidden_dim=16, num_prototypes=6, large_crops=3).multi_view_loss(
            views[:2], training=False
        )


def test_prototypes_are_frozen_first_then_trained_and_kept_unit_length():
    model = swav(freeze_prototypes_steps=2)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    initial = model.prototypes.numpy()
    batches = [crops(seed) for seed in range(4)]
    for views in batches[:2]:
        logs = model.train_on_batch(views, return_dict=True)
    np.testing.assert_array_equal(model.prototypes.numpy(), initial)
    assert 0.0 <= logs["proto_entropy"] <= math.log(6) + 1e-6 and np.isfinite(logs["loss"])
    for views in batches[2:]:
        model.train_on_batch(views)
    assert int(model.step.numpy()) == 4
    assert np.abs(model.prototypes.numpy() - initial).max() > 1e-4
    np.testing.assert_allclose(np.linalg.norm(model.prototypes.numpy(), axis=0), 1.0, atol=1e-6)


def test_the_queue_keeps_the_newest_large_crop_projections_first():
    model = swav(queue_size=40)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # weights fixed: the projections can be recomputed
    seen = []
    for seed in range(3):
        views = crops(seed)
        model.train_on_batch(views)
        seen.insert(0, large_crop_projections(model, views)[0])
        filled = int(model.queue_filled.numpy())
        assert filled == min(40, B * (seed + 1))
        queue = model.queue.numpy()
        for c in range(LARGE):
            want = np.concatenate([z[c] for z in seen])[:40]
            np.testing.assert_allclose(queue[c, : len(want)], want, atol=1e-5)
            assert not queue[c, len(want):].any()
    # the full queue joins the Sinkhorn problem; an empty one (nothing filled yet) is no queue at all
    views = crops(5)
    with_queue = float(model.multi_view_loss(views, training=True)[0])
    model.queue_filled.assign(0)
    empty = float(model.multi_view_loss(views, training=True)[0])
    assert empty == pytest.approx(float(swav().multi_view_loss(views, training=True)[0]), rel=1e-6)
    assert abs(with_queue - empty) > 1e-4


def test_config_round_trip_and_bad_arguments(model):
    config = model.get_config()
    assert {k: config[k] for k in ("num_prototypes", "temperature", "epsilon", "queue_size")} == {
        "num_prototypes": 6, "temperature": 0.5, "epsilon": 0.3, "queue_size": 0}
    with pytest.raises(ValueError, match="num_prototypes"):
        SwAV(model.encoder, num_prototypes=1)
    with pytest.raises(ValueError, match="epsilon"):
        SwAV(model.encoder, epsilon=0.0)


@pytest.mark.slow  # a MirroredStrategy trace of a multi-resolution step
def test_multi_crop_steps_on_two_replicas_equal_one_device(two_replicas):
    """Sinkhorn sums, BatchNorm statistics per crop size, the queue and the prototype update over the global batch."""
    batch = crops(0)
    results = []
    for strategy in (None, two_replicas):
        if strategy is None:
            model = swav(queue_size=24, freeze_prototypes_steps=0)
        else:
            with strategy.scope():
                model = swav(queue_size=24, freeze_prototypes_steps=0)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(2), epochs=1, verbose=0).history
        results.append((history["loss"][0], model.get_weights()))
    (loss_1, w_1), (loss_2, w_2) = results
    assert loss_2 == pytest.approx(loss_1, rel=1e-5)
    for a, b in zip(w_1, w_2):  # the queue holds step 2's projections, after a step of SGD 0.5: 1e-5 noise
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=5e-5)
