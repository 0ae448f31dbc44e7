"""PIRL: the jigsaw, the heads, the loss (against loop references), the memory bank's EMA rule, resume.

The shared contract (loss falls, .keras round trip, XLA, mixed precision, two
replicas = one device with identical banks) is in
``tests/models/test_registered_methods.py``.
"""

import contextlib
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcontrast as tfc
from tests.losses.test_nce import reference_log_noise_mean, reference_nce
from tfcontrast import config as config_lib
from tfcontrast.jobs import components
from tfcontrast.models import PIRL
from tfcontrast.models.encoders import digits_cnn, mlp_encoder
from tfcontrast.models.ssl.pirl import jigsaw_tiles

from ...tiny_configs import tiny_config
from ..checks import assert_checkpoint_resume_is_bit_exact, assert_resume_restores_state_bit_exactly


@pytest.fixture(scope="module")
def digits():
    return tfc.data.load_digits().x_train[:64]


def pirl(encoder=None, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    encoder = encoder if encoder is not None else mlp_encoder((8, 8, 1), widths=(32, 16))
    kwargs = {"projection_dim": 8, "memory_size": 50, "num_negatives": 20, "jigsaw_grid": 2, **kwargs}
    return PIRL(encoder, **kwargs)


def views(digits, n=8):
    rng = np.random.default_rng(1)
    noisy = lambda: (digits[:n] + rng.normal(scale=0.1, size=digits[:n].shape)).astype(np.float32)  # noqa: E731
    return tf.constant(noisy()), tf.constant(noisy())


def reference_tiles(image, grid, permutation):
    """The tiles of one [H, W, C] image by loops: centre crop, row-major tiles, slot t = tile permutation[t]."""
    h, w = image.shape[0] // grid, image.shape[1] // grid
    top, left = (image.shape[0] - grid * h) // 2, (image.shape[1] - grid * w) // 2
    tiles = []
    for r in range(grid):
        for c in range(grid):
            tiles.append(image[top + r * h: top + (r + 1) * h, left + c * w: left + (c + 1) * w])
    return [tiles[t] for t in permutation]


def reference_step(model, v1, v2, index) -> dict:
    """A step's heads f, g (float64), its positives, negatives and mask, and the batch's log mu by loops."""
    f = model.image_projections(v1)[0].numpy().astype(np.float64)
    g = model.jigsaw_projections(v2, model.permutations(len(index))).numpy().astype(np.float64)
    memory = model.memory.numpy().astype(np.float64)
    negative_index = model.negative_indices().numpy()
    mask = [[negative_index[j] != index[i] for j in range(len(negative_index))] for i in range(len(index))]
    negatives = memory[negative_index]
    batch_level = reference_log_noise_mean(np.concatenate([f, g]), negatives, model.temperature, mask + mask)
    return dict(f=f, g=g, positives=memory[index], negatives=negatives, mask=mask, batch_level=batch_level)


def reference_pirl_loss(step: dict, weight: float, t: float, level: float) -> float:
    """``lambda L_NCE(g) + (1 - lambda) L_NCE(f)`` against the step's memory entries, at noise level ``level``."""
    terms = [reference_nce(step[head], step["positives"], step["negatives"], t, level, step["mask"]) for head in "gf"]
    return weight * terms[0] + (1.0 - weight) * terms[1]


# ----------------------------------------------------------------- jigsaw


@pytest.mark.parametrize("shape, grid", [((4, 4, 1), 2), ((8, 8, 1), 3), ((7, 5, 3), 2), ((8, 8, 1), 1)])
def test_jigsaw_tiles_match_a_loop_reference(shape, grid, rng):
    images = rng.normal(size=(3,) + shape).astype(np.float32)
    permutations = np.stack([rng.permutation(grid * grid) for _ in range(3)])
    got = jigsaw_tiles(images, grid, permutations).numpy()
    want = [tile for b in range(3) for tile in reference_tiles(images[b], grid, permutations[b])]
    np.testing.assert_array_equal(got, np.stack(want))


def test_jigsaw_of_a_counting_image_by_hand():
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    tiles = jigsaw_tiles(image, 2, [[2, 0, 3, 1]])[..., 0].numpy()
    np.testing.assert_array_equal(tiles, [[[8, 9], [12, 13]], [[0, 1], [4, 5]], [[10, 11], [14, 15]], [[2, 3], [6, 7]]])
    resized = jigsaw_tiles(np.full((1, 4, 4, 1), 0.25, np.float32), 2, [[0, 1, 2, 3]], tile_size=(8, 8)).numpy()
    assert resized.shape == (4, 8, 8, 1) and np.allclose(resized, 0.25)  # resizing keeps a constant tile constant


def test_jigsaw_head_reads_the_encoded_tiles_concatenated_in_the_shuffled_order(digits):
    model = pirl(digits_cnn((8, 8, 1), features=8, width=4))
    assert model.tile_size == (8, 8)
    _, v2 = views(digits, n=3)
    permutations = model.permutations(3).numpy()
    got = model.jigsaw_projections(v2, permutations, training=False).numpy()
    for b in range(3):
        tiles = reference_tiles(v2.numpy()[b], 2, permutations[b])
        upsampled = tf.image.resize(np.stack(tiles), (8, 8), method="bilinear")  # 4 x 4 tiles read at 8 x 8
        features = model.encoder(upsampled, training=False).numpy().reshape(1, -1)  # [1, 4 x 8], slot order
        want = features @ model.jigsaw_head.kernel.numpy() + model.jigsaw_head.bias.numpy()
        np.testing.assert_allclose(got[b], want[0], rtol=1e-5, atol=1e-5)


def test_draws_are_permutations_and_indices_that_change_every_step():
    model = pirl(memory_size=50, num_negatives=400)
    first, negatives = model.permutations(64).numpy(), model.negative_indices().numpy()
    assert all(sorted(p) == [0, 1, 2, 3] for p in first) and len({tuple(p) for p in first}) > 12
    assert negatives.min() >= 0 and negatives.max() < 50 and len(set(negatives)) > 40
    np.testing.assert_array_equal(model.permutations(64).numpy(), first)  # a function of seed and step
    model.step.assign(1)
    assert not np.array_equal(model.permutations(64).numpy(), first)
    assert not np.array_equal(model.negative_indices().numpy(), negatives)


# -------------------------------------------------------------------- loss


def test_the_loss_is_lambda_nce_of_the_jigsaw_plus_one_minus_lambda_nce_of_the_image(digits):
    model = pirl(temperature=0.2, loss_weight=0.3)
    v1, v2 = views(digits)
    index = model.negative_indices().numpy()[:8]  # each image's own entry is among the negatives: masked
    loss, projections, _, extras = model.two_view_loss(v1, v2, False, index=tf.constant(index))

    step = reference_step(model, v1, v2, index)
    assert not all(all(row) for row in step["mask"])
    level = step["batch_level"]  # step 0: estimated
    np.testing.assert_allclose(float(loss), reference_pirl_loss(step, 0.3, 0.2, level), rtol=1e-5)
    np.testing.assert_allclose(float(extras["log_noise_mean"]), level, rtol=1e-5)
    np.testing.assert_allclose(projections.numpy(), step["f"], rtol=1e-5, atol=1e-6)


def test_the_noise_level_is_estimated_on_the_first_step_and_then_kept(digits):
    model = pirl()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    v1, v2 = views(digits)
    index = tf.range(8)
    first = float(model.two_view_loss(v1, v2, True, index=index)[3]["log_noise_mean"])
    model.train_on_batch((v1, v2), index)
    assert float(model.log_noise_mean.numpy()) == pytest.approx(first, rel=1e-6) and int(model.step) == 1
    for _ in range(2):
        model.train_on_batch((v1, v2), index)
    assert float(model.log_noise_mean.numpy()) == pytest.approx(first, rel=1e-6)
    assert float(model.two_view_loss(v1, v2, True, index=index)[3]["log_noise_mean"]) == pytest.approx(first, rel=1e-6)


@pytest.mark.parametrize("rho", [0.0, 0.4, 1.0])
def test_after_the_first_step_the_noise_level_follows_its_ema_rule(digits, rho):
    model = pirl(temperature=0.2, noise_momentum=rho)
    v1, v2 = views(digits)
    index = np.array([3, 9, 14, 0, 41, 7, 22, 30])
    model.step.assign(5)
    model.log_noise_mean.assign(2.5)  # mu_prev = e^2.5
    loss, _, _, extras = model.two_view_loss(v1, v2, False, index=tf.constant(index))

    step = reference_step(model, v1, v2, index)
    assert abs(step["batch_level"] - 2.5) > 0.5  # the rule is visible: the batch's level is not the stored one
    level = math.log(rho * math.exp(2.5) + (1.0 - rho) * math.exp(step["batch_level"]))
    np.testing.assert_allclose(float(extras["log_noise_mean"]), level, rtol=1e-5)
    np.testing.assert_allclose(float(loss), reference_pirl_loss(step, 0.5, 0.2, level), rtol=1e-5)


def test_with_noise_momentum_0_every_step_stores_its_own_batch_s_level(digits):
    model = pirl(noise_momentum=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    v1, v2 = views(digits)
    index = tf.range(8)
    levels = []
    for _ in range(3):
        want = float(model.two_view_loss(v1, v2, True, index=index)[3]["log_noise_mean"])  # this step's estimate
        model.train_on_batch((v1, v2), index)
        assert float(model.log_noise_mean.numpy()) == pytest.approx(want, rel=1e-5)
        levels.append(want)
    assert len(set(np.round(levels, 5))) == 3  # the weights and the memory moved: so did the level


def test_two_replicas_track_the_noise_level_and_the_bank_as_one_device(digits, two_replicas):
    v1, v2 = views(digits, n=16)
    stream = tf.data.Dataset.from_tensor_slices(((v1, v2), tf.range(16))).batch(8)  # two steps of 8
    models = []
    for strategy in (None, two_replicas):
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = pirl(noise_momentum=0.5)
            model.compile(optimizer=keras.optimizers.SGD(0.5))
        if models:
            model.set_weights(models[0].get_weights())  # weights, bank, seed
        models.append(model)
    levels = []
    for model in models:
        model.fit(stream, epochs=1, verbose=0)
        levels.append(float(model.log_noise_mean.numpy()))
    assert int(models[1].step.numpy()) == 2 and levels[1] == pytest.approx(levels[0], rel=1e-5)
    np.testing.assert_allclose(models[1].memory.numpy(), models[0].memory.numpy(), rtol=1e-4, atol=1e-6)
    copies = two_replicas.experimental_local_results(models[1].log_noise_mean.value)
    assert float(copies[0]) == float(copies[1])


def memory_knn(memory, labels, k=10):
    """Leave-one-out k-NN accuracy of the bank's entries on the images' labels (cosine; entries are unit rows)."""
    similarity = memory @ memory.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :k]
    return float(np.mean([np.bincount(labels[row], minlength=10).argmax() == labels[i] for i, row in enumerate(neighbours)]))


@pytest.mark.slow  # two trainings of ~200 steps
def test_on_digits_a_tracked_noise_level_keeps_the_bank_s_class_structure_and_a_fixed_one_loses_it():
    """The failure of benchmarks/RESULTS.md section 14: with mu fixed on the first batch (NPID) the N
    negatives outweigh the positive once the entries cluster, and the bank loses its classes."""
    split = tfc.data.load_digits()
    views_recipe = tfc.augment.TwoViewAugmentation(
        "simclr", image_size=(8, 8), crop_scale=(0.6, 1.0), flip=False, jitter_prob=0.0, grayscale_prob=0.0,
        blur_prob=0.0, solarize_prob=0.0, max_shift=2, max_degrees=15.0, seed=0,
    )
    accuracy = {}
    for rho in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        model = PIRL(digits_cnn((8, 8, 1), features=64, width=16), projection_dim=64, memory_size=len(split.x_train),
                     num_negatives=1024, jigsaw_grid=2, noise_momentum=rho, collapse_metrics=False)
        model.compile(optimizer=keras.optimizers.AdamW(2e-3, weight_decay=1e-4))
        stream = tfc.data.indexed_dataset(split.x_train, 64, views_recipe, seed=0, repeat=True)
        model.fit(stream, steps_per_epoch=22, epochs=9, verbose=0)
        accuracy[rho] = memory_knn(model.memory.numpy(), split.y_train)
    assert accuracy[0.0] > 0.5 and accuracy[0.0] > accuracy[1.0] + 0.2, accuracy  # seed 0: 0.68 vs 0.30


# ------------------------------------------------------------------ memory


def test_a_step_moves_the_batch_s_memory_entries_by_the_ema_rule_and_leaves_the_others(digits):
    model = pirl(memory_momentum=0.7)
    model.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=True)
    v1, v2 = views(digits)
    index = np.array([3, 9, 14, 0, 41, 7, 22, 30])
    old = model.memory.numpy()
    f = model.image_projections(v1, training=True)[0].numpy()  # before the update (no BatchNorm in this encoder)
    model.train_on_batch((v1, v2), tf.constant(index))
    new = model.memory.numpy()
    for row, i in enumerate(index):
        want = 0.7 * old[i] + 0.3 * f[row] / np.linalg.norm(f[row])
        np.testing.assert_allclose(new[i], want / np.linalg.norm(want), rtol=1e-5, atol=1e-6)
    others = np.setdiff1d(np.arange(50), index)
    np.testing.assert_array_equal(new[others], old[others])
    np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, rtol=1e-5)


