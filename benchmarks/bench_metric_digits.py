"""Every registered label loss trains the same digits encoder: held-out retrieval, clean and shifted (issue 15).

The losses come from the loss registry (:data:`tfcontrast.registry.losses`,
every entry called on ``(labels, embeddings)``; ``--losses`` picks some by
name), so a loss registered tomorrow is benchmarked without editing this file.
Each one is built exactly as ``tfcontrast train --config triplet_digits
--config.loss.name=NAME`` builds it (:func:`tfcontrast.jobs.components.initial_model`:
the registry builds the loss, or the loss head with trainable class weights
for ArcFace, CosFace, Proxy-Anchor and ProxyNCA, and the ``embedding`` method
builds :class:`tfcontrast.models.EmbeddingModel` around the encoder).

**Loss settings.** A row's ``loss`` section is that of a packaged config
that trains the ``embedding`` method with this loss (``configs/*_digits.py``:
what ``tfcontrast train --config arcface_digits`` uses), else the loss's
registered defaults (what ``--config.loss.name=NAME`` gives); the table says
which. Packaged configs whose loss has a cross-batch memory
(``loss.xbm_memory_size > 0``, e.g. ``xbm_digits``) add an XBM row for
their loss. ``--defaults`` ignores the configs (registered defaults only).

**Same recipe for every loss.** ``digits_cnn`` (128 features, width 32) ->
64-d projection -> L2 normalisation; the 1,437 digits train images in P x K
batches of 10 classes x 8 images (:func:`tfcontrast.data.class_balanced_batches`,
seed 0; the class-weight losses get the same batches: with 10 classes every
batch holds every class, which suits them as well as plain shuffled batches),
each image shifted by up to 2 px per axis; Adam, learning rate 2e-3 with a
cosine decay to 0 over the same number of steps, no weight decay, no
warm-up, seed 0. Then the train embeddings go into an exact cosine
:class:`tfcontrast.index.Index` and the 360 test images query it
(:func:`tfcontrast.index.evaluate_retrieval`): recall@1 and MAP@R, for the
clean test images and for the same images under
``nuisance_transform(x_test, max_shift=2, max_degrees=0, seed=0)``. Raw
pixels (cosine) are the baseline. Wall time covers building and training
(not the evaluation); the 1-minute load average is printed with it, because
on a shared machine the wall times are not comparable.

Not here: the pair loss (``contrastive``, trained by the ``siamese`` method on
pairs) and the N-pair losses (their input is an anchor x positive similarity
matrix, not ``(labels, embeddings)``; see ``docs/losses.md``).

Run:  python benchmarks/bench_metric_digits.py                       (every label loss, 1,500 steps each)
      python benchmarks/bench_metric_digits.py --losses arcface,circle --steps 600
      python benchmarks/bench_metric_digits.py --steps 3             (smoke run)
The retrieval numbers do not depend on the machine's load (one seed).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfcontrast as tfc  # noqa: E402
from tfcontrast import config as config_lib, packaged_configs, registry  # noqa: E402
from tfcontrast.jobs import components  # noqa: E402

BASE_CONFIG = "triplet_digits"  # the embedding method's packaged config; only its loss section changes per row
RECIPE = {
    "encoder.name": "digits_cnn", "encoder.features": 128, "encoder.width": 32, "model.embedding_dim": 64,
    "model.normalize": True, "optimizer.name": "adam", "optimizer.lr": 2e-3, "optimizer.weight_decay": 0.0,
    "optimizer.schedule": "cosine", "optimizer.warmup_steps": 0, "train.classes_per_batch": 10,
    "train.samples_per_class": 8, "train.jit_compile": False,
}


def label_losses() -> list[str]:
    return [spec.name for spec in registry.losses if spec.inputs == "labels"]


def packaged_loss_sections() -> dict[str, list[tuple[str, dict]]]:
    """Loss name -> [(config name, loss section)] of the packaged configs that train the embedding method."""
    found: dict[str, list[tuple[str, dict]]] = {}
    for name in packaged_configs.names():
        if name == packaged_configs.BASE:
            continue
        try:
            config = config_lib.validate(config_lib.load(name))
        except ValueError:  # a template that needs a data path, for instance
            continue
        if config.method == "embedding":
            found.setdefault(config.loss.name, []).append((name, dict(config.loss)))
    return found


def rows_to_run(names, use_configs: bool) -> list[tuple[str, dict]]:
    """``(settings source, loss section)`` of every row: one per loss, plus one per packaged XBM config."""
    sections = packaged_loss_sections() if use_configs else {}
    rows = []
    for name in names:
        plain = [(c, s) for c, s in sections.get(name, []) if not s.get("xbm_memory_size")]
        with_memory = [(c, s) for c, s in sections.get(name, []) if s.get("xbm_memory_size")]
        if plain:
            rows.append((f"configs/{plain[0][0]}.py", plain[0][1]))
        else:
            rows.append(("registered defaults", registry.losses.get(name).defaults()))
        rows += [(f"configs/{c}.py", s) for c, s in with_memory[:1]]
    return rows


def describe(section: dict) -> str:
    """``name(key=value, ...)`` with the keys that differ from the registered defaults."""
    defaults = registry.losses.get(section["name"]).defaults()
    changed = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in section.items() if defaults.get(k) != v]
    return f"{section['name']}({', '.join(changed)})" if changed else section["name"]


def shift_augment(images):
    return tfc.augment.random_shift_rotate(images, max_shift=2, max_degrees=0)


def retrieval(train_embeddings, train_labels, queries, query_labels) -> dict:
    index = tfc.index.Index(metric="cosine")
    index.add(np.asarray(train_embeddings, np.float32).reshape(len(train_embeddings), -1), labels=train_labels)
    scores = tfc.index.evaluate_retrieval(index, np.asarray(queries, np.float32).reshape(len(queries), -1), query_labels, ks=(1,))
    return {"recall@1": scores["recall@1"], "map@r": scores["map@r"]}


def train_and_score(section: dict, steps: int, split, shifted_test, seed: int = 0) -> dict:
    overrides = {**RECIPE, "seed": seed, "train.steps": steps, "train.steps_per_epoch": steps,
                 **{f"loss.{key}": value for key, value in section.items()}}
    config = config_lib.validate(config_lib.load(BASE_CONFIG, overrides))
    start = time.perf_counter()
    model = components.initial_model(config, split.x_train.shape[1:], int(split.y_train.max()) + 1)
    batches = tfc.data.class_balanced_batches(
        split.x_train, split.y_train, classes_per_batch=config.train.classes_per_batch,
        samples_per_class=config.train.samples_per_class, steps=steps, seed=seed, augment=shift_augment,
    )
    history = model.fit(batches, verbose=0, shuffle=False)
    wall = time.perf_counter() - start
    load = os.getloadavg()[0]
    references = model.predict(split.x_train, batch_size=512, verbose=0)
    clean = retrieval(references, split.y_train, model.predict(split.x_test, batch_size=512, verbose=0), split.y_test)
    shifted = retrieval(references, split.y_train, model.predict(shifted_test, batch_size=512, verbose=0), split.y_test)
    return {
        "final_loss": float(history.history["loss"][-1]),
        "recall@1": clean["recall@1"], "map@r": clean["map@r"],
        "recall@1 shifted": shifted["recall@1"], "map@r shifted": shifted["map@r"],
        "seconds": wall, "load": load,
    }


def main(names, steps: int, seed: int = 0, use_configs: bool = True) -> list[dict]:
    split = tfc.data.load_digits()
    shifted_test = tfc.augment.nuisance_transform(split.x_test, max_shift=2, max_degrees=0, seed=0)
    baseline = {
        "loss": "raw pixels (cosine)", "settings": "",
        **retrieval(split.x_train, split.y_train, split.x_test, split.y_test),
        **{k + " shifted": v for k, v in retrieval(split.x_train, split.y_train, shifted_test, split.y_test).items()},
    }
    print(f"| loss | settings | recall@1 | MAP@R | recall@1 shifted | MAP@R shifted | final loss | wall s ({steps} steps) | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {baseline['loss']} | | {baseline['recall@1']:.4f} | {baseline['map@r']:.4f} | "
          f"{baseline['recall@1 shifted']:.4f} | {baseline['map@r shifted']:.4f} | | | |", flush=True)
    rows = [baseline]
    for source, section in rows_to_run(names, use_configs):
        row = {"loss": describe(section), "settings": source, **train_and_score(section, steps, split, shifted_test, seed)}
        rows.append(row)
        print(f"| `{row['loss']}` | {source} | {row['recall@1']:.4f} | {row['map@r']:.4f} | {row['recall@1 shifted']:.4f} | "
              f"{row['map@r shifted']:.4f} | {row['final_loss']:.4f} | {row['seconds']:.0f} | {row['load']:.1f} |", flush=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--losses", default="", help="comma-separated registered loss names (default: every label loss)")
    parser.add_argument("--steps", type=int, default=1500, help="training steps (P x K batches) per loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--defaults", action="store_true", help="registered defaults only (ignore the packaged configs)")
    args = parser.parse_args()
    known = label_losses()
    chosen = [n.strip() for n in args.losses.split(",") if n.strip()] or known
    unknown = [n for n in chosen if n not in known]
    if unknown:
        parser.error(f"unknown label losses {unknown}{registry.did_you_mean(unknown[0], known)}; "
                     f"registered: {', '.join(known)}")
    main(chosen, args.steps, args.seed, use_configs=not args.defaults)
