"""How ``tfcontrast train`` shows progress: a bar on a terminal, one line per epoch elsewhere.

Keras' progress bar redraws itself many times per epoch; in a log file, a CI
job or a notebook reading a pipe every redraw becomes a line. When standard
output is not a terminal the command turns the bar off and prints one line
per epoch instead (:class:`EpochLines`)::

    epoch 3/10 (step 330/1100) 4.1 s: erank 52.31, loss 0.4113, proj_std 0.1052
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import keras

MODES = ("auto", "bar", "lines")


def use_bar(mode: str = "auto", stream=None) -> bool:
    """Whether to draw Keras' bar: ``"bar"``, ``"lines"``, or ``"auto"`` = when ``stream`` (stdout) is a terminal."""
    if mode not in MODES:
        raise ValueError(f"`progress` must be one of {MODES}, got {mode!r}.")
    if mode != "auto":
        return mode == "bar"
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class EpochLines(keras.callbacks.Callback):
    """Prints one line per epoch: epoch, step, seconds, and every logged value.

    Args:
        steps_per_epoch: steps of one epoch (to print the step).
        epochs: epochs of the whole run (the ``k`` of ``epoch i/k``).
        out: where the line goes (default ``print``).
    """

    def __init__(self, steps_per_epoch: int, epochs: int, out: Callable[[str], None] = print):
        super().__init__()
        self.steps_per_epoch, self.epochs, self.out = int(steps_per_epoch), int(epochs), out
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - (self._started or time.perf_counter())
        values = ", ".join(f"{key} {_number(value)}" for key, value in sorted((logs or {}).items()))
        self.out(
            f"epoch {epoch + 1}/{self.epochs} (step {(epoch + 1) * self.steps_per_epoch}/"
            f"{self.epochs * self.steps_per_epoch}) {seconds:.1f} s: {values}"
        )


def _number(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)
