"""Checks shared by the classifier tests (FineTuner, Distiller): XLA against graph, replicas against one device."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf


def assert_jit_fit_matches_graph_fit(build, x, y, weights=lambda model: model.get_weights()) -> None:
    """Two epochs of ``build()`` with SGD + momentum, with and without XLA: the same losses and weights."""
    results = []
    for jit in (False, True):
        model = build()
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=jit)
        history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        results.append((history.history, weights(model)))
    (graph, w_graph), (xla, w_xla) = results
    np.testing.assert_allclose(xla["loss"], graph["loss"], rtol=1e-4)
    for a, b in zip(w_graph, w_xla):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)


def assert_one_step_matches(single, mirrored, x, y, names, weights=lambda model: model.get_weights()) -> None:
    """One ``fit`` step on the whole batch: the mirrored model's logs ``names`` and weights equal the single device's.

    Both models must be compiled (the mirrored one's optimizer inside its strategy's scope).
    """
    results = []
    for model in (single, mirrored):
        history = model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
        results.append(({k: v[0] for k, v in history.history.items()}, weights(model)))
    (logs_1, w_1), (logs_2, w_2) = results
    for name in names:
        assert logs_2[name] == pytest.approx(logs_1[name], rel=1e-5), name
    for a, b in zip(w_1, w_2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def assert_resume_restores_state_bit_exactly(method: str, workdir, state: tuple[str, ...], steps: int = 6) -> dict:
    """A run of ``method`` stopped after 2 steps and resumed ends with the state of an uninterrupted run, bit for bit.

    Both go through the job (:func:`tfcontrast.jobs.training.train`, the
    checkpoint of ``train.stop_after_steps``) on the method's tiny config.
    ``state`` names model variables (e.g. ``"queue"``); each must be a
    variable of the model, be restored by the checkpoint, and end equal in
    both runs. Returns ``{name: final value}``.
    """
    from tfcontrast.jobs import checkpoint, components, training
    from tfcontrast.jobs.workdir import Workdir

    from ..tiny_configs import tiny_config

    def final_state(path, config):
        model = components.initial_model(config, (8, 8, 1), 10)
        initial = {name: np.array(getattr(model, name).numpy()) for name in state}
        checkpoint.restore(model, Workdir(path).checkpoint)
        return initial, {name: np.array(getattr(model, name).numpy()) for name in state}

    config = tiny_config(method, steps=steps)
    straight, resumed = str(workdir / "straight"), str(workdir / "resumed")
    training.train(config, straight, out=lambda _: None, evaluate_after=False)
    stopped = training.train(tiny_config(method, steps=steps, **{"train.stop_after_steps": 2}), resumed,
                             out=lambda _: None, evaluate_after=False)
    assert stopped["status"] == "stopped" and stopped["train"]["steps_done"] == 2
    _, at_stop = final_state(resumed, config)
    training.train(config, resumed, out=lambda _: None, evaluate_after=False)
    initial, want = final_state(straight, config)
    _, got = final_state(resumed, config)
    for name in state:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # the state moved during training, and again after the restart: the resumed run used its restored state
    assert any(not np.array_equal(initial[name], at_stop[name]) for name in state)
    assert any(not np.array_equal(at_stop[name], want[name]) for name in state)
    return want


def assert_checkpoint_resume_is_bit_exact(build, dataset, state: tuple[str, ...], directory, steps: int = 4) -> dict:
    """Training stopped at a checkpoint and resumed in a fresh model ends with the state of an uninterrupted run, bit for bit.

    The in-process, fast form of :func:`assert_resume_restores_state_bit_exactly`:
    the job's :class:`~tfcontrast.jobs.checkpoint.Checkpoint` callback writes
    the checkpoint after ``steps // 2`` steps and
    :func:`~tfcontrast.jobs.checkpoint.restore` loads it into a model built
    with *another* seed (other initial weights, queue, bank and seed
    variables), which then trains on the remaining batches.

    Args:
        build: ``build(seed) -> compiled model``.
        dataset: ``dataset(start, stop) -> tf.data.Dataset`` of batches ``start .. stop - 1``.
        state: model variables (e.g. ``"queue"``) that must end equal, bit for bit.
        directory: an empty folder for the checkpoint.

    Returns:
        ``{name: final value}``.
    """
    from tfcontrast.jobs import checkpoint

    def values(model):
        return {name: np.array(getattr(model, name).numpy()) for name in state}

    half = steps // 2
    straight = build(0)
    straight.fit(dataset(0, steps), verbose=0)
    first = build(0)
    initial = values(first)
    first.fit(dataset(0, half), verbose=0, callbacks=[checkpoint.Checkpoint(str(directory), half)])
    resumed = build(1)
    assert any(not np.array_equal(a, b) for a, b in zip(values(resumed).values(), initial.values()))
    checkpoint.restore(resumed, str(directory))
    at_stop = values(resumed)
    for name, value in values(first).items():
        np.testing.assert_array_equal(at_stop[name], value, err_msg=f"{name} restored")
    resumed.fit(dataset(half, steps), verbose=0)
    want, got = values(straight), values(resumed)
    for name in state:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # the state moved before the stop and again after it: the resumed run continued from what it restored
    assert any(not np.array_equal(initial[name], at_stop[name]) for name in state)
    assert any(not np.array_equal(at_stop[name], want[name]) for name in state)
    return want