def test_an_image_twice_in_a_batch_gets_its_last_row(rng):
    model = pirl(memory_momentum=0.5)
    old = model.memory.numpy()
    rows = rng.normal(size=(4, 8)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    for _ in range(3):  # the same result every time: no dependence on the write order
        model.memory.assign(old)
        model.update_memory(tf.constant([5, 2, 5, 5]), tf.constant(rows))
        for i, row in ((5, 3), (2, 1)):
            want = 0.5 * old[i] + 0.5 * rows[row]
            np.testing.assert_allclose(model.memory.numpy()[i], want / np.linalg.norm(want), rtol=1e-5)


def test_a_checkpoint_restores_the_memory_bank_bit_exactly(digits, tmp_path):
    v1, v2 = views(digits, n=32)

    def build(seed):
        model = pirl(seed=seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)  # no trace: fast
        return model

    def dataset(start, stop):
        rows = slice(8 * start, 8 * stop)
        return tf.data.Dataset.from_tensor_slices(((v1[rows], v2[rows]), tf.range(32)[rows])).batch(8)

    state = assert_checkpoint_resume_is_bit_exact(
        build, dataset, ("memory", "log_noise_mean", "step", "sample_seed"), tmp_path
    )
    assert int(state["step"]) == 4


@pytest.mark.slow  # three runs of the job
def test_resume_through_the_job_restores_the_memory_bank_bit_exactly(tmp_path):
    state = assert_resume_restores_state_bit_exactly("pirl", tmp_path, ("memory", "log_noise_mean", "step", "sample_seed"))
    assert state["memory"].shape == (1437, 16) and int(state["step"]) == 6


# ------------------------------------------------------------- data, config


def test_plain_images_with_their_index_are_augmented_in_the_step(digits):
    model = pirl(augment=lambda x: (x + 0.1, x - 0.1))
    model.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True)
    model.fit(tfc.data.indexed_dataset(digits[:32], 16), verbose=0)
    assert int(model.step) == 2
    with pytest.raises(ValueError, match="PIRL needs each image's index"):
        model.fit(tf.data.Dataset.from_tensor_slices(views(digits, 16)).batch(8), verbose=0)


