"""Every label-based loss trains the same digits encoder: held-out retrieval, clean and shifted (issue 15).

Each loss trains :class:`tfcontrast.models.EmbeddingModel` (``digits_cnn``
with 128 features and width 32, a 64-d projection, L2-normalised) on the
1,437 digits train images with the same recipe as ``examples/triplet_digits.py``:
P x K batches of 10 classes x 8 images (:func:`tfcontrast.data.class_balanced_batches`,
seed 0), each randomly shifted by up to 2 px per axis, Adam with a cosine
decay from 2e-3 over the same number of steps, the same seed. Only the loss
changes. Then the train embeddings go into an exact cosine
:class:`tfcontrast.index.Index` and the 360 test images query it
(:func:`tfcontrast.index.evaluate_retrieval`): recall@1 and MAP@R, for the
clean test images and for the same images under the evaluation nuisance
``nuisance_transform(x_test, max_shift=2, max_degrees=0, seed=0)``. Raw pixels
(cosine) are the baseline.

The N-pair losses are absent: they take an anchor x positive similarity
matrix, not ``(labels, embeddings)`` batches.

Run:  python benchmarks/bench_metric_digits.py                       (every loss, 1,500 steps each)
      python benchmarks/bench_metric_digits.py --losses circle,xbm-ms --steps 600
      python benchmarks/bench_metric_digits.py --steps 3             (smoke run)
Wall times depend on the machine; the retrieval numbers do not (one seed).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfcontrast as tfc  # noqa: E402
from tfcontrast import losses  # noqa: E402

# name -> loss factory; settings for L2-normalised 64-d embeddings
LOSSES = {
    "triplet-semi-hard": lambda: losses.TripletLoss(margin=0.2, mining="semi-hard"),
    "triplet-hard": lambda: losses.TripletLoss(margin=0.2, mining="hard"),
    "tfa-triplet-semi-hard": lambda: losses.TripletSemiHardLoss(margin=0.2, distance_metric="angular"),
    "supcon": lambda: losses.SupConLoss(temperature=0.1),
    "multisimilarity": lambda: losses.MultiSimilarityLoss(),
    "circle": lambda: losses.CircleLoss(gamma=80.0, margin=0.4),
    "pn": lambda: losses.PNLoss(),
    "soft-nn": lambda: losses.SoftNearestNeighborLoss(distance="cosine", temperature=0.1),
    "lifted": lambda: losses.LiftedStructLoss(margin=1.0),
    "xbm-ms": lambda: losses.XBM(losses.MultiSimilarityLoss(), memory_size=640, warmup_steps=100),
    "xbm-triplet": lambda: losses.XBM(losses.TripletLoss(margin=0.2, mining="hard"), memory_size=640, warmup_steps=100),
}


def shift_augment(images):
    return tfc.augment.random_shift_rotate(images, max_shift=2, max_degrees=0)


def retrieval(train_embeddings, train_labels, queries, query_labels) -> dict:
    index = tfc.index.Index(metric="cosine")
    index.add(np.asarray(train_embeddings, np.float32).reshape(len(train_embeddings), -1), labels=train_labels)
    scores = tfc.index.evaluate_retrieval(index, np.asarray(queries, np.float32).reshape(len(queries), -1), query_labels, ks=(1,))
    return {"recall@1": scores["recall@1"], "map@r": scores["map@r"]}


def train_and_score(name: str, steps: int, split, shifted_test, seed: int = 0) -> dict:
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = tfc.models.EmbeddingModel(tfc.models.encoders.digits_cnn(features=128, width=32), embedding_dim=64)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=LOSSES[name]())
    batches = tfc.data.class_balanced_batches(
        split.x_train, split.y_train, classes_per_batch=10, samples_per_class=8, steps=steps, seed=seed,
        augment=shift_augment,
    )
    history = model.fit(batches, verbose=0, shuffle=False)
    wall = time.perf_counter() - start
    references = model.predict(split.x_train, batch_size=512, verbose=0)
    clean = retrieval(references, split.y_train, model.predict(split.x_test, batch_size=512, verbose=0), split.y_test)
    shifted = retrieval(references, split.y_train, model.predict(shifted_test, batch_size=512, verbose=0), split.y_test)
    return {
        "loss": name,
        "final_loss": float(history.history["loss"][-1]),
        "recall@1": clean["recall@1"], "map@r": clean["map@r"],
        "recall@1 shifted": shifted["recall@1"], "map@r shifted": shifted["map@r"],
        "seconds": wall,
    }


def main(names, steps: int, seed: int = 0) -> list[dict]:
    split = tfc.data.load_digits()
    shifted_test = tfc.augment.nuisance_transform(split.x_test, max_shift=2, max_degrees=0, seed=0)
    rows = [{
        "loss": "raw pixels", "final_loss": float("nan"),
        **retrieval(split.x_train, split.y_train, split.x_test, split.y_test),
        **{k + " shifted": v for k, v in retrieval(split.x_train, split.y_train, shifted_test, split.y_test).items()},
        "seconds": 0.0,
    }]
    print(f"| loss | recall@1 | MAP@R | recall@1 shifted | MAP@R shifted | final loss | wall s ({steps} steps) |")
    print("|---|---|---|---|---|---|---|")
    for name in ["raw pixels"] + list(names):
        row = rows[0] if name == "raw pixels" else train_and_score(name, steps, split, shifted_test, seed)
        if name != "raw pixels":
            rows.append(row)
        print(f"| {row['loss']} | {row['recall@1']:.4f} | {row['map@r']:.4f} | {row['recall@1 shifted']:.4f} | "
              f"{row['map@r shifted']:.4f} | {row['final_loss']:.4f} | {row['seconds']:.0f} |", flush=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--losses", default=",".join(LOSSES), help=f"comma-separated, from {', '.join(LOSSES)}")
    parser.add_argument("--steps", type=int, default=1500, help="training steps (P x K batches) per loss")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chosen = [n.strip() for n in args.losses.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(LOSSES))
    if unknown:
        parser.error(f"unknown losses {unknown}; choose from {', '.join(LOSSES)}")
    main(chosen, args.steps, args.seed)
