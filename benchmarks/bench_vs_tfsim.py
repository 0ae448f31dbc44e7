"""tfcontrast against TensorFlow Similarity on the same work, side by side (issue 19).

Two workloads, each run by both libraries on the same synthetic, already
augmented views (two float32 views in [0, 1], drawn from one seed; no
augmentation inside the timing), plain ``model.fit``, SGD (learning rate
0.01, momentum 0.9), float32, each library's default ``jit_compile`` (off on a CPU; ``--jit`` turns
XLA on for both):

* ``cnn-simclr``: issue 19's small CNN (Conv32-BN-ReLU, Conv64/2-BN-ReLU,
  Conv128/2-BN-ReLU, global average pool; 3x3 kernels, no bias) with SimCLR
  at batch 128 on 32x32x3. tfcontrast builds the CNN in Keras 3 with
  ``tfcontrast.models.BatchNormalization``; TF Similarity in legacy Keras with
  its ``tf.keras.layers.BatchNormalization``;
* ``resnet18-simsiam``: each library's CIFAR ResNet-18 with SimSiam at batch
  32 on 32x32x3 (``tfcontrast.models.encoders.resnet18(stem="cifar")``;
  ``tensorflow_similarity.architectures.ResNet18Sim(include_top=False,
  pooling="avg")``, the backbone of TF Similarity's SimSiam example).

What legacy Keras fuses: only a plain ``BatchNormalization`` on 4-D or 5-D
inputs. So TF Similarity's small CNN runs fused, while its ResNet-18
(``SyncBatchNormalization`` throughout) and every head (2-D) run unfused.
tfcontrast fuses all of them on one replica.

Heads, ``--heads equal,default``:

* ``equal``: heads of the same size in both. SimCLR: a 2-layer projector
  Dense512(no bias)-BN-ReLU-Dense512 (``SimCLR(projection_dim=512,
  hidden_dim=512)``; TF Similarity gets the same layers as its ``projector``),
  temperature 0.5. SimSiam: a 3-layer 512 projector with BN after every layer
  (the last one without scale; TF Similarity's also without offset) and a
  512-512-512 predictor
  (``SimSiam(projection_dim=512, predictor_hidden_dim=512)``; TF Similarity:
  its ``get_projector(512, dim=512, num_layers=3)`` and ``get_predictor(512,
  hidden_dim=512)``);
* ``default``: what each library builds when not told (tfcontrast
  ``SimCLR(encoder)``: 128-d projection, hidden = feature width, temperature
  0.1; ``SimSiam(encoder)``: 3-layer 2048 projector, 512 predictor
  bottleneck. TF Similarity's ``create_contrastive_model``: 2-layer 512
  projector with an output BN, 512 predictor; its loss defaults).

Protocol. Every (workload, heads) pair is measured over ``--rounds`` rounds;
each round runs each library in its **own fresh process**, in alternating
order (A B, B A, ...). A process builds its model, runs one warm-up ``fit``
(tracing + ``--warmup`` steps), then ``--fits`` timed ``fit`` calls of
``--steps`` steps. For each timed fit it records the wall time and this
process's CPU time (all threads) from the start of the first step to the end
of the last (``on_train_batch_begin`` / ``on_train_batch_end``), and the
**post-training wait**: from the end of the last step to ``fit`` returning
(input-pipeline shutdown; issue 19 saw up to 5 s with tf.data autotuning).
Rates are medians over rounds; the ratio column is tfcontrast / TF
Similarity in images per second (images = batch examples, two views each).

Quiet-machine gate. Before each process, the CPU time that *other* processes
use is measured from ``/proc/stat`` over ``--gate-seconds``; above
``--max-other-cpu`` cores the gate waits and measures again, up to
``--gate-tries`` times, then refuses (exit 2) unless ``--allow-loaded``
(then the run is marked LOADED). During every timed process the same
measure (machine busy time minus the child's own CPU time) is printed next to
its numbers, so a window disturbed mid-way is visible.

TF Similarity 0.17.1 runs only on legacy Keras (``tf_keras``), so its process
runs in its own virtual environment, created on first use under
``--tfsim-venv`` (default ``~/.cache/tfcontrast-bench/tfsim-tf<version>``, a
few minutes and ~2 GB once) with this recipe, the same TensorFlow as ours::

    python -m venv VENV
    VENV/bin/python -m pip install "tensorflow==<ours>" "tf-keras==<major.minor>.*" \
        tabulate tqdm nmslib pandas matplotlib tensorflow-datasets umap-learn bokeh distinctipy
    VENV/bin/python -m pip install --no-deps "tensorflow-similarity==0.17.1"
    TF_USE_LEGACY_KERAS=1 VENV/bin/python bench_vs_tfsim.py --child tfsim ...

``--no-deps`` keeps pip away from TensorFlow (TF Similarity's extras pin
``tensorflow<=2.11``). The list after ``tf-keras`` is what ``import
tensorflow_similarity`` was found to need by trying (each missing module
installed until the import succeeds on TF 2.21): in the end every declared
runtime dependency, since its package ``__init__`` imports the samplers
(``tensorflow_datasets``), the visualisation (``umap``, ``bokeh``,
``distinctipy``, ``matplotlib``) and the default index (``nmslib``). They cost
start-up time only, outside every timed window. The tfcontrast process runs
with this interpreter and the ``tfcontrast`` it imports (set ``PYTHONPATH`` to
a checkout to measure that one). This is a benchmark, not a test: nothing
here runs in CI.

Run (final numbers, quiet machine, ~40 min on 2 cores):
    python benchmarks/bench_vs_tfsim.py --rounds 5
The same work, without parallelism (``--threads 1``: one intra-op and one
inter-op thread in both processes): CPU time per image then measures the
kernels each library runs, free of how well each schedules them on 2 cores:
    python benchmarks/bench_vs_tfsim.py --workloads cnn-simclr --heads equal --rounds 2 --threads 1
Smoke test (both sides end to end, a few minutes):
    python benchmarks/bench_vs_tfsim.py --quick --allow-loaded
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

LIBRARIES = ("tfcontrast", "tfsim")
WORKLOADS = {"cnn-simclr": (128, 50), "resnet18-simsiam": (32, 20)}  # workload: (batch, steps per timed fit)
IMAGE = (32, 32, 3)
POOL = 4  # distinct batches of views, cycled
RESULT = "RESULT "
TFSIM_VERSION = "0.17.1"
TFSIM_IMPORT_DEPS = ("tabulate", "tqdm", "nmslib", "pandas", "matplotlib", "tensorflow-datasets", "umap-learn",
                     "bokeh", "distinctipy")


def small_cnn(keras_module, batch_norm, input_shape=IMAGE):
    """Issue 19's small CNN: Conv32-BN-ReLU, Conv64/2-BN-ReLU, Conv128/2-BN-ReLU, global average pool.

    ``keras_module`` is ``keras`` (Keras 3) or ``tf.keras`` (legacy Keras in TF Similarity's process),
    ``batch_norm`` the BatchNorm class; 3x3 kernels without bias, "same" padding.
    """
    layers = keras_module.layers
    inputs = layers.Input(input_shape)
    h = inputs
    for filters, strides in ((32, 1), (64, 2), (128, 2)):
        h = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(h)
        h = layers.ReLU()(batch_norm()(h))
    return keras_module.Model(inputs, layers.GlobalAveragePooling2D()(h), name="small_cnn")


# ----------------------------------------------------------------------------- child processes


def _views(batch: int):
    """``POOL`` batches of two views, the same in both libraries' processes."""
    import numpy as np

    rng = np.random.default_rng(19)
    return tuple(rng.random((POOL * batch, *IMAGE), dtype=np.float32) for _ in range(2))


def _dataset(tf, batch: int):
    view_1, view_2 = _views(batch)
    ds = tf.data.Dataset.from_tensor_slices((view_1, view_2)).batch(batch, drop_remainder=True)
    return ds.repeat().prefetch(tf.data.AUTOTUNE)


def _timer_class(base):
    """A callback (on ``base``, Keras 3's or legacy Keras') timing the steps of each ``fit``."""

    class StepTimer(base):
        def __init__(self):
            super().__init__()
            self.first = self.last = None

        def on_train_batch_begin(self, batch, logs=None):
            if self.first is None:
                self.first = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, batch, logs=None):
            self.last = time.perf_counter(), time.process_time()

    return StepTimer


