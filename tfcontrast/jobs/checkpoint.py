"""Checkpoints that let an interrupted run continue exactly where it stopped.

At the end of every epoch (``train.steps_per_epoch`` steps) :class:`Checkpoint`
writes

1. the weights of the model *and of its optimizer* (``model.save_weights``:
   every variable, the EMA target, DirectPred's correlation matrix, the step
   counters and the optimizer's moments and iteration count) to
   ``weights-<epoch>.weights.h5``, atomically;
2. then ``state.json`` naming that file, with the epoch, the step, the
   history of the logged metrics and the training wall time so far, atomically;
3. then removes older weight files.

``state.json`` always names a complete weights file, whatever moment the
process is killed at. :func:`restore` loads it back before ``fit`` starts, and
the run resumes at the next epoch with the batches that epoch would have had
(:func:`tfcontrast.jobs.inputs.training_stream`).

Why not ``keras.callbacks.BackupAndRestore``: it overwrites its files in
place (a kill during the write leaves a broken checkpoint) and it restores the
epoch inside ``fit``, after the input pipeline exists, so a seeded pipeline
cannot start at the restored step; here the step is known before the pipeline
is built.
"""

from __future__ import annotations

import glob
import os
import time

import keras

from tfcontrast.jobs import workdir as workdir_lib

STATE_FILE = "state.json"


def read_state(directory: str) -> dict | None:
    """The last saved training state in ``directory``, or ``None``."""
    path = os.path.join(directory, STATE_FILE)
    return workdir_lib.read_json(path) if os.path.exists(path) else None


def restore(model: keras.Model, directory: str) -> dict | None:
    """Loads the weights (model and optimizer) of the last checkpoint into ``model``; returns its state."""
    state = read_state(directory)
    if state is None:
        return None
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(directory, state["weights"]))
    return state


class Checkpoint(keras.callbacks.Callback):
    """Saves weights + ``state.json`` at every epoch end (module docstring).

    Args:
        directory: the checkpoint folder.
        steps_per_epoch: steps of one epoch (to record the step).
        state: the state restored at start (``None`` for a new run): its
            history and wall time are continued.
    """

    def __init__(self, directory: str, steps_per_epoch: int, state: dict | None = None):
        super().__init__()
        self.directory = directory
        self.steps_per_epoch = int(steps_per_epoch)
        state = state or {}
        self.history: dict[str, list[float]] = {k: list(v) for k, v in state.get("history", {}).items()}
        self.wall_time = float(state.get("train_wall_time_s", 0.0))
        self.sessions = int(state.get("sessions", 0)) + 1
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.wall_time += time.perf_counter() - self._epoch_start
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        name = f"weights-{epoch + 1:06d}.weights.h5"
        path = os.path.join(self.directory, name)
        workdir_lib.atomic_write(path, lambda tmp: self.model.save_weights(tmp, overwrite=True), suffix=".weights.h5")
        state = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * self.steps_per_epoch,
            "weights": name,
            "history": self.history,
            "train_wall_time_s": self.wall_time,
            "sessions": self.sessions,
        }
        workdir_lib.write_json(os.path.join(self.directory, STATE_FILE), state)
        for old in glob.glob(os.path.join(self.directory, "weights-*.weights.h5")):
            if os.path.basename(old) != name:
                os.remove(old)


class StopAfter(keras.callbacks.Callback):
    """Stops ``fit`` at the end of the epoch that reaches ``step`` (``train.stop_after_steps``; 0: never)."""

    def __init__(self, step: int, steps_per_epoch: int):
        super().__init__()
        self.step = int(step)
        self.steps_per_epoch = int(steps_per_epoch)
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        if self.step and (epoch + 1) * self.steps_per_epoch >= self.step:
            self.model.stop_training = True
            self.stopped = True