def test_the_registered_builder_sizes_the_bank_to_the_training_split():
    config = tiny_config("pirl")
    assert config.model.memory_size is None
    model = components.build_model(config, components.build_encoder(config, (8, 8, 1)), (8, 8, 1))
    assert model.memory.shape == (1437, 16)  # 80% of the 1,797 digits
    from tfcontrast.jobs import inputs

    with pytest.raises(config_lib.ConfigError, match=r"config\.model\.memory_size: must be >= the 1437 training"):
        inputs.load_split(tiny_config("pirl", **{"model.memory_size": 100}))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(memory_size=None), "memory_size` is required"),
        (dict(memory_size=1), "memory_size"),
        (dict(num_negatives=0), "num_negatives"),
        (dict(memory_momentum=1.0), "memory_momentum"),
        (dict(loss_weight=1.5), "loss_weight"),
        (dict(jigsaw_grid=9), "jigsaw_grid"),
        (dict(temperature=-1.0), "temperature"),
        (dict(noise_momentum=1.5), "noise_momentum"),
        (dict(noise_momentum=-0.1), "noise_momentum"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pirl(**kwargs)


def test_an_encoder_of_vectors_is_refused():
    with pytest.raises(ValueError, match="needs an encoder of images"):
        PIRL(mlp_encoder((64,), widths=(16,)), memory_size=10)
