"""The train / evaluate / lookup pipelines in-process: every method, resume, fail-fast, queries."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcontrast import config as config_lib, data, registry
from tfcontrast import losses as tfc_losses
from tfcontrast.jobs import checkpoint, components, evaluation as evaluate_lib, inputs, queries as lookup_lib
from tfcontrast.jobs import training as train_lib
from tfcontrast.jobs.workdir import Workdir

from .tiny_configs import tiny_config as tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def silent(_line):
    pass


def all_weights(config, workdir) -> list[np.ndarray]:
    """Model and optimizer variables of the run's last checkpoint."""
    model = components.initial_model(config, (8, 8, 1))
    checkpoint.restore(model, Workdir(workdir).checkpoint)
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


@pytest.mark.parametrize("method", registry.methods.names())
def test_every_method_trains_a_few_steps(method, tmp_path):
    config = tiny(method)
    summary = train_lib.train(config, str(tmp_path), out=silent, evaluate_after=False)
    assert summary["status"] == "trained" and summary["train"]["steps_done"] == 4
    assert np.isfinite(summary["train"]["final_metrics"]["loss"])
    trained = keras.models.load_model(Workdir(str(tmp_path)).embedder, compile=False)
    initial = components.embedder(components.initial_model(config, (8, 8, 1), 10), method)
    x = data.load_digits().x_test[:5]
    out_trained, out_initial = trained(x, training=False).numpy(), initial(x, training=False).numpy()
    assert out_trained.shape == out_initial.shape and np.isfinite(out_trained).all()
    # the saved network is the trained one: same architecture, weights moved away from the start
    assert not np.allclose(out_trained, out_initial, atol=1e-6)


# One loss of each kind trains in the default suite (a compiled label loss, a pair loss, a loss head); the
# others share their code path through the job and train by name under -m slow.
FAST_LOSSES = {"triplet", "supcon", "contrastive", "arcface"}


@pytest.mark.parametrize(
    "loss", [n if n in FAST_LOSSES else pytest.param(n, marks=pytest.mark.slow) for n in registry.losses.names()]
)
def test_every_registered_loss_trains_a_method_by_name(loss, tmp_path):
    """``loss.name`` picks the compiled loss (or the model's loss head); the section starts from its registered defaults."""
    spec = registry.losses.get(loss)
    method = next(m for m in registry.methods if m.loss == spec.inputs)
    config = tiny(method.name, steps=2, **{"loss.name": loss})
    assert dict(config.loss) == spec.defaults()
    summary = train_lib.train(config, str(tmp_path), out=silent, evaluate_after=False)
    assert np.isfinite(summary["train"]["final_metrics"]["loss"])
    model = components.initial_model(config, (8, 8, 1), 10)
    if spec.head:  # trainable class weights: owned by the model, sized by the classes and its embedding width
        assert model.loss is None and isinstance(model.loss_head, spec.loss)
        assert tuple(model.loss_head.class_weights.shape) == (10, config.model.embedding_dim)
        initial = model.loss_head.class_weights.numpy()
        checkpoint.restore(model, Workdir(str(tmp_path)).checkpoint)  # the checkpoint holds the trained class weights
        assert not np.allclose(model.loss_head.class_weights.numpy(), initial)
    else:
        assert isinstance(model.loss, spec.loss)


XBM_OVERRIDES = {"loss.name": "multi_similarity", "loss.xbm_memory_size": 40, "loss.xbm_warmup_steps": 1}


def xbm_memory(config, workdir) -> list[np.ndarray]:
    """The cross-batch memory's variables (embeddings, labels, rows filled, steps) in the run's last checkpoint."""
    restored = components.initial_model(config, (8, 8, 1), 10)
    checkpoint.restore(restored, Workdir(workdir).checkpoint)
    return [v.numpy() for v in restored.loss.memory.weights]


@pytest.fixture(scope="module")
def xbm_run(tmp_path_factory):
    config = tiny("embedding", steps=4, **XBM_OVERRIDES)
    workdir = str(tmp_path_factory.mktemp("xbm"))
    train_lib.train(config, workdir, out=silent, evaluate_after=False)
    return config, workdir


