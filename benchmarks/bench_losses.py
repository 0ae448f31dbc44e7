"""NT-Xent forward+backward: tfcontrast vs keras-cv vs the three-matmul floor.

For 2N views of 128 dims it times, side by side in one run:

* ``tfcontrast``: ``nt_xent_loss`` (dense, hand-written gradient);
* ``keras_cv``: ``keras_cv.losses.SimCLRLoss`` on the same inputs (its value is
  twice ours: it sums both directions per example, we average all 2N rows);
* ``floor``: the three matrix products any exact implementation must do, the
  similarity matrix ``Q K^T`` and the two gradient products ``P K``, ``P^T Q``;

each in a fresh subprocess (so peak memory is that configuration's own), as a
``tf.function`` without XLA, reporting the median of timed repetitions after a
warm-up. Then the blocked form at 2N = 65,536, where the dense similarity
matrix alone would take 16 GiB, and a check that blocked equals dense.

Run:  python benchmarks/bench_losses.py            (needs the `bench` extra: keras-cv)
      python benchmarks/bench_losses.py --quick    (2N = 1024 and 4096 only)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

DIM = 128
TEMPERATURE = 0.1


def _measure(method: str, views: int, repeats: int, block_size: int | None) -> dict:
    """Runs in the child process: time and peak RSS of one configuration."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    n = views // 2
    rng = tf.random.Generator.from_seed(0)
    z_a = tf.Variable(rng.normal([n, DIM]))
    z_b = tf.Variable(rng.normal([n, DIM]))

    if method == "floor":
        q = tf.random.normal([views, DIM])
        p = tf.random.normal([views, views])

        @tf.function
        def step():
            s = tf.matmul(q, q, transpose_b=True)
            return tf.reduce_sum(s[:1, :1]), tf.matmul(p, q), tf.matmul(p, q, transpose_a=True)

    else:
        if method == "keras_cv":
            import keras_cv

            cv_loss = keras_cv.losses.SimCLRLoss(temperature=TEMPERATURE)

            def loss_fn():
                return cv_loss(z_a, z_b) / 2.0  # keras-cv sums the two directions

        else:
            from tfcontrast.losses import nt_xent_loss

            def loss_fn():
                return nt_xent_loss(z_a, z_b, TEMPERATURE, block_size=block_size)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                value = loss_fn()
            return (value, *tape.gradient(value, [z_a, z_b]))

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = step()  # warm-up: trace and first run
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = step()
        _ = [t.numpy() for t in out]
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {"seconds": statistics.median(times), "peak_mib": (peak - baseline) / 1024.0}
    if method != "floor":
        result["loss"] = float(out[0])
    return result


def measure(method: str, views: int, repeats: int, block_size: int | None = None) -> dict:
    args = [sys.executable, __file__, "--child", method, str(views), str(repeats), str(block_size or 0)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} at 2N={views} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def blocked_matches_dense(views: int, block_size: int) -> tuple[float, float]:
    """Largest relative difference of loss and gradients, blocked vs dense."""
    import tensorflow as tf

    from tfcontrast.losses import nt_xent_loss

    rng = tf.random.Generator.from_seed(1)
    z = [tf.Variable(rng.normal([views // 2, DIM])) for _ in range(2)]
    results = []
    for block in (None, block_size):
        with tf.GradientTape() as tape:
            value = nt_xent_loss(z[0], z[1], TEMPERATURE, block_size=block)
        results.append((value, tape.gradient(value, z)))
    (v_d, g_d), (v_b, g_b) = results
    loss_diff = abs(float(v_b) - float(v_d)) / abs(float(v_d))
    grad_diff = max(float(tf.reduce_max(tf.abs(b - d)) / tf.reduce_max(tf.abs(d))) for b, d in zip(g_b, g_d))
    return loss_diff, grad_diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only 2N = 1024 and 4096, no 65,536 run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block-size", type=int, default=1024)
    args = parser.parse_args()

    sizes = [1024, 4096] if args.quick else [1024, 4096, 8192]
    print(f"NT-Xent forward+backward, {DIM} dims, t={TEMPERATURE}, tf.function (no XLA), median of {args.repeats}")
    header = f"{'2N':>6} {'method':>10} {'seconds':>9} {'peak MiB':>9} {'vs keras-cv':>12} {'vs floor':>9} {'loss':>9}"
    print(header)
    for views in sizes:
        rows = {m: measure(m, views, args.repeats) for m in ("tfcontrast", "keras_cv", "floor")}
        for method, r in rows.items():
            vs_cv = r["seconds"] / rows["keras_cv"]["seconds"]
            vs_floor = r["seconds"] / rows["floor"]["seconds"]
            loss = f"{r['loss']:.5f}" if "loss" in r else ""
            print(f"{views:>6} {method:>10} {r['seconds']:>9.4f} {r['peak_mib']:>9.0f} {vs_cv:>11.2f}x {vs_floor:>8.2f}x {loss:>9}")

    loss_diff, grad_diff = blocked_matches_dense(4096, 512)
    print(f"blocked (block 512) vs dense at 2N=4096: loss rel diff {loss_diff:.2e}, grad rel diff {grad_diff:.2e}")
    if not args.quick:
        views = 65536
        r = measure("tfcontrast", views, 1, block_size=args.block_size)
        print(
            f"blocked at 2N={views} (block {args.block_size}): {r['seconds']:.1f} s forward+backward, "
            f"peak {r['peak_mib'] / 1024:.2f} GiB above baseline (dense matrix alone: 16 GiB), loss {r['loss']:.4f}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        method, views, repeats, block = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(_measure(method, views, repeats, block or None)))
    else:
        main()