def _time_fits(model, dataset, timer_class, args) -> dict:
    """One warm-up fit, then ``args.fits`` timed fits of ``args.steps`` steps."""
    waits, walls, cpus, fit_walls = [], [], [], []
    for index in range(args.fits + 1):
        timer = timer_class()
        steps = args.warmup if index == 0 else args.steps
        started = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
        returned = time.perf_counter()
        waits.append(returned - timer.last[0])
        if index:
            walls.append(timer.last[0] - timer.first[0])
            cpus.append(timer.last[1] - timer.first[1])
            fit_walls.append(returned - started)
    images = args.batch * args.steps
    return {
        "images_per_s": statistics.median(images / w for w in walls),
        "cpu_s_per_image": statistics.median(c / images for c in cpus),
        "fit_images_per_s": statistics.median(images / w for w in fit_walls),
        "max_wait_s": max(waits[1:]),
        "warmup_wait_s": waits[0],
    }


def _child_tfcontrast(args) -> dict:
    import keras
    import tensorflow as tf

    import tfcontrast
    from tfcontrast.models import BatchNormalization, SimCLR, SimSiam, encoders

    keras.utils.set_random_seed(0)
    equal = args.heads == "equal"
    if args.workload == "cnn-simclr":
        encoder = small_cnn(keras, BatchNormalization)
        kwargs = {"projection_dim": 512, "hidden_dim": 512, "temperature": 0.5} if equal else {}
        model = SimCLR(encoder, **kwargs)
    else:
        encoder = encoders.resnet18(IMAGE, stem="cifar")
        model = SimSiam(encoder, **({"projection_dim": 512, "predictor_hidden_dim": 512} if equal else {}))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), **({"jit_compile": True} if args.jit else {}))
    result = _time_fits(model, _dataset(tf, args.batch), _timer_class(keras.callbacks.Callback), args)
    return {**result, "params": int(model.count_params()), "jit": bool(model.jit_compile),
            "version": f"tfcontrast {tfcontrast.__version__}, keras {keras.__version__}, tf {tf.__version__}"}


