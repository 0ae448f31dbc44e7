"""Issue 11 S1/S15/S16 and the unclear messages: a damaged or edited checkpoint is never resumed silently."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from tfcontrast import config as config_lib
from tfcontrast.jobs import checkpoint, components, evaluation, training
from tfcontrast.jobs.workdir import Workdir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny(steps=6, **overrides):
    values = {
        "train.steps": steps, "train.steps_per_epoch": 2, "train.batch_size": 32, "train.jit_compile": False,
        "optimizer.warmup_steps": 0, "encoder.features": 16, "encoder.width": 4,
        "model.projection_dim": 16, "model.hidden_dim": 32, "eval.map_method": "pca", **overrides,
    }
    return config_lib.validate(config_lib.load_file(os.path.join(ROOT, "configs", "directpred_digits.py"), values))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("finished"))
    training.train(tiny(), workdir, out=lambda _: None, evaluate_after=False)
    return workdir


@pytest.fixture
def run(finished, tmp_path):
    """A private copy of the finished run, to damage."""
    workdir = str(tmp_path / "run")
    shutil.copytree(finished, workdir)
    return workdir


def weights_of(workdir):
    model = components.initial_model(tiny(), (8, 8, 1))
    checkpoint.restore(model, Workdir(workdir).checkpoint)
    return [v.numpy() for v in model.weights]


def edit_state(path, reseal=False, **changes):
    state = json.loads(open(path).read())
    state.update(changes)
    if reseal:
        state["seal"] = checkpoint._seal(state)
    with open(path, "w") as f:
        json.dump(state, f)


def test_the_files_of_the_last_two_epochs_are_kept(run):
    names = sorted(os.listdir(Workdir(run).checkpoint))
    assert names == [
        "state-000002.json", "state-000003.json", "state.json", "weights-000002.weights.h5", "weights-000003.weights.h5"
    ]


def test_s1_flipped_bytes_fall_back_to_the_previous_checkpoint_and_resume_to_the_same_weights(finished, run):
    ckpt = Workdir(run).checkpoint
    path = os.path.join(ckpt, "weights-000003.weights.h5")
    raw = bytearray(open(path, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(path, "wb").write(bytes(raw))
    os.remove(Workdir(run).embedder)  # the run must train its last epoch again
    lines = []
    summary = training.train(tiny(), run, out=lines.append, evaluate_after=False)
    warning = next(line for line in lines if line.startswith("warning:"))
    assert "weights-000003.weights.h5 fails its SHA-256 check" in warning and "epoch 2 (step 4)" in warning
    assert any("resuming directpred" in line and "step 4 of 6" in line for line in lines)
    assert summary["train"]["steps_done"] == 6
    for got, want in zip(weights_of(run), weights_of(finished)):  # the same batches: the same result
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_s15_a_weights_path_outside_the_checkpoint_folder_is_refused(run):
    ckpt = Workdir(run).checkpoint
    edit_state(os.path.join(ckpt, "state.json"), reseal=True, weights="../../other/weights-000003.weights.h5")
    edit_state(os.path.join(ckpt, "state-000003.json"), reseal=True, weights="/tmp/weights-000003.weights.h5")
    lines = []
    state = checkpoint.read_state(ckpt, out=lines.append)
    assert state["epoch"] == 2
    assert "not a weights file of this checkpoint folder" in lines[0]


def test_s15_an_edited_state_is_detected_by_its_seal(run):
    ckpt = Workdir(run).checkpoint
    edit_state(os.path.join(ckpt, "state.json"), weights="weights-000002.weights.h5", epoch=2, step=4)
    lines = []
    state = checkpoint.read_state(ckpt, out=lines.append)
    assert state["epoch"] == 3  # the intact state-000003.json
    assert "state.json was modified after it was written" in lines[0]


def test_s16_a_step_beyond_the_weights_does_not_finish_the_run(tmp_path):
    workdir = str(tmp_path / "stopped")
    training.train(tiny(**{"train.stop_after_steps": 2}), workdir, out=lambda _: None)
    ckpt = Workdir(workdir).checkpoint
    for name in ("state.json", "state-000001.json"):
        edit_state(os.path.join(ckpt, name), reseal=True, step=6)
    with pytest.raises(training.RunError, match=r"step 6 is not epoch 1 x 2 steps per epoch"):
        training.train(tiny(), workdir, out=lambda _: None)


def test_s16_weights_of_another_step_are_refused_on_restore(run):
    ckpt = Workdir(run).checkpoint
    for name in ("state.json", "state-000003.json"):  # forge epoch 3 onto the epoch-2 weights
        shutil.copy(os.path.join(ckpt, "weights-000002.weights.h5"), os.path.join(ckpt, "weights-000003.weights.h5"))
        payload = open(os.path.join(ckpt, "weights-000003.weights.h5"), "rb").read()
        edit_state(
            os.path.join(ckpt, name), reseal=True, weights_sha256=hashlib.sha256(payload).hexdigest(),
            weights_bytes=len(payload),
        )
    lines = []
    model = components.initial_model(tiny(), (8, 8, 1))
    state = checkpoint.restore(model, ckpt, out=lines.append)
    assert state["step"] == 4 and int(model.optimizer.iterations.numpy()) == 4
    assert "holds step 4, the state says 6" in lines[0]


def test_a_truncated_state_file_is_named_with_what_to_do(run):
    ckpt = Workdir(run).checkpoint
    for name in os.listdir(ckpt):
        if name.endswith(".json"):
            path = os.path.join(ckpt, name)
            open(path, "w").write(open(path).read()[:50])
    with pytest.raises(checkpoint.CheckpointError, match=r"state\.json is not valid JSON.*Remove that folder"):
        checkpoint.read_state(ckpt)
    with pytest.raises(training.RunError, match="no usable checkpoint"):
        training.train(tiny(), run, out=lambda _: None)


def test_a_truncated_embedder_says_it_exists_but_cannot_be_read(run):
    path = Workdir(run).embedder
    open(path, "r+b").truncate(os.path.getsize(path) // 2)
    with pytest.raises(ValueError, match="exists but cannot be read as a Keras model"):
        evaluation.evaluate(run, out=lambda _: None)
