"""Checkpoints that let an interrupted run continue exactly where it stopped, and refuse to continue from a bad one.

At the end of every epoch (``train.steps_per_epoch`` steps) :class:`Checkpoint`
writes, each file atomically (temporary name, then rename):

1. the weights of the model *and of its optimizer* (``model.save_weights``:
   every variable, the EMA target, DirectPred's correlation matrix, queues and
   memories, the step counters and the optimizer's moments and iteration count)
   to ``weights-<epoch>.weights.h5``;
2. ``state-<epoch>.json``: the epoch, the step, the weights file's name, size
   and SHA-256, the history of the logged metrics and the training wall time,
   sealed by the SHA-256 of its own canonical body;
3. ``state.json``, the same state (what other tools read);
4. then removes every checkpoint older than the previous epoch's, so the last
   two stay.

**Verification on resume.** :func:`restore` accepts a checkpoint only if its
state file parses, its seal matches (an edited ``step`` or ``weights`` is
caught), the weights file it names is a plain ``weights-<epoch>.weights.h5``
inside ``checkpoint/`` (never a path elsewhere), a regular file of the
recorded size and SHA-256 (flipped bytes are caught), its epoch and step agree
with each other and with the file name, and, once loaded, the optimizer's
iteration count equals the recorded step. A checkpoint that fails is reported
by name with the reason, and the previous one is tried (the run then repeats
the lost epoch with the same batches); if none is usable, :class:`CheckpointError`
says what to do. :func:`read_state` applies the same checks without loading
weights (used to decide whether a run is finished).

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
import hashlib
import json
import os
import re
import time
from typing import Callable

import keras

from tfcontrast import storage
from tfcontrast.jobs import workdir as workdir_lib

STATE_FILE = "state.json"
FORMAT = "tfcontrast.checkpoint"
_WEIGHTS = re.compile(r"^weights-(\d{6})\.weights\.h5$")
_EPOCH_STATE = re.compile(r"^state-(\d{6})\.json$")
_MAX_STATE_BYTES = 64 << 20


class CheckpointError(ValueError):
    """No checkpoint in the folder passes verification."""


def _weights_name(epoch: int) -> str:
    return f"weights-{epoch:06d}.weights.h5"


def _state_name(epoch: int) -> str:
    return f"state-{epoch:06d}.json"


def _seal(body: dict) -> str:
    canonical = json.dumps({k: v for k, v in body.items() if k != "seal"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_state(directory: str, path: str) -> dict:
    """The state in ``path`` if it is intact and consistent (weights not read); else ``CheckpointError``."""
    name = os.path.relpath(path, directory)
    try:
        state = json.loads(storage.read_regular_file(path, max_size=_MAX_STATE_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{name} is missing") from None
    except (storage.UnsafeFileError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{name} is not valid JSON (truncated or edited?): {err}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{name} is not a tfcontrast checkpoint state")
    if state.get("seal") != _seal(state):
        raise CheckpointError(f"{name} was modified after it was written (its seal does not match)")
    epoch, step, weights = state.get("epoch"), state.get("step"), state.get("weights")
    match = _WEIGHTS.match(weights) if isinstance(weights, str) else None
    if match is None:
        raise CheckpointError(f"{name} names the weights {weights!r}, not a weights file of this checkpoint folder")
    if not isinstance(epoch, int) or not isinstance(step, int) or epoch < 1 or int(match.group(1)) != epoch:
        raise CheckpointError(f"{name}: epoch {epoch!r} and weights file {weights!r} disagree")
    spe = state.get("steps_per_epoch")
    if not isinstance(spe, int) or step != epoch * spe:
        raise CheckpointError(f"{name}: step {step!r} is not epoch {epoch} x {spe!r} steps per epoch")
    return state


def _verify_weights(directory: str, state: dict) -> str:
    path = os.path.join(directory, state["weights"])
    try:
        payload = storage.read_regular_file(path, expected_size=state.get("weights_bytes"))
    except FileNotFoundError:
        raise CheckpointError(f"{state['weights']} is missing") from None
    except storage.UnsafeFileError as err:
        raise CheckpointError(str(err)) from None
    if hashlib.sha256(payload).hexdigest() != state.get("weights_sha256"):
        raise CheckpointError(f"{state['weights']} fails its SHA-256 check (the file is corrupted or was modified)")
    return path


def _candidates(directory: str) -> list[str]:
    """State files to try, newest first: ``state.json``, then ``state-<epoch>.json`` by epoch."""
    per_epoch = sorted(
        (p for p in glob.glob(os.path.join(glob.escape(directory), "state-*.json")) if _EPOCH_STATE.match(os.path.basename(p))),
        reverse=True,
    )
    return [os.path.join(directory, STATE_FILE), *per_epoch]


def _first_good(directory: str, accept: Callable[[dict], None], out: Callable[[str], None] | None) -> dict | None:
    if not os.path.isdir(directory) or not os.listdir(directory):
        return None
    problems = []
    seen = set()
    for path in _candidates(directory):
        if not os.path.lexists(path):
            continue
        try:
            state = _check_state(directory, path)
            if state["epoch"] in seen:
                continue
            seen.add(state["epoch"])
            accept(state)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if problems and out is not None:
            out(
                f"warning: checkpoint in {directory}: {'; '.join(problems)}; "
                f"falling back to the checkpoint of epoch {state['epoch']} (step {state['step']})."
            )
        return state
    raise CheckpointError(
        f"no usable checkpoint in {directory}: {'; '.join(problems) or 'no state file'}. "
        "Remove that folder to train from the start, or use a new --workdir."
    )


def read_state(directory: str, out: Callable[[str], None] | None = None) -> dict | None:
    """The last verified training state in ``directory`` (weights checked too), or ``None`` if there is none.

    Raises:
        CheckpointError: the folder holds checkpoints but none passes verification.
    """
    return _first_good(directory, lambda state: _verify_weights(directory, state), out)


def restore(model: keras.Model, directory: str, out: Callable[[str], None] | None = None) -> dict | None:
    """Loads the last verified checkpoint (model and optimizer) into ``model``; returns its state.

    Falls back to the previous checkpoint when the last one fails verification,
    reporting why through ``out`` (module docstring).

    Raises:
        CheckpointError: the folder holds checkpoints but none is usable.
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)

    def load(state):
        path = _verify_weights(directory, state)
        try:
            model.load_weights(path)
        except Exception as err:  # noqa: BLE001 - h5py/keras raise many types for a bad file
            raise CheckpointError(f"{state['weights']} cannot be loaded into this model: {err}") from None
        if model.optimizer is not None and int(model.optimizer.iterations.numpy()) != state["step"]:
            raise CheckpointError(
                f"{state['weights']} holds step {int(model.optimizer.iterations.numpy())}, "
                f"the state says {state['step']}"
            )

    return _first_good(directory, load, out)


