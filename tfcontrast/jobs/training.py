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
3. create the workdir, write ``config.json`` and ``input_contract.json`` (the
   shape, value range and scale of the training inputs) and train with
   ``model.fit`` from the restored epoch: a progress bar on a terminal, one
   line per epoch otherwise (:mod:`tfcontrast.jobs.progress`), TensorBoard logs
   in ``logs/``, a checkpoint every epoch (:mod:`tfcontrast.jobs.checkpoint`).
   Two alarms watch the training: a non-finite loss, metric or weight stops it
   with a :class:`RunError` naming the step
   (:class:`tfcontrast.callbacks.TerminateOnNonFinite`; the last checkpoint
   stays the last good epoch), and for the self-supervised methods a
   :class:`tfcontrast.callbacks.CollapseAlarm` prints a warning when the
   projection std or effective rank collapses (also written into
   ``summary.json`` and printed again at the end);
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
import ml_collections

from tfcontrast import config as config_lib, storage
from tfcontrast.callbacks import CollapseAlarm, NonFiniteError, TerminateOnNonFinite
from tfcontrast.jobs import checkpoint, components, inputs, progress as progress_lib, report, workdir as workdir_lib
from tfcontrast.jobs.evaluation import evaluate


class RunError(ValueError):
    """The workdir holds something this command cannot continue."""


def train(
    config, workdir: str, out: Callable[[str], None] = print, evaluate_after: bool = True, progress: str = "auto"
) -> dict:
    """Trains (or resumes) the run of ``config`` in ``workdir``; returns its summary (see the module docstring).

    With ``evaluate_after=False`` it stops after saving the embedding network
    (and returns the training part of the summary, status ``"trained"``);
    :func:`tfcontrast.jobs.evaluation.evaluate` finishes the run later.
    ``progress``: ``"bar"`` (Keras' progress bar), ``"lines"`` (one line per
    epoch through ``out``) or ``"auto"``: the bar when stdout is a terminal.

    Raises:
        ConfigError: a bad config or data (before anything is written).
        RunError: ``workdir`` is a file or holds a run of another config; the
            training turned non-finite (the message names the step).
    """
    started = time.perf_counter()
    config = config_lib.validate(config)
    bar = progress_lib.use_bar(progress)
    wd = workdir_lib.Workdir(workdir)
    check_workdir(wd, config)
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
    state = restore_checkpoint(model, wd, out)
    spe = config.train.steps_per_epoch
    start_epoch = state["epoch"] if state else 0

    os.makedirs(wd.root, exist_ok=True)
    workdir_lib.write_json(wd.config, config.to_dict())  # new, or differing at most in execution keys
    workdir_lib.write_json(wd.contract, inputs.input_contract(run).to_dict())
    if start_epoch:
        out(f"resuming {config.method} in {wd.root} at step {start_epoch * spe} of {config.train.steps}")
    else:
        out(f"training {config.method} in {wd.root}: {config.train.steps} steps, {len(run.x_train)} training examples")

    if start_epoch * spe < config.train.steps:
        saver = checkpoint.Checkpoint(wd.checkpoint, spe, state)
        stop = config.train.stop_after_steps
        stopper = checkpoint.StopAfter(stop if stop > start_epoch * spe else 0, spe)
        callbacks = [
            TerminateOnNonFinite(raise_error=True, check_weights="epoch"),  # before the checkpoint sees the epoch
            saver,
            stopper,
            keras.callbacks.TensorBoard(log_dir=wd.logs, write_graph=False, profile_batch=0),
        ]
        alarm = _collapse_alarm(model, state, out, bar)
        if alarm is not None:
            callbacks.append(alarm)
        if not bar:
            callbacks.append(progress_lib.EpochLines(spe, config.train.steps // spe, out))
        warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")  # our streams are shuffled
        try:
            model.fit(
                inputs.training_stream(config, run, views, start_epoch * spe),
                epochs=config.train.steps // spe,
                steps_per_epoch=spe,
                initial_epoch=start_epoch,
                callbacks=callbacks,
                verbose=1 if bar else 0,
            )
        except NonFiniteError as err:
            last = checkpoint.read_state(wd.checkpoint)
            kept = f"the last checkpoint (step {last['step']}) is kept" if last else "no checkpoint was written"
            raise RunError(f"training stopped: {err} Nothing after the last good epoch was saved; {kept}.") from None
        state = checkpoint.read_state(wd.checkpoint)
        if stopper.stopped and state["step"] < config.train.steps:
            summary = report.training_summary(config, wd, state, run, status="stopped", feature_dim=_feature_dim(model))
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
        summary = report.training_summary(config, wd, state, run, status="trained", feature_dim=_feature_dim(model))
        workdir_lib.write_json(wd.summary, summary)
        return summary
    return evaluate(wd.root, out=out, run=run)


def _feature_dim(model) -> int | None:
    value = getattr(model, "feature_dim", None)
    return value if isinstance(value, int) else None


def _collapse_alarm(model, state: dict | None, out: Callable[[str], None], bar: bool) -> CollapseAlarm | None:
    """The collapse alarm of a model that logs ``proj_std`` / ``erank`` (else ``None``); resumed runs keep their start."""
    if not getattr(model, "collapse_metrics", False):
        return None
    history = (state or {}).get("history") or {}
    initial = {key: values[0] for key, values in history.items() if key in (CollapseAlarm.STD_KEY, CollapseAlarm.RANK_KEY) and values}
    # below a progress bar, start on a new line (the bar's epoch line is finished after the callbacks)
    return CollapseAlarm(initial=initial, out=(lambda message: out("\n" + message)) if bar else out)


def check_workdir(wd: workdir_lib.Workdir, config) -> ml_collections.ConfigDict | None:
    """The config of the run already in ``wd`` (``None`` for a new or empty folder), which must be ``config``.

    Raises:
        RunError: ``wd`` is a folder a run may not use (a file, the current or home folder...), is not
            empty and holds no run, or holds a run of another config.
    """
    try:
        storage.check_folder(wd.root)
    except ValueError as err:
        raise RunError(str(err)) from None
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
    return previous


def restore_checkpoint(
    model, wd: workdir_lib.Workdir, out: Callable[[str], None] = print, directory: str | None = None
) -> dict | None:
    """The run's last usable checkpoint restored into ``model`` (its state), or ``None`` for a new run.

    ``directory``: a checkpoint folder of the run other than ``wd.checkpoint``
    (a later stage's, e.g. the text job's ``checkpoint_pairs/``).

    Raises:
        RunError: no checkpoint of the run can be restored.
    """
    directory = wd.checkpoint if directory is None else directory
    try:
        return checkpoint.restore(model, directory, out=out)
    except (OSError, ValueError) as err:
        raise RunError(f"cannot restore the checkpoint in {directory}: {err}") from None


def _previous_config(wd: workdir_lib.Workdir):
    if not os.path.exists(wd.config):
        return None
    try:
        return config_lib.from_json(open(wd.config, encoding="utf-8").read())
    except (ValueError, config_lib.ConfigError) as err:
        raise RunError(f"{wd.config} is not a valid run config ({err}); use a new --workdir.") from None
