"""``tfcontrast train``: train, checkpoint, resume, then evaluate and export.

:func:`train` runs in this order, so that a bad config or bad data never
leaves anything behind:

1. validate the config (:func:`tfcontrast.config.validate`); if the workdir
   already holds a run, its ``config.json`` must match (keys that only control
   execution, such as ``train.stop_after_steps``, may differ);
2. load the data, build the augmentation, the model and the optimizer, and
   restore the last checkpoint if there is one; every failure so far is a
   :class:`~tfcontrast.config.ConfigError` naming its key, and nothing has
   been written;
3. create the workdir, write ``config.json`` and train with ``model.fit`` from
   the restored epoch: Keras progress bar, TensorBoard logs in ``logs/``, a
   checkpoint every epoch (:mod:`tfcontrast.jobs.checkpoint`);
4. save the embedding network to ``model/embedder.keras`` and run
   :func:`tfcontrast.jobs.evaluation.evaluate` (index, export, plots,
   ``summary.json``).

Running the same command again continues an interrupted run at its last
epoch; on a finished run it trains nothing: it reports the run as done (and
completes the evaluation if that was interrupted).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Callable

import keras

from tfcontrast import config as config_lib
from tfcontrast.jobs import checkpoint, components, inputs, report, workdir as workdir_lib
from tfcontrast.jobs.evaluation import evaluate


class RunError(ValueError):
    """The workdir holds something this command cannot continue."""


def train(config, workdir: str, out: Callable[[str], None] = print, evaluate_after: bool = True) -> dict:
    """Trains (or resumes) the run of ``config`` in ``workdir``; returns its summary (see the module docstring).

    With ``evaluate_after=False`` it stops after saving the embedding network
    (and returns the training part of the summary, status ``"trained"``);
    :func:`tfcontrast.jobs.evaluation.evaluate` finishes the run later.

    Raises:
        ConfigError: a bad config or data (before anything is written).
        RunError: ``workdir`` holds a run of another config.
    """
    started = time.perf_counter()
    config = config_lib.validate(config)
    wd = workdir_lib.Workdir(workdir)
    previous = _previous_config(wd)
    if previous is None and os.path.isdir(wd.root) and os.listdir(wd.root):
        raise RunError(f"{wd.root} is not empty and holds no run (no config.json); use a new or empty --workdir.")
    if previous is not None:
        changed = config_lib.differences(previous.to_dict(), config.to_dict())
        if changed:
            raise RunError(
                f"{wd.root} holds a run of another config (it differs at {', '.join('config.' + k for k in changed)}); "
                "use a new --workdir, or the same config to continue that run."
            )
    try:
        state = checkpoint.read_state(wd.checkpoint, out=out)
    except checkpoint.CheckpointError as err:
        raise RunError(str(err)) from None
    if state is not None and state["step"] >= config.train.steps and os.path.exists(wd.embedder):
        summary = workdir_lib.read_json(wd.summary) if os.path.exists(wd.summary) else None
        if summary is not None and (summary.get("status") == "done" or not evaluate_after):
            out(f"{wd.root}: already trained ({state['step']} steps); nothing to do.")
            out(report.headline(summary))
            return summary
        out(f"{wd.root}: already trained ({state['step']} steps); finishing the evaluation.")
        return evaluate(wd.root, out=out)

    run = inputs.load_split(config)
    views = inputs.augmentation(config, run.input_shape)
    model = components.initial_model(config, run.input_shape, run.num_classes)
    try:
        state = checkpoint.restore(model, wd.checkpoint, out=out)
    except (OSError, ValueError) as err:
        raise RunError(f"cannot restore the checkpoint in {wd.checkpoint}: {err}") from None
    spe = config.train.steps_per_epoch
    start_epoch = state["epoch"] if state else 0

    os.makedirs(wd.root, exist_ok=True)
    workdir_lib.write_json(wd.config, config.to_dict())  # new, or differing at most in execution keys
    if start_epoch:
        out(f"resuming {config.method} in {wd.root} at step {start_epoch * spe} of {config.train.steps}")
    else:
        out(f"training {config.method} in {wd.root}: {config.train.steps} steps, {len(run.x_train)} training examples")

    if start_epoch * spe < config.train.steps:
        saver = checkpoint.Checkpoint(wd.checkpoint, spe, state)
        stop = config.train.stop_after_steps
        stopper = checkpoint.StopAfter(stop if stop > start_epoch * spe else 0, spe)
        callbacks = [
            saver,
            stopper,
            keras.callbacks.TensorBoard(log_dir=wd.logs, write_graph=False, profile_batch=0),
        ]
        warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")  # our streams are shuffled
        model.fit(
            inputs.training_stream(config, run, views, start_epoch * spe),
            epochs=config.train.steps // spe,
            steps_per_epoch=spe,
            initial_epoch=start_epoch,
            callbacks=callbacks,
            verbose=1,
        )
        state = checkpoint.read_state(wd.checkpoint)
        if stopper.stopped and state["step"] < config.train.steps:
            summary = report.training_summary(config, wd, state, run, status="stopped")
            workdir_lib.write_json(wd.summary, summary)
            out(
                f"stopped after step {state['step']} (train.stop_after_steps); run the same command again "
                "to continue to the end."
            )
            return summary

    net = components.embedder(model, config.method)
    workdir_lib.atomic_write(wd.embedder, lambda tmp: net.save(tmp), suffix=".keras")
    out(f"trained in {time.perf_counter() - started:.1f} s")
    if not evaluate_after:
        summary = report.training_summary(config, wd, state, run, status="trained")
        workdir_lib.write_json(wd.summary, summary)
        return summary
    return evaluate(wd.root, out=out, run=run)


def _previous_config(wd: workdir_lib.Workdir):
    if not os.path.exists(wd.config):
        return None
    try:
        return config_lib.from_json(open(wd.config, encoding="utf-8").read())
    except (ValueError, config_lib.ConfigError) as err:
        raise RunError(f"{wd.config} is not a valid run config ({err}); use a new --workdir.") from None
