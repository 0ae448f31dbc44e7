"""Evaluation cost against training cost of the main job (issue 12, section 4).

Two parts, both through the job's own functions in this process
(``tfcontrast.jobs.training.train(..., evaluate_after=False)``, then
``tfcontrast.jobs.evaluation.evaluate``), each run in a fresh workdir:

* **ratio**: for each data set, the default run (``directpred_digits``:
  1,100 steps of 64 images) is trained, then evaluated; it prints training
  and evaluation wall time and this process's CPU time (all threads; steadier
  than wall time on a shared machine) and ``evaluation / training`` for both.
  ``training`` is the whole training call (data, model build, ``fit``, saving
  the embedder); ``evaluation`` is the whole evaluation (embedding, baselines,
  index, scores, plots, export, summary). Issue 12's target: <= 0.3 on both
  sets. Sets: ``digits`` (the bundled 1,797 8x8 digits) and ``rgb5000`` (a
  generated 5,000-image 32x32x3 set, 10 classes, ``synthetic_rgb``).
* **curve**: evaluation time against the number of images, on generated
  32x32x3 sets of ``--curve`` sizes (the split keeps 80 % as references,
  20 % as queries), each trained ``--curve-steps`` steps only (the
  evaluation's cost does not depend on how long the network trained). It
  prints the evaluation's wall and CPU time, the time per 1,000 images, and
  that per-image time over the first size's (1.0 everywhere = linear).

Every line it prints is one run; the command is printed first. Run:

    python benchmarks/bench_eval.py                              (ratio on both sets, curve 5k-50k; ~15 min on 2 quiet cores)
    python benchmarks/bench_eval.py --sets digits --curve ""     (ratio of the default run only)
    python benchmarks/bench_eval.py --steps 4 --curve 500,1000 --curve-steps 2   (smoke test, ~2 min)

``--steps`` (and ``--steps-per-epoch``) shorten the training of the ratio
part; the ratio is only meaningful at the default (``--steps 0``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

CONFIG = "directpred_digits"


def synthetic_rgb(n: int, size: int = 32, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 ``size x size x 3`` images of ``classes`` classes, and their labels.

    Each class is a smooth colour pattern (a random 4x4x3 grid upsampled);
    each image is its class's pattern rolled by up to 8 px, scaled in
    brightness by 0.5-1.5 and with Gaussian noise (std 0.3) added. Only the
    evaluation's cost is measured on it, not its accuracy.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, size=(classes, 4, 4, 3))
    patterns = np.repeat(np.repeat(coarse, size // 4, axis=1), size // 4, axis=2)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    images = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, 2048):  # bounded float memory at 50,000 images
        y = labels[start:start + 2048]
        x = patterns[y]
        shifts = rng.integers(-8, 9, size=(len(y), 2))
        x = np.stack([np.roll(img, tuple(s), axis=(0, 1)) for img, s in zip(x, shifts)])
        x = x * rng.uniform(0.5, 1.5, size=(len(y), 1, 1, 1)) + rng.normal(0.0, 0.3, size=x.shape)
        images[start:start + len(y)] = np.clip(np.round(255 * x), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int32)


def data_overrides(name: str, folder: str, n: int | None = None) -> dict[str, str]:
    """Config overrides that point the run at data set ``name`` (``digits``, ``rgb5000`` or ``rgb`` of ``n``)."""
    if name == "digits":
        return {}
    n = 5000 if name == "rgb5000" else n
    path = os.path.join(folder, f"rgb{n}.npz")
    if not os.path.exists(path):
        x, y = synthetic_rgb(n)
        np.savez(path, x=x, y=y)
    return {"data.name": "npz", "data.path": path}


def timed(fn):
    """``(result, wall s, CPU s)`` of ``fn()``, its printed output swallowed (progress bars)."""
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def train_then_evaluate(overrides: dict[str, str], workdir: str) -> dict:
    """Trains the run of ``CONFIG`` with ``overrides`` in ``workdir``, then evaluates it; the times."""
    from tfcontrast import config as config_lib
    from tfcontrast.jobs import evaluation, training

    config = config_lib.load(CONFIG, overrides, from_text=True)
    _, train_wall, train_cpu = timed(lambda: training.train(config, workdir, out=print, evaluate_after=False))
    summary, eval_wall, eval_cpu = timed(lambda: evaluation.evaluate(workdir, out=print))
    ev = summary["evaluation"]
    return {
        "train_wall": train_wall, "train_cpu": train_cpu, "eval_wall": eval_wall, "eval_cpu": eval_cpu,
        "n_train": ev["settings"]["n_train"], "n_test": ev["settings"]["n_test"], "knn": ev["knn_accuracy"],
    }


def ratio_part(args, folder: str) -> None:
    steps = {}
    if args.steps:
        spe = args.steps_per_epoch or args.steps
        steps = {"train.steps": str(args.steps), "train.steps_per_epoch": str(spe), "optimizer.warmup_steps": "0"}
    print(f"\nevaluation vs training of `tfcontrast train --config {CONFIG}` "
          f"({'default steps' if not steps else f'{args.steps} steps: NOT the default run'})")
    print(f"{'set':9s} {'train/test':>11s} {'train s':>8s} {'eval s':>7s} {'eval/train':>10s} "
          f"{'train CPU-s':>11s} {'eval CPU-s':>10s} {'eval/train CPU':>14s} {'kNN':>6s}", flush=True)
    for name in [s for s in args.sets.split(",") if s]:
        r = train_then_evaluate({**data_overrides(name, folder), **steps}, os.path.join(folder, f"ratio-{name}"))
        split = f"{r['n_train']}/{r['n_test']}"
        print(f"{name:9s} {split:>11s} {r['train_wall']:8.1f} {r['eval_wall']:7.1f} "
              f"{r['eval_wall'] / r['train_wall']:10.3f} {r['train_cpu']:11.1f} {r['eval_cpu']:10.1f} "
              f"{r['eval_cpu'] / r['train_cpu']:14.3f} {r['knn']:6.3f}", flush=True)
    print("issue 12 target: eval/train <= 0.3 on digits and rgb5000 (default steps)")


def curve_part(args, folder: str) -> None:
    sizes = [int(s) for s in args.curve.split(",") if s]
    steps = {"train.steps": str(args.curve_steps), "train.steps_per_epoch": str(args.curve_steps),
             "optimizer.warmup_steps": "0"}
    print(f"\nevaluation time against the number of 32x32x3 images (each run trained {args.curve_steps} steps)")
    print(f"{'images':>7s} {'train/test':>12s} {'eval s':>7s} {'eval CPU-s':>10s} {'s / 1k img':>10s} "
          f"{'CPU-s / 1k img':>14s} {'vs first':>8s} {'CPU vs first':>12s}", flush=True)
    first = first_cpu = None
    for n in sizes:
        r = train_then_evaluate({**data_overrides("rgb", folder, n), **steps}, os.path.join(folder, f"curve-{n}"))
        split = f"{r['n_train']}/{r['n_test']}"
        per_k = 1000 * r["eval_wall"] / n
        per_k_cpu = 1000 * r["eval_cpu"] / n
        first, first_cpu = first or per_k, first_cpu or per_k_cpu
        print(f"{n:7d} {split:>12s} {r['eval_wall']:7.1f} {r['eval_cpu']:10.1f} "
              f"{per_k:10.3f} {per_k_cpu:14.3f} {per_k / first:8.2f} {per_k_cpu / first_cpu:12.2f}", flush=True)
    print("vs first: wall (CPU) time per image over the smallest set's (1.0 = linear in the number of images)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="digits,rgb5000", help="ratio part: data sets (digits, rgb5000); '' skips")
    parser.add_argument("--steps", type=int, default=0, help="ratio part: training steps (0: the config's 1,100)")
    parser.add_argument("--steps-per-epoch", type=int, default=0, help="with --steps (default: --steps)")
    parser.add_argument("--curve", default="5000,10000,20000,50000", help="curve part: image counts; '' skips")
    parser.add_argument("--curve-steps", type=int, default=10, help="curve part: training steps per run")
    parser.add_argument("--keep", default=None, help="keep the workdirs and data under this new folder")
    args = parser.parse_args(argv)
    print("command: " + " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_eval.py",
                                                           *(sys.argv[1:] if argv is None else argv)]), flush=True)
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, devices: "
          f"{', '.join(d.device_type for d in tf.config.list_physical_devices())}", flush=True)
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()) as folder:
        os.makedirs(folder, exist_ok=True)
        if args.sets:
            ratio_part(args, folder)
        if args.curve:
            curve_part(args, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
