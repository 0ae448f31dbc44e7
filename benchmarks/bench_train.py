"""Training throughput per method: input pipeline, train step, ``fit`` end to end.

Setting (issue 7): a CIFAR-style ResNet-18 (3x3 stride-1 stem, no max-pool,
``tfcontrast.models.encoders.resnet18((32, 32, 3), stem="cifar")``), synthetic
32x32x3 images in [0, 1], one global batch. For each method (SimCLR, BYOL,
DirectPred, SimSiam, EmbeddingModel + semi-hard TripletLoss) it prints, side by
side in one process, images per second (examples; each SSL example is two views)
of:

* ``pipeline``: the input pipeline alone (``tfcontrast.augment.two_view_dataset``
  with the method's recipe; one augmented view + labels for EmbeddingModel),
  iterated without a model;
* ``step``: ``model.train_function`` on one pre-made batch of views repeated
  (``tf.data.Dataset.from_tensors(...).repeat()``): the compiled step alone;
* ``fit``: ``model.fit`` on the pipeline (``steps_per_epoch`` = steps per
  window, one epoch per window), callbacks and all;

``step`` with ``jit_compile`` off and on (their windows interleaved, A B A B,
so that load drifts on a shared machine hit both alike), then ``fit`` with the
faster setting, against step-alone windows taken between its epochs with the
same compiled function (fit with the slower setting says nothing new and, for
XLA on CPU, costs minutes). Every figure is the median over ``--windows``
timed windows of ``--steps`` steps after a warm-up (compilation + 2 steps;
``fit`` gets a warm-up epoch). Then the issue's ratios: ``pipeline / step``
(target >= 3), ``fit / step`` (target >= 0.9), DirectPred's step time over
BYOL's at projection d = 128 and 256 (interleaved; target <= 1.10), and which
``jit_compile`` is faster per method.

``--profile`` adds, for BYOL, where the step's time goes: the encoder forward
on the 2B views, forward + backward, the full step, and the step without the
collapse metrics (one 512 x 512 ``eigvalsh`` per step).

``--stalls`` measures instead the **post-training wait per ``fit``** (issue
19): the time from the end of the last callback's ``on_train_end`` to ``fit``
returning, when Keras destroys the input pipeline's iterator. It runs the
main job's own training streams and models (``tfcontrast.jobs``: the
``two_views`` stream of ``directpred_digits`` and the ``class_balanced``
stream of ``supcon_digits``, digits, batch and model as configured), each fit
``--stall-steps`` steps on a fresh iterator, in two settings whose fits
alternate: ``steady`` (the pipelines as shipped,
``tfcontrast.data.steady_pipeline``: prefetch 2, tf.data autotuning off) and
``autotune`` (the same pipelines ending in ``prefetch(tf.data.AUTOTUNE)`` with
autotuning on, as before issue 19). It prints per setting the max and median
wait, the fits that waited > 1 s, and steps/s. The waits need fits of more
than ~15 s to appear (the autotuning thread's wake-up period doubles as the
iterator lives); they are intermittent, hence several fits.

``--policies float32,mixed_bfloat16`` repeats everything under each Keras
mixed-precision policy (``mixed_float16`` too; on a GPU, use batch 512). On a
CPU, ``mixed_float16`` is impractical: TensorFlow has no fast float16
convolution backprop there (a ResNet-18 forward + backward on 8 images took
53 s against 0.23 s in float32 on the 2-core machine), while
``mixed_bfloat16`` runs on oneDNN (AMX/AVX-512 BF16 where the CPU has them).

The full setting (batch 256) is slow on a 2-core CPU: a float32 ResNet-18 BYOL
step takes tens of seconds there. Every figure is a ratio of rates measured in
the same run, so a smaller ``--batch`` keeps them meaningful (the DirectPred /
BYOL ratio is then conservative: its eigendecomposition costs the same at any
batch while the step shrinks). The machine may be shared: compare ratios, not
absolute numbers, across runs.

Run:  python benchmarks/bench_train.py --stalls         (post-training waits: 2 x 2 x 4 fits of 400 steps, ~10 min)
      python benchmarks/bench_train.py --quick          (development: batch 16, 2 windows of 1 step, ~10 min on 2 cores)
      python benchmarks/bench_train.py --batch 32 --steps 1 --windows 5 --profile
                                                        (what 2 CPU cores allow: ~25 min)
      python benchmarks/bench_train.py                  (issue 7 setting: batch 256; hours on 2 cores)
      python benchmarks/bench_train.py --batch 512 --policies mixed_bfloat16,mixed_float16   (GPU)
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcontrast import augment, losses  # noqa: E402
from tfcontrast.models import BYOL, DirectPred, SimCLR, SimSiam  # noqa: E402
from tfcontrast.models.encoders import resnet18  # noqa: E402

IMAGE = (32, 32, 3)
METHODS = ("simclr", "byol", "directpred", "simsiam", "embedding")
RECIPE = {"simclr": "simclr", "byol": "byol", "directpred": "byol", "simsiam": "simclr", "embedding": "simclr"}
NUM_CLASSES = 32


def embedding_model(encoder):
    """tfcontrast's EmbeddingModel when present, else an equivalent stand-in (encoder + Dense + L2)."""
    try:
        from tfcontrast.models import EmbeddingModel

        return EmbeddingModel(encoder, embedding_dim=128), "tfcontrast.models.EmbeddingModel"
    except ImportError:
        inputs = keras.Input(IMAGE)
        h = keras.layers.Dense(128)(encoder(inputs))
        outputs = keras.layers.UnitNormalization()(h)
        return keras.Model(inputs, outputs), "stand-in keras.Model(encoder -> Dense(128) -> L2)"


