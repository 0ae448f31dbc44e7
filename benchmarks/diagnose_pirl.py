"""PIRL's memory bank and NCE noise level during training on digits (the diagnosis of RESULTS.md section 14).

Trains PIRL exactly as ``bench_ssl_digits.py`` does (same views, encoder,
optimizer and ``--set`` overrides) and, five times during training and at the
end, prints for the 1,437 clean train digits (encoder in inference mode):

* ``own`` / ``other``: mean cosine between an image's memory entry m_i and its
  own f(x_i), and between m_i and another image's f (the bank tracks its own
  images when ``own`` >> ``other``);
* ``mem-mem``: mean cosine between two random memory entries (0 for the
  random bank it starts with);
* ``bank kNN``: leave-one-out 10-NN accuracy of the memory entries on the
  digits' labels (chance 0.1): does the bank hold class structure?
* ``log mu``: the stored noise level; ``batch log mu``: the estimate of log mu
  on the current f against ``num_negatives`` random entries;
* ``neg w`` / ``pos w``: the NCE's gradient weights at the stored level, mean
  over images: ``sum_j sigmoid(x.n_j/t - c)`` over the negatives and
  ``sigmoid(c - x.m_i/t)`` for the positive, ``c = log(N mu)``. Near 1 and 1
  when mu is right; the negatives dominate when mu is too small.

Then the scores of the bench (kNN, nuisance kNN, probes).

Run:  python benchmarks/diagnose_pirl.py --set epochs=20                           (440 steps)
      python benchmarks/diagnose_pirl.py --set epochs=20 --set noise_momentum=1.0
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_ssl_digits as bench  # noqa: E402  (sets up paths and TF logging)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcontrast import augment, data  # noqa: E402


def bank_report(model, images, labels, rng) -> str:
    memory = model.memory.numpy().astype(np.float64)
    f = tf.math.l2_normalize(model.image_projections(images)[0], axis=1).numpy().astype(np.float64)
    a, b = rng.integers(0, len(memory), 4000), rng.integers(0, len(memory), 4000)
    similarity = memory @ memory.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :10]
    bank_knn = np.mean([np.bincount(labels[row], minlength=10).argmax() == labels[i] for i, row in enumerate(neighbours)])
    logits = f @ memory[rng.integers(0, len(memory), model.num_negatives)].T / model.temperature
    batch_level = np.log(np.mean(np.exp(logits)))
    level = float(model.log_noise_mean.numpy())
    c = np.log(model.num_negatives) + level
    negative_weight = np.mean(np.sum(1.0 / (1.0 + np.exp(c - logits)), axis=1))
    positive_weight = np.mean(1.0 / (1.0 + np.exp(np.sum(memory * f, axis=1) / model.temperature - c)))
    return (
        f"own {np.mean(np.sum(memory * f, 1)):.3f}  other {np.mean(np.sum(memory[a] * f[b], 1)):.3f}  "
        f"mem-mem {np.mean(np.sum(memory[a] * memory[b], 1)):.3f}  bank kNN {bank_knn:.3f}  "
        f"log mu {level:.2f}  batch log mu {batch_level:.2f}  neg w {negative_weight:.1f}  pos w {positive_weight:.2f}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a bench setting, e.g. --set epochs=20 --set noise_momentum=1.0")
    args = parser.parse_args(argv)
    cfg = bench.method_config("pirl", args.set, quick=False)
    split = data.load_digits()
    x_nuisance = augment.nuisance_transform(split.x_test, seed=0)
    rng = np.random.default_rng(0)

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch % max(cfg["epochs"] // 5, 1) == 0 or epoch == cfg["epochs"] - 1:
                print(f"step {int(self.model.step.numpy()):5d}  loss {logs['loss']:8.2f}  "
                      f"{bank_report(self.model, split.x_train, split.y_train, rng)}", flush=True)

    print(f"pirl: {cfg}", flush=True)
    result = bench.run_method("pirl", cfg, split, x_nuisance, callbacks=[Report()])
    print("scores: " + ", ".join(f"{k} {result[k]:.3f}" for k in ("knn_clean", "knn_nuisance", "probe_clean",
                                                                  "probe_nuisance")))


if __name__ == "__main__":
    main()
