"""Fused against Keras BatchNorm in one process: a SimCLR train step on a small CNN (issue 19).

Setting: the small CNN of issue 19 (Conv32-BN-ReLU, Conv64/2-BN-ReLU,
Conv128/2-BN-ReLU, global average pool; 3x3 kernels, no bias), SimCLR with a
2-layer 512-512 projector (``tfcontrast.models.SimCLR(encoder,
projection_dim=512, hidden_dim=512)``), global batch 128 of pre-made 32x32x3
views (no augmentation), SGD with momentum. The same model runs with its
BatchNorm layers as

* ``keras``: ``keras.layers.BatchNormalization`` everywhere (moments and
  normalisation as separate element-wise ops);
* ``fused-conv``: :class:`tfcontrast.models.BatchNormalization` in the
  encoder (4-D), Keras' in the projector (2-D);
* ``fused``: fused everywhere (the projector's ``[B, F]`` viewed as
  ``[B, 1, 1, F]``): what tfcontrast ships.

Only the layers' class differs (same variables, same values): every variant
is one model whose BatchNorm layers are given the variant's class before its
step is traced. Windows are interleaved (A B C A B C ...) over ``--rounds``
rounds so that load drifts hit every variant alike; the figures are medians
of images per second (wall) and per CPU-second of this process, and the
ratios to ``keras``. Run with ``--jit on`` for XLA.

Run:  python benchmarks/bench_batchnorm.py                       (5 rounds x 10 steps, ~3 min on 2 cores)
      python benchmarks/bench_batchnorm.py --jit off,on --rounds 7
      python benchmarks/bench_batchnorm.py --quick              (smoke test)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench_train import interleaved  # noqa: E402
from bench_vs_tfsim import small_cnn  # noqa: E402
from tfcontrast.models import BatchNormalization, SimCLR  # noqa: E402

VARIANTS = ("keras", "fused-conv", "fused")


def set_batch_norm(layers, cls) -> None:
    """Gives every BatchNorm layer of ``layers`` the class ``cls`` (the two classes share their state)."""
    for network in layers:
        for layer in network._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.__class__ = cls


def build(variant: str, image: tuple, jit: bool) -> SimCLR:
    keras.utils.set_random_seed(0)
    model = SimCLR(small_cnn(keras, keras.layers.BatchNormalization, image), projection_dim=512,
                   hidden_dim=512, temperature=0.5)
    fused = BatchNormalization
    plain = keras.layers.BatchNormalization
    set_batch_norm([model.encoder], plain if variant == "keras" else fused)
    set_batch_norm([model.projector], fused if variant == "fused" else plain)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), jit_compile=jit)
    model.make_train_function()
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image", type=int, default=32, help="side of the square RGB views")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed window")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved windows per variant (median)")
    parser.add_argument("--jit", default="off", help="off, on or off,on")
    parser.add_argument("--quick", action="store_true", help="batch 16, 16x16 views, 2 rounds of 2 steps")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.image, args.steps, args.rounds = 16, 16, 2, 2
    image = (args.image, args.image, 3)
    views = tuple(tf.random.stateless_uniform([2, args.batch, *image], [0, 19]))
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, {os.cpu_count()} CPUs; SimCLR small CNN, "
          f"batch {args.batch} of {image}, {args.rounds} rounds x {args.steps} steps", flush=True)
    for jit in [{"off": False, "on": True}[j] for j in args.jit.split(",")]:
        runs = {}
        for variant in VARIANTS:
            model = build(variant, image, jit)
            it = iter(tf.data.Dataset.from_tensors(views).repeat())
            runs[variant] = lambda f=model.train_function, i=it: f(i)
        started = time.perf_counter()
        rates = interleaved(runs, args.batch, args.steps, args.rounds)
        print(f"\njit_compile={jit} ({time.perf_counter() - started:.0f} s)")
        print(f"  {'variant':12s} {'img/s':>8s} {'img/CPU-s':>10s} {'vs keras':>9s} {'(CPU)':>6s}")
        for variant, r in rates.items():
            base = rates["keras"]
            print(f"  {variant:12s} {r.wall:8.1f} {r.cpu:10.1f} {r.wall / base.wall:8.2f}x "
                  f"{r.cpu / base.cpu:5.2f}x")


if __name__ == "__main__":
    main()