def build(method: str, projection_dim: int, collapse_metrics: bool = True):
    encoder = resnet18(IMAGE, stem="cifar")
    kw = {"collapse_metrics": collapse_metrics}
    if method == "simclr":
        return SimCLR(encoder, projection_dim=128, temperature=0.2, **kw), "SimCLR(d=128)"
    if method == "byol":
        return BYOL(encoder, projection_dim=projection_dim, hidden_dim=4096, total_steps=1000, **kw), (
            f"BYOL(d={projection_dim}, hidden=4096)"
        )
    if method == "directpred":
        return DirectPred(encoder, projection_dim=projection_dim, hidden_dim=4096, total_steps=1000, **kw), (
            f"DirectPred(d={projection_dim}, freq=1)"
        )
    if method == "simsiam":
        return SimSiam(encoder, projection_dim=2048, **kw), "SimSiam(d=2048, pred=512)"
    return embedding_model(encoder)


def compile_model(model, method: str, jit: bool):
    loss = losses.TripletLoss(margin=0.2, mining="semi-hard") if method == "embedding" else None
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=loss, jit_compile=jit)
    model.make_train_function()
    return model


def pipeline(method: str, images: np.ndarray, labels: np.ndarray, batch: int) -> tf.data.Dataset:
    recipe = augment.TwoViewAugmentation(RECIPE[method], IMAGE[:2], seed=0)
    if method != "embedding":
        return augment.two_view_dataset(images, batch, recipe, seed=0, repeat=True)
    one_view = tf.function(recipe.view, jit_compile=recipe.supports_jit)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images), seed=0).repeat()
    ds = ds.batch(batch, drop_remainder=True)
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    ds = tf.data.Dataset.zip(ds, seeds).map(
        lambda xy, s: (one_view(xy[0], s), xy[1]), num_parallel_calls=tf.data.AUTOTUNE
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def _sync(outputs):
    for t in tf.nest.flatten(outputs):
        if hasattr(t, "numpy"):
            t.numpy()


class Rate(NamedTuple):
    """Images per second of wall time, and per second of this process's CPU time (all threads).

    On a shared machine the wall rate moves with the other processes' load;
    the CPU rate is the cost of the work itself and is much steadier, so the
    cost ratios are given on both.
    """

    wall: float
    cpu: float


def _window(run, steps: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        out = run()
    _sync(out)
    return time.perf_counter() - wall, time.process_time() - cpu


def _median_rate(windows: list, images: int) -> Rate:
    return Rate(*(statistics.median(images / w[k] for w in windows) for k in (0, 1)))


def rate(run, batch: int, steps: int, windows: int, warmup: int = 2) -> Rate:
    """Median over windows of batch * steps / seconds; ``run()`` does one step and returns its outputs."""
    return interleaved({"": run}, batch, steps, windows, warmup)[""]


def interleaved(runs: dict, batch: int, steps: int, windows: int, warmup: int = 2) -> dict:
    """Like :func:`rate` for several candidates, their windows taken in turn (A B A B ...).

    On a shared machine the load drifts; alternating windows exposes every
    candidate to the same drift, so their ratio is fair.
    """
    for run in runs.values():
        for _ in range(warmup):
            _sync(run())
    timings = {name: [] for name in runs}
    for _ in range(windows):
        for name, run in runs.items():
            timings[name].append(_window(run, steps))
    return {name: _median_rate(values, batch * steps) for name, values in timings.items()}


class _FitVsStep(keras.callbacks.Callback):
    """Times each ``fit`` epoch and, between epochs, a window of the step alone on pre-made views."""

    def __init__(self, step_run, steps: int):
        super().__init__()
        self.step_run, self.steps = step_run, steps
        self.fit_windows, self.step_windows = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.fit_windows.append((time.perf_counter() - self._start[0], time.process_time() - self._start[1]))
        self.step_windows.append(_window(self.step_run, self.steps))


def fit_and_step_rates(model, dataset, step_run, batch: int, steps: int, windows: int) -> tuple[Rate, Rate]:
    """(fit, step alone), windows interleaved inside one ``fit`` (the first epoch is a warm-up)."""
    timer = _FitVsStep(step_run, steps)
    model.fit(dataset, epochs=windows + 1, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[timer])
    return _median_rate(timer.fit_windows[1:], batch * steps), _median_rate(timer.step_windows[1:], batch * steps)


def measure(method, policy, args, images, labels, projection_dim, jits):
    """Pipeline, step per jit setting (interleaved), then fit vs step with the faster setting."""
    keras.mixed_precision.set_global_policy(policy)
    ds = pipeline(method, images, labels, args.batch)
    it = iter(ds)
    pipe = rate(lambda: next(it), args.batch, args.steps * 4, args.windows)
    batch_views = next(it)
    models, runs = {}, {}
    for jit in jits:
        keras.utils.set_random_seed(0)
        model, name = build(method, projection_dim)
        models[jit] = compile_model(model, method, jit)
        step_it = iter(tf.data.Dataset.from_tensors(batch_views).repeat())
        runs[jit] = lambda f=model.train_function, i=step_it: f(i)
    steps = interleaved(runs, args.batch, args.steps, args.windows)
    best = max(steps, key=lambda j: steps[j].wall)
    fit, step_in_fit = fit_and_step_rates(models[best], ds, runs[best], args.batch, args.steps, args.windows)
    keras.mixed_precision.set_global_policy("float32")
    print(
        f"  {method:10s} step " + "  ".join(f"jit {'on' if j else 'off'} {r.wall:7.2f}" for j, r in steps.items())
        + f"  | jit {'on' if best else 'off'}: fit {fit.wall:7.2f}, step between fit epochs "
        f"{step_in_fit.wall:7.2f} img/s (per CPU-second: {fit.cpu:.2f}, {step_in_fit.cpu:.2f})",
        flush=True,
    )
    return {"name": name, "pipeline": pipe, "steps": steps, "best": best, "fit": fit, "step_in_fit": step_in_fit}


def directpred_vs_byol(policy, args, d: int, jit: bool) -> tuple[Rate, Rate]:
    """(BYOL, DirectPred) step rates at projection d, windows interleaved."""
    keras.mixed_precision.set_global_policy(policy)
    views = tuple(tf.random.stateless_uniform([2, args.batch, *IMAGE], [0, 2]))
    runs = {}
    for method in ("byol", "directpred"):
        keras.utils.set_random_seed(0)
        model = compile_model(build(method, d)[0], method, jit)
        it = iter(tf.data.Dataset.from_tensors(views).repeat())
        runs[method] = lambda f=model.train_function, i=it: f(i)
    rates = interleaved(runs, args.batch, args.steps, args.windows)
    keras.mixed_precision.set_global_policy("float32")
    return rates["byol"], rates["directpred"]


def profile_byol(policy, args):
    """Where a BYOL step's time goes (jit off): encoder forward / forward+backward, full step, no collapse metrics."""
    keras.mixed_precision.set_global_policy(policy)
    batch = args.batch
    views = tf.random.stateless_uniform([2 * batch, *IMAGE], [0, 1])
    keras.utils.set_random_seed(0)
    model, _ = build("byol", 256)
    encoder = model.encoder
    forward = tf.function(lambda: encoder(views, training=True))

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(tf.cast(encoder(views, training=True), tf.float32))
        return tape.gradient(y, encoder.trainable_variables)

    rows = {
        "encoder forward (2B views)": rate(forward, batch, args.steps, args.windows),
        "encoder forward+backward (2B views)": rate(forward_backward, batch, args.steps, args.windows),
    }
    pair = (views[:batch], views[batch:])
    for collapse in (True, False):
        model, _ = build("byol", 256, collapse_metrics=collapse)
        compile_model(model, "byol", jit=False)
        it = iter(tf.data.Dataset.from_tensors(pair).repeat())
        label = "BYOL step" + ("" if collapse else " without collapse metrics")
        rows[label] = rate(lambda: model.train_function(it), batch, args.steps, args.windows)
    keras.mixed_precision.set_global_policy("float32")
    print(f"profile ({policy}, batch {batch}, jit off): img/s, wall and CPU seconds per batch")
    for label, r in rows.items():
        print(f"  {label:42s} {r.wall:8.2f} img/s  {batch / r.wall:7.2f} s  ({batch / r.cpu:7.2f} CPU-s)")


class _PostTrainingWait(keras.callbacks.Callback):
    """Marks the end of ``on_train_end`` (put it last); the wait is from there to ``fit`` returning."""

    def on_train_begin(self, logs=None):
        self.mark = None

    def on_train_end(self, logs=None):
        self.mark = time.perf_counter(), time.process_time()


def _old_pipeline_end(dataset):
    """How the pipelines ended before issue 19: ``prefetch(AUTOTUNE)``, tf.data autotuning on (TF's default)."""
    return dataset.prefetch(tf.data.AUTOTUNE)


def job_stream(config_name: str, steps: int, pipeline: str):
    """(model, stream) of the main job for a packaged config, the stream built with ``pipeline``'s ending."""
    from tfcontrast import config as config_lib, data
    from tfcontrast.jobs import components, inputs

    config = config_lib.load(config_name, {"train.steps": str(steps), "train.steps_per_epoch": str(steps)},
                             from_text=True)
    run = inputs.load_split(config)
    views = inputs.augmentation(config, run.input_shape)
    steady = data.steady_pipeline
    if pipeline == "autotune":
        data.steady_pipeline = _old_pipeline_end
    try:
        stream = inputs.training_stream(config, run, views, 0)
    finally:
        data.steady_pipeline = steady
    model = components.initial_model(config, run.input_shape, run.num_classes)
    return model, stream


def stalls(args) -> None:
    """Post-training wait per ``fit`` of the job's streams, steady vs autotune pipelines, fits alternating."""
    import warnings

    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    settings = ("steady", "autotune")
    print("command: python benchmarks/bench_train.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]), flush=True)
    print(f"post-training wait per fit: {args.stall_fits} fits x {args.stall_steps} steps per stream and setting, "
          "settings alternating", flush=True)
    rows = []
    for kind, config_name in (("two_views", "directpred_digits"), ("class_balanced", "supcon_digits")):
        built = {p: job_stream(config_name, args.stall_steps, p) for p in settings}
        waits = {p: [] for p in settings}
        rates = {p: [] for p in settings}
        for p in settings:  # warm-up: tracing, one short fit each
            built[p][0].fit(built[p][1], epochs=1, steps_per_epoch=2, verbose=0)
        for index in range(args.stall_fits):
            for p in (settings if index % 2 == 0 else settings[::-1]):
                model, stream = built[p]
                end = _PostTrainingWait()
                started = time.perf_counter(), time.process_time()
                model.fit(stream, epochs=1, steps_per_epoch=args.stall_steps, verbose=0, callbacks=[end])
                now = time.perf_counter(), time.process_time()
                waits[p].append((now[0] - end.mark[0], now[1] - end.mark[1]))
                rates[p].append(args.stall_steps / (end.mark[0] - started[0]))
                print(f"  {kind:15s} fit {index + 1}  {p:8s} {end.mark[0] - started[0]:6.1f} s, then waited "
                      f"{waits[p][-1][0]:6.2f} s ({waits[p][-1][1]:.2f} CPU-s)", flush=True)
        for p in settings:
            wall = [w for w, _ in waits[p]]
            rows.append((kind, p, max(wall), statistics.median(wall), sum(w > 1.0 for w in wall), len(wall),
                         max(c for _, c in waits[p]), statistics.median(rates[p])))
    print(f"\n{'stream':15s} {'pipeline':9s} {'max wait s':>10s} {'median s':>9s} {'fits > 1 s':>10s} "
          f"{'max wait CPU-s':>14s} {'steps/s':>8s}")
    for kind, p, top, median, over, n, cpu, rate in rows:
        print(f"{kind:15s} {p:9s} {top:10.2f} {median:9.2f} {f'{over}/{n}':>10s} {cpu:14.2f} {rate:8.2f}")
    print("steady: as shipped (prefetch 2, autotuning off); autotune: prefetch(AUTOTUNE) with autotuning on "
          "(before issue 19). steps/s: fit start to the last on_train_end (machine load moves it).")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256, help="global batch (issue 7: 256; GPU: 512)")
    parser.add_argument("--steps", type=int, default=2, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=3, help="timed windows (median)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--jit", default="off,on", help="off, on or off,on")
    parser.add_argument("--policies", default="float32")
    parser.add_argument("--dims", default="128,256", help="projection d of the DirectPred / BYOL comparison")
    parser.add_argument("--profile", action="store_true", help="also break a BYOL step down")
    parser.add_argument("--quick", action="store_true", help="batch 16, 1 step x 2 windows")
    parser.add_argument("--stalls", action="store_true", help="only the post-training waits per fit (issue 19)")
    parser.add_argument("--stall-fits", type=int, default=4, help="--stalls: fits per stream and setting")
    parser.add_argument("--stall-steps", type=int, default=400, help="--stalls: steps per fit")
    args = parser.parse_args()
    if args.stalls:
        return stalls(args)
    if args.quick:
        args.batch, args.steps, args.windows = 16, 1, 2
    methods = [m for m in args.methods.split(",") if m]
    jits = [{"off": False, "on": True}[j] for j in args.jit.split(",")]
    dims = [int(d) for d in args.dims.split(",") if d]
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(args.batch * 4, *IMAGE)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=len(images)).astype(np.int32)
    started = time.perf_counter()
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}, devices "
        f"{[d.device_type for d in tf.config.list_physical_devices()]}, {os.cpu_count()} CPUs; "
        f"batch {args.batch}, {args.windows} windows x {args.steps} steps",
        flush=True,
    )
    for policy in args.policies.split(","):
        print(f"\n== policy {policy}", flush=True)
        if args.profile:
            profile_byol(policy, args)
        results = {m: measure(m, policy, args, images, labels, max(dims), jits) for m in methods}
        header = " ".join(f"{'step ' + ('on' if j else 'off'):>9s}" for j in jits)
        print(f"\n{'method (img/s, wall)':40s} {'pipeline':>9s} {header} {'fit':>8s} {'faster':>7s} "
              f"{'pipe/step':>9s} {'fit/step':>8s} {'(CPU)':>6s}")
        for r in results.values():
            cells = " ".join(f"{r['steps'][j].wall:9.2f}" for j in jits)
            best = r["steps"][r["best"]]
            print(
                f"{r['name']:40s} {r['pipeline'].wall:9.1f} {cells} {r['fit'].wall:8.2f} "
                f"{'jit on' if r['best'] else 'jit off':>7s} {r['pipeline'].wall / best.wall:9.1f} "
                f"{r['fit'].wall / r['step_in_fit'].wall:8.2f} {r['fit'].cpu / r['step_in_fit'].cpu:6.2f}"
            )
        print("(fit/step: fit epochs against step-alone windows taken between them, same compiled step;")
        print(" (CPU): the same ratio in images per CPU-second of this process, steadier on a shared machine)")
        if "byol" in results:
            jit = results["byol"]["best"]
            print(f"\nDirectPred step time / BYOL step time (jit {'on' if jit else 'off'}, interleaved; target <= 1.10):")
            for d in dims:
                byol, dp = directpred_vs_byol(policy, args, d, jit)
                print(
                    f"  d = {d:4d}: BYOL {byol.wall:8.2f} img/s, DirectPred {dp.wall:8.2f} img/s, "
                    f"ratio {byol.wall / dp.wall:.3f} (CPU time ratio {byol.cpu / dp.cpu:.3f})"
                )
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