class Checkpoint(keras.callbacks.Callback):
    """Saves weights + sealed state files at every epoch end (module docstring).

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
        epochs = int(state.get("epoch", 0))
        # A fallback may restore an older state than the newest history: keep one entry per finished epoch.
        self.history: dict[str, list[float]] = {k: list(v)[:epochs] for k, v in state.get("history", {}).items()}
        self.wall_time = float(state.get("train_wall_time_s", 0.0))
        self.sessions = int(state.get("sessions", 0)) + 1
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.wall_time += time.perf_counter() - self._epoch_start
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        os.makedirs(self.directory, exist_ok=True)
        done = epoch + 1
        name = _weights_name(done)
        path = os.path.join(self.directory, name)
        workdir_lib.atomic_write(path, lambda tmp: self.model.save_weights(tmp, overwrite=True), suffix=".weights.h5")
        payload = storage.read_regular_file(path)
        state = {
            "format": FORMAT,
            "epoch": done,
            "step": done * self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "weights": name,
            "weights_bytes": len(payload),
            "weights_sha256": hashlib.sha256(payload).hexdigest(),
            "history": self.history,
            "train_wall_time_s": self.wall_time,
            "sessions": self.sessions,
        }
        state["seal"] = _seal(state)
        workdir_lib.write_json(os.path.join(self.directory, _state_name(done)), state)
        workdir_lib.write_json(os.path.join(self.directory, STATE_FILE), state)
        keep = {_weights_name(done), _state_name(done), _weights_name(done - 1), _state_name(done - 1)}
        for old in glob.glob(os.path.join(glob.escape(self.directory), "weights-*.weights.h5")) + glob.glob(
            os.path.join(glob.escape(self.directory), "state-*.json")
        ):
            if os.path.basename(old) not in keep:
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
