"""Two-view augmentation throughput: tfcontrast vs Keras 3 layers vs keras-cv.

Times, side by side in one process on the same batch (default 256 x 32 x 32 x 3
uniform images in [0, 1]), images/second of one view per transform:

* ``crop``: our ``resized_crop`` (two batched matrix products, XLA-able) vs one
  batched ``tf.image.crop_and_resize`` (no XLA kernel) vs
  ``keras_cv.layers.RandomCropAndResize`` (a per-image loop);
* ``flip``: ``flip_left_right`` vs ``keras.layers.RandomFlip("horizontal")``;
* ``jitter``: ``color_jitter`` (per-image random order, 7 batched stages) vs
  ``keras.layers.RandomColorJitter`` (fixed order);
* ``grayscale``, ``blur`` (per-image sigma, banded matrices; Keras:
  ``RandomGaussianBlur``), ``solarize`` (Keras: ``Solarization``);
* ``recipe``: a whole BYOL view, ``TwoViewAugmentation.view`` vs a Keras chain
  (keras-cv crop + the Keras layers above);
* ``dataset``: both views through ``two_view_dataset`` (tf.data, AUTOTUNE).

Each callable runs as a ``tf.function`` (and with ``jit_compile=True`` where it
compiles), warmed up, then the median of ``--windows`` timed windows of
``--calls`` calls. Numbers on a shared 2-core machine are noisy; compare ratios
taken in the same run.

Run:  python benchmarks/bench_augment.py              (needs the `bench` extra for keras-cv)
      python benchmarks/bench_augment.py --quick      (batch 64, fewer windows)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcontrast import augment  # noqa: E402


def images_per_second(fn, batch: int, windows: int, calls: int) -> float:
    """Median over windows of batch * calls / seconds, after two warm-up calls."""
    for _ in range(2):
        _block(fn())
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(calls):
            out = fn()
        _block(out)
        rates.append(batch * calls / (time.perf_counter() - start))
    return statistics.median(rates)


def _block(out):
    for t in tf.nest.flatten(out):
        t.numpy()


def _compiled(fn, jit: bool):
    try:
        f = tf.function(fn, jit_compile=jit)
        _block(f())
        return f
    except Exception as err:  # an op without an XLA kernel
        return f"no XLA ({type(err).__name__})" if jit else f"fails ({err})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.windows, args.calls = 64, 3, 5
    b, s = args.batch, args.size
    x = tf.random.stateless_uniform([b, s, s, 3], [0, 1])
    aug = augment.TwoViewAugmentation("byol", (s, s), blur_prob=(1.0, 1.0), solarize_prob=1.0, seed=0)
    p = aug.sample_params(b, 3, [1, 2])
    k = aug.blur_kernel_size

    try:
        import keras_cv

        cv_crop = keras_cv.layers.RandomCropAndResize((s, s), (0.08, 1.0), (3 / 4, 4 / 3), seed=0)
        cv_note = f"keras-cv {keras_cv.__version__}"
    except Exception as err:  # keras-cv absent or incompatible with this Keras
        cv_crop, cv_note = None, f"keras-cv unavailable: {err}"

    kl = keras.layers
    flip_layer = kl.RandomFlip("horizontal", seed=0)
    jitter_layer = kl.RandomColorJitter((0, 1), 0.4, 0.4, 0.2, 0.1, seed=0)
    gray_layer = kl.RandomGrayscale(0.2, seed=0)
    blur_layer = kl.RandomGaussianBlur(1.0, kernel_size=k, sigma=(0.1, 2.0), value_range=(0, 1), seed=0)
    solar_layer = kl.Solarization(0.0, (0.5, 0.5), value_range=(0, 1), seed=0)
    keras_chain = [flip_layer, jitter_layer, gray_layer, blur_layer, solar_layer]

    def keras_view():
        y = cv_crop(x, training=True) if cv_crop is not None else x
        for layer in keras_chain:
            y = layer(y, training=True)
        return y

    rows = {
        "crop": {
            "tfcontrast": lambda: augment.resized_crop(x, p["boxes"], (s, s)),
            "tf.image.crop_and_resize": lambda: tf.image.crop_and_resize(x, p["boxes"], tf.range(b), (s, s)),
            **({"keras_cv.RandomCropAndResize": lambda: cv_crop(x, training=True)} if cv_crop else {}),
        },
        "flip": {
            "tfcontrast": lambda: augment.flip_left_right(x, p["flips"]),
            "keras.RandomFlip": lambda: flip_layer(x, training=True),
        },
        "jitter": {
            "tfcontrast": lambda: augment.color_jitter(
                x, p["brightness"], p["contrast"], p["saturation"], p["hue"], p["order"]
            ),
            "keras.RandomColorJitter": lambda: jitter_layer(x, training=True),
        },
        "grayscale": {
            "tfcontrast": lambda: augment.to_grayscale(x, p["grayscale"]),
            "keras.RandomGrayscale": lambda: gray_layer(x, training=True),
        },
        "blur": {
            "tfcontrast": lambda: augment.gaussian_blur(x, p["sigmas"], k),
            "keras.RandomGaussianBlur": lambda: blur_layer(x, training=True),
        },
        "solarize": {
            "tfcontrast": lambda: augment.solarize(x, p["solarize"]),
            "keras.Solarization": lambda: solar_layer(x, training=True),
        },
        "recipe (one view)": {
            "tfcontrast": lambda: aug.view(x, [1, 2]),
            "keras chain": keras_view,
        },
    }
    print(f"batch {b} x {s} x {s} x 3, median of {args.windows} windows x {args.calls} calls; {cv_note}")
    print(f"{'transform':20s} {'implementation':32s} {'graph img/s':>12s} {'XLA img/s':>12s}")
    for transform, impls in rows.items():
        for name, fn in impls.items():
            cells = []
            for jit in (False, True):
                f = _compiled(fn, jit)
                cells.append(f if isinstance(f, str) else f"{images_per_second(f, b, args.windows, args.calls):12.0f}")
            print(f"{transform:20s} {name:32s} {cells[0]:>12s} {cells[1]:>12s}")

    n = b * 8
    data = np.random.default_rng(0).uniform(size=(n, s, s, 3)).astype(np.float32)
    ds = augment.two_view_dataset(data, b, augment.TwoViewAugmentation("byol", (s, s)), repeat=True)
    iterator = iter(ds)
    rate = images_per_second(lambda: next(iterator), b, args.windows, args.calls)
    print(f"{'dataset (2 views)':20s} {'two_view_dataset byol':32s} {rate:12.0f}   (image pairs/s, tf.data AUTOTUNE)")


if __name__ == "__main__":
    main()
