"""Where the main job's time goes (issue 19): one ``tfcontrast`` command, timed phase by phase.

Runs the command in this process (``tfcontrast.cli.run``) with timers wrapped
around the job's phases, then prints, for each phase, its wall time and this
process's CPU time (all threads; steadier than wall time on a shared machine)
and their shares of the whole command:

* ``import``: importing the job (TensorFlow, Keras, tfcontrast; the lazy
  ``--help`` path is another branch's business);
* ``config``, ``data``, ``model build``, ``input pipeline``: before ``fit``;
* ``fit``: the whole ``model.fit``, split into its **first step** (graph
  tracing + one step), the **other steps**, the **epoch ends** (checkpoint,
  TensorBoard) and the **post-training wait** (last step's end to ``fit``
  returning; input-pipeline shutdown);
* ``save embedder``; ``evaluation``, split into embedding, the baselines'
  network, scores (index, kNN, retrieval, probe), collapse indicators, each
  plot and the SavedModel export;

(the plots are drawn in a background thread beside the scores and the
export, so their wall time overlaps those phases, and CPU times, being the
whole process's, count both threads while they overlap; a top-level phase
called inside another, such as the baseline's model build inside the
evaluation, is shown under it as ``model build (in evaluation)``),
and ``command / training``: the whole command's wall (and CPU) time over the
time spent in training steps (``fit`` minus its post-training wait; issue 19's
target: <= 1.25 on the bundled digits). Phases that nest are shown indented;
a phase that a version of the job does not have is left out, so the same
script profiles any commit.

Run (the default command; ``--`` separates the command's own arguments):

    python benchmarks/profile_main_job.py -- train --config directpred_digits --workdir runs/profile

The workdir must be new or empty (the script refuses to profile a resumed
run). ``--json FILE`` also writes the table as JSON.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import shlex
import sys
import time
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_clock = time.perf_counter
_cpu = time.process_time

# (module, attribute path, phase name, parent phase). A missing attribute is skipped.
PHASES = (
    ("tfcontrast.config", "load", "config", None),
    ("tfcontrast.jobs.inputs", "load_split", "data", None),
    ("tfcontrast.jobs.components", "initial_model", "model build", None),
    ("tfcontrast.jobs.inputs", "training_stream", "input pipeline", None),
    ("tfcontrast.jobs.workdir", "atomic_write", "file writes (checkpoints, embedder)", None),
    ("tfcontrast.jobs.evaluation", "evaluate", "evaluation", None),
    ("tfcontrast.jobs.workdir", "load_embedder", "load embedder", "evaluation"),
    ("tfcontrast.jobs.evaluation", "baseline_network", "baseline network", "evaluation"),
    ("tfcontrast.jobs.evaluation", "network_features", "embedding", "evaluation"),
    ("tfcontrast.jobs.evaluation", "pixel_features", "raw-pixel features", "evaluation"),
    ("tfcontrast.probe", "embed", "embedding", "evaluation"),
    ("tfcontrast.jobs.evaluation", "scores", "scores (index, kNN, retrieval, probe)", "evaluation"),
    ("tfcontrast.jobs.evaluation", "score_source", "scores (index, kNN, retrieval, probe)", "evaluation"),
    ("tfcontrast.probe", "fit_linear_probe", "probe fits", "scores (index, kNN, retrieval, probe)"),
    ("tfcontrast.probe", "linear_probe_accuracy", "probe fits", "scores (index, kNN, retrieval, probe)"),
    ("tfcontrast.jobs.evaluation", "collapse_indicators", "collapse indicators", "evaluation"),
    ("tfcontrast.jobs.evaluation", "write_plots", "plots", "evaluation"),
    ("tfcontrast.plots", "training_curves", "plot: training curves", "plots"),
    ("tfcontrast.plots", "embedding_map", "plot: embedding map", "plots"),
    ("tfcontrast.plots", "neighbor_grid", "plot: neighbour grid", "plots"),
    ("tfcontrast.plots", "singular_value_spectrum", "plot: spectrum", "plots"),
    ("tfcontrast.export", "export_saved_model", "export", "evaluation"),
)


class Timers:
    """Inclusive wall and CPU time per phase; a phase re-entered inside itself is counted once."""

    def __init__(self):
        self.wall = defaultdict(float)
        self.cpu = defaultdict(float)
        self.calls = defaultdict(int)
        self.parent = {}
        self._active = defaultdict(int)
        self.waits = []

    def add(self, name: str, wall: float, cpu: float, parent: str | None = None) -> None:
        self.wall[name] += wall
        self.cpu[name] += cpu
        self.calls[name] += 1
        self.parent.setdefault(name, parent)

    def wrap(self, fn, name: str, parent: str | None):
        """``fn`` timed as phase ``name``; a top-level phase called inside another one (the baseline's
        model build inside the evaluation) is counted as ``name (in <that phase>)`` under it."""

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            key, under = name, parent
            if parent is None:
                outer = [n for n, count in self._active.items() if count and self._top_level(n) and n != name]
                if outer:
                    key, under = f"{name} (in {outer[0]})", outer[0]
            if self._active[key]:
                return fn(*args, **kwargs)
            self._active[key] += 1
            wall, cpu = _clock(), _cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self._active[key] -= 1
                self.add(key, _clock() - wall, _cpu() - cpu, under)

        return timed

    def _top_level(self, name: str) -> bool:
        return name == "fit" or any(phase == name and parent is None for _, _, phase, parent in PHASES)


def _install(timers: Timers) -> None:
    """Wraps every phase function the job has, in the module that defines it and where it is imported."""
    import keras

    from tfcontrast import jobs

    # the command's job modules load lazily: import them (and every phase's module) before looking for copies
    for module_name in ("tfcontrast.jobs.kinds", "tfcontrast.jobs.images", "tfcontrast.jobs.training",
                        *(phase[0] for phase in PHASES)):
        importlib.import_module(module_name)
    loaded = [m for name, m in sys.modules.items() if name.startswith("tfcontrast") and m is not None]
    for module_name, attr, name, parent in PHASES:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr, None)
        if fn is None:
            continue
        timed = timers.wrap(fn, name, parent)
        for m in loaded:  # `from x import f` copies: replace them too
            for key, value in list(vars(m).items()):
                if value is fn:
                    setattr(m, key, timed)
    del jobs
    _wrap_fit(timers, keras)


def _wrap_fit(timers: Timers, keras) -> None:
    """``fit`` split into first step, other steps, callbacks, epoch ends and the post-training wait.

    Two callbacks: one first in the list (step boundaries), one after the
    job's own (the end of their ``on_train_end``); the post-training wait runs
    from there to ``fit`` returning.
    """
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    original = TensorFlowTrainer.fit

    class Steps(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.last_end = None
            self.steps = 0
            self.epoch_ended = False

        def on_train_batch_begin(self, batch, logs=None):
            now = _clock(), _cpu()
            if self.last_end is not None:
                name = "epoch ends (checkpoint, logs)" if self.epoch_ended else "callbacks between steps"
                timers.add(name, now[0] - self.last_end[0], now[1] - self.last_end[1], "fit")
            self.epoch_ended = False
            self.begin = now

        def on_train_batch_end(self, batch, logs=None):
            now = _clock(), _cpu()
            timers.add("first step (tracing)" if self.steps == 0 else "other steps",
                       now[0] - self.begin[0], now[1] - self.begin[1], "fit")
            self.steps += 1
            self.last_end = now

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_ended = True

    class End(keras.callbacks.Callback):
        def __init__(self, steps: Steps):
            super().__init__()
            self.steps, self.mark = steps, None

        def on_train_end(self, logs=None):
            self.mark = _clock(), _cpu()
            if self.steps.last_end is not None:
                last = self.steps.last_end
                timers.add("epoch ends (checkpoint, logs)", self.mark[0] - last[0], self.mark[1] - last[1], "fit")

    def fit(model, *args, callbacks=None, **kwargs):
        steps = Steps()
        end = End(steps)
        wall, cpu = _clock(), _cpu()
        timers._active["fit"] += 1  # the checkpoints' file writes are counted inside it
        try:
            return original(model, *args, callbacks=[steps, *list(callbacks or []), end], **kwargs)
        finally:
            timers._active["fit"] -= 1
            now = _clock(), _cpu()
            timers.add("fit", now[0] - wall, now[1] - cpu)
            if end.mark is not None:
                timers.add("post-training wait", now[0] - end.mark[0], now[1] - end.mark[1], "fit")
                timers.waits.append(now[0] - end.mark[0])

    TensorFlowTrainer.fit = fit


def table(timers: Timers, total_wall: float, total_cpu: float) -> list[dict]:
    rows = []

    def emit(name, depth):
        rows.append({
            "phase": name, "depth": depth, "calls": timers.calls[name], "wall_s": round(timers.wall[name], 3),
            "cpu_s": round(timers.cpu[name], 3), "wall_share": timers.wall[name] / total_wall,
        })
        for child in [c for c, p in timers.parent.items() if p == name]:
            emit(child, depth + 1)

    for name in [n for n, p in timers.parent.items() if p is None]:
        emit(name, 0)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="also write the table to this JSON file")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the tfcontrast command's arguments")
    args = parser.parse_args(argv)
    command = [a for a in args.command if a != "--"] or ["train", "--config", "directpred_digits", "--workdir",
                                                          "runs/profile"]
    if "--workdir" in command:
        workdir = command[command.index("--workdir") + 1]
        if os.path.isdir(workdir) and os.listdir(workdir):
            parser.error(f"{workdir} is not empty: profile a fresh run (remove it or pick another --workdir)")
    print("command: " + " ".join(shlex.quote(a) for a in ["python", "benchmarks/profile_main_job.py",
                                                           *(sys.argv[1:] if argv is None else argv)]), flush=True)
    timers = Timers()
    start_wall, start_cpu = _clock(), _cpu()
    import tfcontrast.jobs  # noqa: F401  (TensorFlow, Keras and the registries)
    from tfcontrast import cli

    timers.add("import", _clock() - start_wall, _cpu() - start_cpu)
    _install(timers)
    try:
        cli.run(["tfcontrast", *command])
    except SystemExit as exit_:
        if exit_.code:
            raise
    total_wall, total_cpu = _clock() - start_wall, _cpu() - start_cpu
    rows = table(timers, total_wall, total_cpu)
    steps_wall = timers.wall["first step (tracing)"] + timers.wall["other steps"]
    steps_cpu = timers.cpu["first step (tracing)"] + timers.cpu["other steps"]
    training_wall = timers.wall["fit"] - timers.wall["post-training wait"]
    training_cpu = timers.cpu["fit"] - timers.cpu["post-training wait"]
    print(f"\nprofile of: tfcontrast {' '.join(command)}")
    print(f"{'phase':52s} {'calls':>5s} {'wall s':>8s} {'CPU s':>8s} {'wall %':>7s}")
    for r in rows:
        label = "  " * r["depth"] + r["phase"]
        print(f"{label:52s} {r['calls']:5d} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {100 * r['wall_share']:6.1f}%")
    accounted = sum(r["wall_s"] for r in rows if r["depth"] == 0)
    print(f"{'other (not in a phase above)':52s} {'':5s} {total_wall - accounted:8.2f}")
    print(f"{'whole command':52s} {'':5s} {total_wall:8.2f} {total_cpu:8.2f} {100.0:6.1f}%")
    ratios = {
        "command / training (wall)": total_wall / training_wall,
        "command / training (CPU)": total_cpu / training_cpu,
        "command / training steps (wall)": total_wall / steps_wall,
        "evaluation / training (wall)": timers.wall["evaluation"] / training_wall,
        "evaluation / training (CPU)": timers.cpu["evaluation"] / training_cpu,
    }
    print("\ntraining = fit without its post-training wait; training steps = first step + other steps")
    for name, value in ratios.items():
        print(f"  {name:34s} {value:6.3f}")
    print("  (issue 19 target: command / training <= 1.25; issue 12: evaluation / training <= 0.3)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": command, "rows": rows, "total_wall_s": total_wall, "total_cpu_s": total_cpu,
                       "ratios": ratios}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