def test_a_loss_trains_with_a_cross_batch_memory_by_name_and_checkpoints_it(xbm_run):
    """``loss.xbm_memory_size`` wraps the loss in XBM; the run's checkpoint holds the filled memory."""
    config, workdir = xbm_run
    model = components.initial_model(config, (8, 8, 1), 10)
    assert isinstance(model.loss, tfc_losses.XBM) and isinstance(model.loss.loss, tfc_losses.MultiSimilarityLoss)
    assert (model.loss.memory_size, model.loss.warmup_steps) == (40, 1)
    embeddings, labels, filled, steps = xbm_memory(config, workdir)
    assert int(steps) == 4 and int(filled) == 40  # 3 steps after the warm-up, 16 rows each, cut to 40
    assert np.isfinite(embeddings).all() and np.abs(embeddings).sum() > 0 and len(np.unique(labels)) > 1


@pytest.mark.slow
def test_a_run_with_a_cross_batch_memory_resumes_with_it(xbm_run, tmp_path):
    """Stopped after 2 steps and resumed, the run ends with the memory of the uninterrupted run."""
    config, reference = xbm_run
    resumed = str(tmp_path)
    train_lib.train(tiny("embedding", steps=4, **XBM_OVERRIDES, **{"train.stop_after_steps": 2}), resumed,
                    out=silent, evaluate_after=False)
    train_lib.train(config, resumed, out=silent, evaluate_after=False)
    for want, got in zip(xbm_memory(config, reference), xbm_memory(config, resumed)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    config = tiny("directpred", steps=6)
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    train_lib.train(config, workdir, out=silent, evaluate_after=False)
    return config, workdir


def test_a_stopped_and_resumed_run_equals_an_uninterrupted_one(uninterrupted, tmp_path):
    config, reference = uninterrupted
    workdir = str(tmp_path)
    stopped = train_lib.train(tiny("directpred", steps=6, **{"train.stop_after_steps": 2}), workdir, out=silent)
    assert stopped["status"] == "stopped" and stopped["train"]["steps_done"] == 2
    assert not os.path.exists(Workdir(workdir).embedder)
    again = train_lib.train(tiny("directpred", steps=6, **{"train.stop_after_steps": 4}), workdir, out=silent)
    assert again["train"]["steps_done"] == 4 and again["train"]["sessions"] == 2
    done = train_lib.train(config, workdir, out=silent, evaluate_after=False)
    assert done["train"]["steps_done"] == 6 and done["train"]["sessions"] == 3

    want = checkpoint.read_state(Workdir(reference).checkpoint)
    got = checkpoint.read_state(Workdir(workdir).checkpoint)
    assert (got["step"], got["epoch"]) == (want["step"], want["epoch"]) == (6, 3)
    # same batches, same augmentation draws, same optimizer state: the same numbers
    np.testing.assert_allclose(got["history"]["loss"], want["history"]["loss"], rtol=1e-6)
    want_w, got_w = all_weights(config, reference), all_weights(config, workdir)
    assert len(want_w) == len(got_w) > 10
    for w, g in zip(want_w, got_w):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_a_finished_run_is_not_retrained(uninterrupted):
    config, workdir = uninterrupted
    state_path = Workdir(workdir).state
    before = (os.path.getmtime(state_path), checkpoint.read_state(Workdir(workdir).checkpoint))
    lines = []
    train_lib.train(config, workdir, out=lines.append, evaluate_after=False)
    assert "already trained (6 steps)" in lines[0]
    assert (os.path.getmtime(state_path), checkpoint.read_state(Workdir(workdir).checkpoint)) == before


def test_a_workdir_of_another_config_is_refused(uninterrupted):
    _, workdir = uninterrupted
    with pytest.raises(train_lib.RunError, match=r"differs at config\.model\.rho"):
        train_lib.train(tiny("directpred", steps=6, **{"model.rho": 0.5}), workdir, out=silent)


def test_bad_config_or_data_fails_before_writing_anything(tmp_path):
    workdir = tmp_path / "run"
    bad = tiny("directpred").to_dict()
    bad["optimizer"]["lr"] = -1.0
    with pytest.raises(config_lib.ConfigError, match=r"config\.optimizer\.lr: must be > 0"):
        train_lib.train(bad, str(workdir), out=silent)
    assert not workdir.exists()

    npz = tmp_path / "few.npz"
    np.savez(npz, images=np.random.default_rng(0).random((20, 8, 8, 1), np.float32), labels=np.arange(20) % 2)
    small = tiny("directpred", **{"data.name": "npz", "data.path": str(npz)})
    with pytest.raises(config_lib.ConfigError, match=r"config\.train\.batch_size: must be <= the 16 training"):
        train_lib.train(small, str(workdir), out=silent)
    np.savez(npz, pictures=np.zeros((4, 8, 8, 1)), y=np.arange(4))
    with pytest.raises(config_lib.ConfigError, match=r"config\.data\.path: .*found keys \['pictures', 'y'\]"):
        train_lib.train(small, str(workdir), out=silent)
    assert not workdir.exists()

    np.savez(npz, images=np.random.default_rng(0).random((40, 8, 8, 1), np.float32), labels=np.arange(40) % 2)
    with np.load(npz) as archive:
        images = archive["images"].copy()
    images[[3, 17], 2, 5, 0] = [np.nan, np.inf]
    np.savez(npz, images=images, labels=np.arange(40) % 2)
    with pytest.raises(config_lib.ConfigError, match=r"config\.data\.path: the images hold NaN or inf in 2 example\(s\) \(rows \[3, 17\]\)"):
        train_lib.train(small, str(workdir), out=silent)
    assert not workdir.exists()

    workdir.mkdir()
    (workdir / "notes.txt").write_text("not a run")
    with pytest.raises(train_lib.RunError, match="is not empty and holds no run"):
        train_lib.train(tiny("directpred"), str(workdir), out=silent)
    assert os.listdir(workdir) == ["notes.txt"]
    with pytest.raises(train_lib.RunError, match=r"--workdir '.*notes.txt' is a file, not a folder"):
        train_lib.train(tiny("directpred"), str(workdir / "notes.txt"), out=silent)


# one method of every batch kind
STREAM_METHODS = sorted({spec.batch: spec.name for spec in reversed(list(registry.methods))}.values())


@pytest.mark.parametrize("method", STREAM_METHODS)
def test_the_training_stream_restarts_at_any_step(method):
    config = tiny(method, steps=6)
    run = inputs.load_split(config)
    views = inputs.augmentation(config, run.input_shape)
    full = list(inputs.training_stream(config, run, views, 0))
    tail = list(inputs.training_stream(config, run, views, 4))
    assert len(full) == 6 and len(tail) == 2
    for a, b in zip(full[4:], tail):
        for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
            np.testing.assert_array_equal(x.numpy(), y.numpy())
    # and consecutive batches differ (the stream is not one batch repeated)
    assert not np.array_equal(tf.nest.flatten(full[0])[0].numpy(), tf.nest.flatten(full[1])[0].numpy())


def test_the_random_baseline_is_the_runs_starting_point():
    config = tiny("directpred")
    first = [w.numpy() for w in components.initial_model(config, (8, 8, 1)).weights]
    second = [w.numpy() for w in components.initial_model(config, (8, 8, 1)).weights]
    other = components.initial_model(tiny("directpred", seed=1), (8, 8, 1)).weights
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, b.numpy()) for a, b in zip(first, other))