def _tfsim_heads(tf, workload: str, equal: bool, feature_dim: int):
    """(projector, predictor) for TF Similarity's create_contrastive_model: None = its default."""
    from tensorflow_similarity.models.contrastive_model import get_predictor, get_projector

    if not equal:
        return None, None
    if workload == "cnn-simclr":  # the same layers as tfcontrast's SimCLR(projection_dim=512, hidden_dim=512)
        inputs = tf.keras.layers.Input((feature_dim,))
        h = tf.keras.layers.Dense(512, use_bias=False)(inputs)
        h = tf.keras.layers.ReLU()(tf.keras.layers.BatchNormalization()(h))
        return tf.keras.Model(inputs, tf.keras.layers.Dense(512)(h), name="projector"), None
    return get_projector(feature_dim, dim=512, num_layers=3), get_predictor(512, hidden_dim=512)


def _child_tfsim(args) -> dict:
    import tensorflow as tf
    import tensorflow_similarity as tfsim
    import tf_keras

    if tf.keras.layers.Dense is not tf_keras.layers.Dense:
        raise RuntimeError("TF Similarity needs legacy Keras: run with TF_USE_LEGACY_KERAS=1")
    tf.keras.utils.set_random_seed(0)
    equal = args.heads == "equal"
    if args.workload == "cnn-simclr":
        backbone = small_cnn(tf.keras, tf.keras.layers.BatchNormalization)
        algorithm = "simclr"
        loss = tfsim.losses.SimCLRLoss(temperature=0.5) if equal else tfsim.losses.SimCLRLoss()
    else:
        backbone = tfsim.architectures.ResNet18Sim(IMAGE, include_top=False, pooling="avg")
        algorithm = "simsiam"
        loss = tfsim.losses.SimSiamLoss()
    projector, predictor = _tfsim_heads(tf, args.workload, equal, backbone.output_shape[-1])
    model = tfsim.models.create_contrastive_model(
        backbone=backbone, projector=projector, predictor=predictor, algorithm=algorithm
    )
    model.compile(optimizer=tf.keras.optimizers.SGD(0.01, momentum=0.9), loss=loss,
                  **({"jit_compile": True} if args.jit else {}))
    result = _time_fits(model, _dataset(tf, args.batch), _timer_class(tf.keras.callbacks.Callback), args)
    return {**result, "params": int(model.count_params()), "jit": bool(getattr(model, "_jit_compile", False)),
            "version": f"tensorflow-similarity {tfsim.__version__}, tf_keras {tf_keras.__version__}, "
                       f"tf {tf.__version__}"}


