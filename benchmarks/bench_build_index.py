"""Peak memory of streaming a collection into an index: ``build_from_dataset`` at growing sizes.

For each N, a fresh subprocess (so its peak RSS is its own) embeds N synthetic
32x32x3 float32 images, generated on the fly by ``tf.data`` (stateless random
pixels per element: the collection never exists as an array), with a tiny
Keras embedder (Flatten -> Dense(16), L2-normalised by the cosine index), in
batches of 256, into ``Index("cosine")`` (exact). It reports the process's
peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), the RSS after
imports and model building (before the build), the index's own vectors
(N x 16 x 4 bytes, the part that must grow with N) and what the images alone
would take in memory (N x 3072 x 4 bytes), plus images/s (on a shared machine
the rate is noise; memory is not).

Run:  python benchmarks/bench_build_index.py                    (N = 10,000, 100,000, 1,000,000)
      python benchmarks/bench_build_index.py --sizes 2000 20000  (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

DIM = 16
BATCH = 256


def child(n: int) -> dict:
    import resource

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from tfcontrast.index import Index, build_from_dataset

    def image(i):
        return tf.random.stateless_uniform([32, 32, 3], seed=tf.stack([i, tf.constant(0, tf.int64)]))

    dataset = tf.data.Dataset.range(n).map(image, num_parallel_calls=tf.data.AUTOTUNE)
    inputs = keras.Input((32, 32, 3))
    embedder = keras.Model(inputs, keras.layers.Dense(DIM)(keras.layers.Flatten()(inputs)))
    embedder(tf.zeros((1, 32, 32, 3)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    index = build_from_dataset(embedder, dataset, Index("cosine"), BATCH, progress=False)
    seconds = time.perf_counter() - started
    assert len(index) == n
    return {
        "n": n,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_build_mib": before,
        "index_vectors_mib": n * DIM * 4 / 2**20,
        "images_as_array_mib": n * 32 * 32 * 3 * 4 / 2**20,
        "seconds": seconds,
        "images_per_second": n / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    rows = []
    for n in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| images | peak RSS (MiB) | RSS before the build | index vectors | images as one array | images/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['peak_rss_mib']:,.0f} | {r['rss_before_build_mib']:,.0f} | {r['index_vectors_mib']:,.1f} | "
            f"{r['images_as_array_mib']:,.0f} | {r['images_per_second']:,.0f} |"
        )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