def test_grid_queries_take_each_class_in_turn():
    labels = np.array([2, 0, 0, 1, 2, 1, 0])
    np.testing.assert_array_equal(evaluate_lib.grid_queries(labels, 5), [1, 3, 0, 2, 5])
    np.testing.assert_array_equal(evaluate_lib.grid_queries(labels, 100), [1, 3, 0, 2, 5, 4, 6])


def test_load_query_reads_images_and_arrays(tmp_path):
    digit = data.load_digits().x_test[0]  # [8, 8, 1] in [0, 1]
    png = tmp_path / "q.png"
    Image.fromarray((digit[..., 0] * 255).round().astype(np.uint8)).save(png)
    from_png = lookup_lib.load_query(str(png), (8, 8, 1))
    assert from_png.shape == (1, 8, 8, 1) and from_png.dtype == np.float32
    np.testing.assert_allclose(from_png[0], digit, atol=1 / 255 + 1e-6)  # same size: only 8-bit rounding
    rgb = tmp_path / "big.jpg"
    Image.fromarray(np.full((40, 30, 3), 255, np.uint8)).save(rgb)
    np.testing.assert_allclose(lookup_lib.load_query(str(rgb), (8, 8, 1)), 1.0, atol=0.01)  # grey, resized

    for array, batch in ((digit, 1), (digit.reshape(64), 1), (np.stack([digit] * 3), 3), (np.zeros((2, 64)), 2)):
        np.save(tmp_path / "q.npy", array)
        assert lookup_lib.load_query(str(tmp_path / "q.npy"), (8, 8, 1)).shape == (batch, 8, 8, 1)
    np.save(tmp_path / "q.npy", np.zeros((5, 7)))
    with pytest.raises(ValueError, match=r"shape \(5, 7\); the model reads \(8, 8, 1\)"):
        lookup_lib.load_query(str(tmp_path / "q.npy"), (8, 8, 1))
    with pytest.raises(ValueError, match="is not a file"):
        lookup_lib.load_query(str(tmp_path / "none.png"), (8, 8, 1))
    (tmp_path / "q.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match=r"must be an image \(.png"):
        lookup_lib.load_query(str(tmp_path / "q.txt"), (8, 8, 1))


def test_template_on_an_image_folder_trains_evaluates_and_looks_up(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("bars", "dots"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(10):
            image = np.zeros((8, 8), np.uint8)
            if name == "bars":
                image[rng.integers(1, 7), :] = 255
            else:
                image[tuple(rng.integers(0, 8, size=(2, 6)))] = 255
            Image.fromarray(image).save(tmp_path / "images" / name / f"{i}.png")
    overrides = {
        "data.path": str(tmp_path / "images"), "data.image_size": (8, 8), "data.color_mode": "grayscale",
        "encoder.name": "digits_cnn", "encoder.features": 8, "encoder.width": 4,
        "model.projection_dim": 8, "model.hidden_dim": 16, "train.batch_size": 8, "train.steps": 2,
        "train.steps_per_epoch": 1, "train.jit_compile": False, "optimizer.warmup_steps": 0,
        "eval.knn_k": 3, "eval.recall_ks": (1, 2), "eval.grid_queries": 2, "eval.grid_neighbors": 2,
        "eval.map_method": "pca", "index.lookup_k": 2,
    }
    config = config_lib.validate(config_lib.load_file(os.path.join(ROOT, "configs", "custom_template.py"), overrides))
    workdir = tmp_path / "run"
    summary = train_lib.train(config, str(workdir), out=silent)
    assert summary["status"] == "done" and summary["data"]["class_names"] == ["bars", "dots"]
    assert summary["data"]["n_train"] == 16 and summary["data"]["input_shape"] == [8, 8, 1]
    assert set(summary["artefacts"]["plots"]) == {"training_curves", "embedding_map", "spectrum", "neighbors"}
    assert 0.0 <= summary["evaluation"]["knn_accuracy"] <= 1.0

    run = inputs.load_split(config)
    png = tmp_path / "query.png"
    Image.fromarray((run.x_train[3, :, :, 0] * 255).round().astype(np.uint8)).save(png)
    found = lookup_lib.lookup(str(workdir), str(png), k=2)
    assert found.ids.shape == (1, 2), found
    # its nearest neighbour is itself (or an identical training image: bars repeat), at distance ~0
    assert found.distances[0, 0] < 1e-4, found
    np.testing.assert_allclose(run.x_train[found.ids[0, 0]], run.x_train[3], atol=1 / 255)
    text = lookup_lib.format_neighbours(found, str(png))
    label = int(found.labels[0, 0])
    first = next(line for line in text.splitlines() if line.split()[:1] == ["1"])
    assert label == run.y_train[3] and f"{label} ({['bars', 'dots'][label]})" in first
    # 8-bit images: the contract records the scale 255; a uint8 .npy query is taken as raw pixels
    assert summary["input_contract"] == {
        "format": "tfcontrast.input_contract", "version": 1, "shape": [8, 8, 1], "dtype": "float32",
        "range": [0.0, 1.0], "scale": 255.0,
    }
    np.save(tmp_path / "q.npy", (run.x_train[3:4] * 255).round().astype(np.uint8))
    raw = lookup_lib.lookup(str(workdir), str(tmp_path / "q.npy"), k=2)
    np.testing.assert_array_equal(raw.ids, found.ids)