def child(args) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = (_child_tfcontrast if args.child == "tfcontrast" else _child_tfsim)(args)
    print(RESULT + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- parent


def _busy_jiffies() -> tuple[int, int]:
    """(busy, all) CPU jiffies of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children."""
    own, children = os.times(), os.times()
    return own.user + own.system + children.children_user + children.children_system


def other_cpu_cores(seconds: float) -> float:
    """Cores used by other processes over ``seconds`` (this process sleeps meanwhile)."""
    hz = os.sysconf("SC_CLK_TCK")
    busy0, _ = _busy_jiffies()
    own0, start = _own_cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    busy1, _ = _busy_jiffies()
    elapsed = time.perf_counter() - start
    return max((busy1 - busy0) / hz - (_own_cpu_seconds() - own0), 0.0) / elapsed


def gate(args) -> float:
    """Waits until other processes use at most ``args.max_other_cpu`` cores; returns the last reading."""
    for attempt in range(1, max(args.gate_tries, 1) + 1):
        load = other_cpu_cores(args.gate_seconds)
        if load <= args.max_other_cpu:
            return load
        print(f"    gate: other processes use {load:.3f} cores > {args.max_other_cpu} "
              f"(try {attempt}/{args.gate_tries})", flush=True)
        if attempt < args.gate_tries:
            time.sleep(args.gate_wait)
    if not args.allow_loaded:
        print(f"refused: the machine stayed loaded ({load:.3f} cores used by other processes); "
              "rerun on a quiet machine, or pass --allow-loaded for a smoke test", flush=True)
        sys.exit(2)
    return load


def tfsim_python(args) -> Path:
    """The TF Similarity virtual environment's interpreter, created with the recipe on first use."""
    tf_version = metadata.version("tensorflow")
    venv = Path(args.tfsim_venv or Path.home() / ".cache" / "tfcontrast-bench" / f"tfsim-tf{tf_version}")
    python = venv / "bin" / "python"
    marker = venv / f".tfsim-{TFSIM_VERSION}-ready"
    if marker.exists():
        return python
    major_minor = ".".join(tf_version.split(".")[:2])
    print(f"creating TF Similarity's virtualenv in {venv} (once; downloads TensorFlow {tf_version})", flush=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        pip + [f"tensorflow=={tf_version}", f"tf-keras=={major_minor}.*", *TFSIM_IMPORT_DEPS],
        pip + ["--no-deps", f"tensorflow-similarity=={TFSIM_VERSION}"],
    ]
    for command in steps:
        subprocess.run(command, check=True)
    check = "import tensorflow_similarity as s, tf_keras; print(s.__version__, tf_keras.__version__)"
    out = subprocess.run([str(python), "-c", check], check=True, capture_output=True, text=True,
                         env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    print(f"  ready: tensorflow-similarity, tf_keras = {out.stdout.split()}", flush=True)
    marker.touch()
    return python


def run_child(library: str, workload: str, heads: str, args, python: Path) -> dict:
    command = [str(python), os.path.abspath(__file__), "--child", library, "--workload", workload,
               "--heads", heads, "--batch", str(args.batch or WORKLOADS[workload][0]),
               "--steps", str(args.steps or WORKLOADS[workload][1]),
               "--warmup", str(args.warmup), "--fits", str(args.fits)] + (["--jit"] if args.jit else [])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if args.threads:  # TensorFlow reads these at start-up, for both libraries alike
        env.update(TF_NUM_INTRAOP_THREADS=str(args.threads), TF_NUM_INTEROP_THREADS=str(args.threads))
    if library == "tfsim":
        env["TF_USE_LEGACY_KERAS"] = "1"
        env.pop("PYTHONPATH", None)  # nothing of ours on its path
    hz = os.sysconf("SC_CLK_TCK")
    busy0, _ = _busy_jiffies()
    own0, start = _own_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    busy1, _ = _busy_jiffies()
    others = max((busy1 - busy0) / hz - (_own_cpu_seconds() - own0), 0.0) / elapsed
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode or not lines:
        raise RuntimeError(f"{library} {workload} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-6000:]}")
    return {**json.loads(lines[-1][len(RESULT):]), "other_cores_during": others, "process_s": elapsed}


def _median(rows: list, key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--heads", default="equal,default", help="equal, default or equal,default")
    parser.add_argument("--rounds", type=int, default=5, help="processes per library and setting, alternating")
    parser.add_argument("--steps", type=int, default=0, help="override the steps per timed fit (50 / 20)")
    parser.add_argument("--fits", type=int, default=2, help="timed fit calls per process (median)")
    parser.add_argument("--warmup", type=int, default=3, help="steps of the warm-up fit (tracing included)")
    parser.add_argument("--batch", type=int, default=0, help="override the workloads' batches (128 / 32)")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True in both libraries")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow's intra- and inter-op threads in both processes (0: TensorFlow's default)")
    parser.add_argument("--max-other-cpu", type=float, default=0.05, help="gate: cores other processes may use")
    parser.add_argument("--gate-seconds", type=float, default=2.0, help="gate measurement window")
    parser.add_argument("--gate-tries", type=int, default=30)
    parser.add_argument("--gate-wait", type=float, default=10.0, help="seconds between gate tries")
    parser.add_argument("--allow-loaded", action="store_true", help="run anyway after the gate tries (smoke tests)")
    parser.add_argument("--tfsim-venv", default=None, help="TF Similarity's virtualenv (created if missing)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 round, 2 steps, 1 timed fit, batch 8")
    parser.add_argument("--child", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.rounds, args.steps, args.fits, args.warmup, args.batch = 1, 2, 1, 1, 8
    workloads = [w for w in args.workloads.split(",") if w]
    heads = [h for h in args.heads.split(",") if h]
    pythons = {"tfcontrast": Path(sys.executable), "tfsim": tfsim_python(args)}
    started = time.perf_counter()
    print(f"{os.cpu_count()} CPUs; {args.rounds} rounds x {args.fits} timed fits per process; "
          f"gate: other processes <= {args.max_other_cpu} cores; jit_compile {'on' if args.jit else 'default'}; "
          f"TensorFlow threads {args.threads or 'default'}",
          flush=True)
    results = {}
    loaded = False
    for workload in workloads:
        for head in heads:
            rows = {library: [] for library in LIBRARIES}
            for round_ in range(args.rounds):
                order = LIBRARIES if round_ % 2 == 0 else LIBRARIES[::-1]
                for library in order:
                    before = gate(args)
                    loaded |= before > args.max_other_cpu
                    row = run_child(library, workload, head, args, pythons[library])
                    row["other_cores_before"] = before
                    rows[library].append(row)
                    print(f"  {workload:17s} {head:8s} round {round_ + 1} {library:10s} "
                          f"{row['images_per_s']:8.1f} img/s  {1e3 * row['cpu_s_per_image']:7.2f} CPU-ms/img  "
                          f"fit {row['fit_images_per_s']:8.1f} img/s  max wait {row['max_wait_s']:5.2f} s  "
                          f"other cores before {before:.3f} / during {row['other_cores_during']:.3f}",
                          flush=True)
            results[(workload, head)] = rows
    report(results, args, loaded, time.perf_counter() - started)


def report(results: dict, args, loaded: bool, seconds: float) -> None:
    print(f"\n{'LOADED MACHINE: numbers are not final. ' if loaded else ''}Medians over {args.rounds} rounds "
          f"({seconds / 60:.1f} min). ratio = tfcontrast / TF Similarity (images/s; CPU: images per CPU-second)")
    header = (f"{'workload':17s} {'heads':8s} | {'tfc img/s':>9s} {'tfsim img/s':>11s} {'ratio':>6s} | "
              f"{'tfc CPU-ms/img':>14s} {'tfsim CPU-ms/img':>16s} {'CPU ratio':>9s} | "
              f"{'fit ratio':>9s} | {'max wait tfc/tfsim (s)':>22s} | {'params tfc / tfsim':>23s} | max other cores")
    print(header)
    print("-" * len(header))
    for (workload, head), rows in results.items():
        tfc, sim = rows["tfcontrast"], rows["tfsim"]
        rate = _median(tfc, "images_per_s") / _median(sim, "images_per_s")
        cpu = _median(sim, "cpu_s_per_image") / _median(tfc, "cpu_s_per_image")
        fit = _median(tfc, "fit_images_per_s") / _median(sim, "fit_images_per_s")
        waits = f"{max(r['max_wait_s'] for r in tfc):.2f} / {max(r['max_wait_s'] for r in sim):.2f}"
        others = max(max(r["other_cores_before"], r["other_cores_during"]) for r in tfc + sim)
        print(f"{workload:17s} {head:8s} | {_median(tfc, 'images_per_s'):9.1f} {_median(sim, 'images_per_s'):11.1f} "
              f"{rate:5.2f}x | {1e3 * _median(tfc, 'cpu_s_per_image'):14.2f} "
              f"{1e3 * _median(sim, 'cpu_s_per_image'):16.2f} {cpu:8.2f}x | {fit:8.2f}x | {waits:>22s} | "
              f"{tfc[0]['params']:>10,d} / {sim[0]['params']:<10,d} | {others:.3f}")
    print("\nfit ratio: the same over whole fit calls (start-up and the post-training wait included).")
    print("max wait: longest time from the last step's end to fit returning, over every timed fit.")
    first = next(iter(results.values()))
    for library, name in (("tfcontrast", "tfcontrast"), ("tfsim", "TF Similarity")):
        print(f"{name}: {first[library][0]['version']}, jit_compile={first[library][0]['jit']}")


if __name__ == "__main__":
    main()
