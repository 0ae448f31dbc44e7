"""Text retrieval quality on docstrings: SimCSE and DeCLUTR vs TF-IDF, a random encoder and word2vec (issue 18).

Corpus: :func:`tfcontrast.data.load_docstrings` (numpy + scipy + scikit-learn
by default, docstrings of at least 80 words), split 80 / 20 with seed 0.
Everything is fitted on the 80%: the vocabulary, TF-IDF, word2vec and the
encoders. On the held-out 20% (:func:`tfcontrast.text.evaluate_text_retrieval`):

* span -> span: a 32-64 word span of each document as the query, another,
  non-overlapping span of the same document as its target among all the
  held-out targets;
* summary -> body: the first paragraph as the query, the rest of the
  document as its target;

recall@1, recall@5 and MRR, cosine similarity. Rows:

* ``tfidf``: scikit-learn ``TfidfVectorizer(sublinear_tf=True)``;
* ``random <encoder>``: the encoder below with its random initial weights;
* ``word2vec mean``: the mean of :class:`tfcontrast.text.SkipGram` word vectors;
* ``simcse`` / ``declutr``: the encoder trained by
  :class:`tfcontrast.models.SimCSE` / :class:`tfcontrast.models.DeCLUTR`
  (``model.fit`` on :func:`tfcontrast.text.simcse_batches` /
  :func:`tfcontrast.text.declutr_batches`);
* ``declutr+pairs``: stages in turn on one encoder; ``pairs`` is a
  :class:`tfcontrast.models.DualEncoder` on (first paragraph, rest) pairs of
  the *training* docstrings with in-batch negatives, as the text job's pair
  stage (:mod:`tfcontrast.jobs.text_pairs`). A variant ``pairs@name`` takes
  ``--set pairs@name.key=value`` on top of ``pairs``; ``--cache DIR`` reuses a
  trained prefix (``declutr`` of ``declutr+pairs``) with the same settings.

The settings of the text job (``configs/declutr_docstrings.py``) are
``--set depth=0 --set sequence_length=256 --set lr=2e-3 --set weight_decay=1e-4
--set declutr.steps=1200 --set declutr.temperature=0.2 --set declutr.min_length=8``.

Model selection: ``--validation`` trains on 80% of the training split and
scores on the other 20% of it, never touching the held-out documents; the
recipe below was chosen that way.

Run:  python benchmarks/bench_text.py                       (the recipe; a few minutes per method on 2 cores)
      python benchmarks/bench_text.py --quick               (smoke run: tiny model, few steps)
      python benchmarks/bench_text.py --methods declutr --validation
      python benchmarks/bench_text.py --methods declutr,declutr+pairs,declutr+pairs@t05 --set pairs@t05.temperature=0.05 \
          --validation --cache /tmp/text_cache
      python benchmarks/bench_text.py --packages numpy,scipy,sklearn,matplotlib --json out.json
      python benchmarks/bench_text.py --set declutr.steps=3000 --set dim=128

Wall times on a shared machine are noisy; the quality numbers are seeded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfcontrast as tfc  # noqa: E402

# The recipe (chosen with --validation). Method sections override the shared keys.
RECIPE = {
    "vocab_size": 20000,
    "sequence_length": 128,
    "encoder": "transformer",
    "dim": 256,
    "depth": 2,
    "heads": 4,
    "dropout": 0.1,
    "final_norm": "pooled",
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 0.01,
    "warmup": 100,
    "simcse": {"steps": 800, "temperature": 0.05},
    "declutr": {"steps": 800, "temperature": 0.05, "num_anchors": 1, "num_positives": 1, "min_length": 16},
    "pairs": {"steps": 400, "temperature": 0.1, "lr": 1e-3},  # the pair stage of configs/declutr_docstrings.py
    "skipgram": {"dim": 128, "window": 5, "num_negatives": 5, "epochs": 2, "batch_size": 2048, "lr": 3e-3},
}
QUICK = {
    "vocab_size": 5000,
    "sequence_length": 64,
    "dim": 64,
    "depth": 1,
    "simcse": {"steps": 30},
    "declutr": {"steps": 30},
    "pairs": {"steps": 30},
    "skipgram": {"epochs": 1},
}


def settings(overrides: list[str], quick: bool) -> dict:
    recipe = json.loads(json.dumps(RECIPE))
    if quick:
        for key, value in QUICK.items():
            recipe[key] = {**recipe[key], **value} if isinstance(value, dict) else value
    for item in overrides:
        key, _, value = item.partition("=")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        section, _, name = key.rpartition(".")
        (recipe.setdefault(section, {}) if section else recipe)[name] = parsed
    return recipe


def method_config(recipe: dict, method: str) -> dict:
    """The shared keys, then the stage's section; a variant ``stage@name`` adds its own section on top."""
    shared = {k: v for k, v in recipe.items() if not isinstance(v, dict)}
    base = method.split("@")[0]
    return {**shared, **recipe[base], **(recipe.get(method, {}) if method != base else {})}


def make_encoder(config: dict, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    options = {"dim": config["dim"], "dropout": config["dropout"]}
    if config["encoder"] == "transformer":
        options.update(depth=config["depth"], heads=config["heads"], final_norm=config["final_norm"])
    return tfc.text.text_encoder(config["encoder"], config["vocab_size"], config["sequence_length"], **options)


def optimizer(config: dict) -> keras.optimizers.Optimizer:
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(config["steps"] - config["warmup"], 1), warmup_target=config["lr"],
        warmup_steps=config["warmup"],
    )
    return keras.optimizers.AdamW(schedule, weight_decay=config["weight_decay"])


def simcse_stage(encoder, config, data, seed):
    model = tfc.models.SimCSE(encoder, temperature=config["temperature"])
    return model, tfc.text.simcse_batches(data.token_ids, config["batch_size"], config["sequence_length"], seed=seed)


def declutr_stage(encoder, config, data, seed):
    model = tfc.models.DeCLUTR(
        encoder, num_anchors=config["num_anchors"], num_positives=config["num_positives"],
        temperature=config["temperature"],
    )
    stream = model.batches(
        data.token_ids, config["batch_size"], config["sequence_length"], min_length=config["min_length"], seed=seed
    )
    return model, stream


def pairs_stage(encoder, config, data, seed):
    """(first paragraph, rest) pairs of the training docstrings, in-batch negatives (MNRL)."""
    pairs = tfc.text.evaluation.summary_task(data.train)
    queries = tfc.text.tokenize(data.vectorizer, pairs.queries)
    passages = tfc.text.tokenize(data.vectorizer, pairs.targets)
    model = tfc.models.DualEncoder(encoder, scale=1.0 / config["temperature"])
    return model, tfc.text.pair_batches(queries, passages, config["batch_size"], config["sequence_length"], seed=seed)


# A method is one stage or several run one after the other on the same encoder ("declutr+pairs"); a stage
# variant "pairs@fast" takes the settings of "pairs" updated by its own section (--set pairs@fast.steps=200).
STAGES = {"simcse": simcse_stage, "declutr": declutr_stage, "pairs": pairs_stage}


def stage_cache_path(cache: str, stages: list[str], recipe: dict, data, seed: int) -> str:
    """Where the encoder after ``stages`` is cached: a hash of the stages' settings, the data and the seed."""
    key = {
        "stages": [[s, method_config(recipe, s)] for s in stages],
        "encoder": method_config(recipe, stages[0]),
        "data": data.metadata(),
        "seed": seed,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return os.path.join(cache, f"{'+'.join(stages)}-{digest}.weights.h5")


def train_method(method: str, recipe: dict, data, seed: int, cache: str | None = None) -> tuple[keras.Model, dict]:
    """Trains the stages of ``method`` in turn; with ``cache``, a stage prefix trained before is loaded, not retrained."""
    stages = method.split("+")
    encoder = make_encoder(method_config(recipe, stages[0]), seed)
    info = {"fit_s": 0.0, "steps": 0}
    for i, stage in enumerate(stages):
        config = method_config(recipe, stage)
        path = stage_cache_path(cache, stages[: i + 1], recipe, data, seed) if cache else None
        if path and os.path.exists(path):
            encoder.load_weights(path)
            info[f"{stage}_cached"] = path
            continue
        keras.utils.set_random_seed(seed + i)  # each stage's dropout draws do not depend on a cached prefix
        model, stream = STAGES[stage.split("@")[0]](encoder, config, data, seed)
        model.compile(optimizer=optimizer(config))
        start = time.perf_counter()
        history = model.fit(stream, steps_per_epoch=config["steps"], epochs=1, verbose=0, shuffle=False)
        info["fit_s"] += time.perf_counter() - start
        info["steps"] += config["steps"]
        info[f"{stage}_final_loss"] = history.history["loss"][-1]
        if path:
            os.makedirs(cache, exist_ok=True)
            encoder.save_weights(path)
    return encoder, info


def train_skipgram(config: dict, token_ids, vocabulary, seed: int):
    keras.utils.set_random_seed(seed)
    model = tfc.text.SkipGram(
        len(vocabulary), dim=config["dim"], window=config["window"], num_negatives=config["num_negatives"],
        vocabulary=vocabulary,
    )
    model.adapt(token_ids)
    model.compile(optimizer=keras.optimizers.Adam(config["lr"]))
    start = time.perf_counter()
    stream = model.dataset(token_ids, config["batch_size"], epochs=config["epochs"], seed=seed)
    history = model.fit(stream, verbose=0, shuffle=False)
    return model, {"fit_s": time.perf_counter() - start, "final_loss": history.history["loss"][-1]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", default="numpy,scipy,sklearn")
    parser.add_argument("--min-words", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="simcse,declutr")
    parser.add_argument("--baselines", default="tfidf,random,word2vec")
    parser.add_argument("--validation", action="store_true", help="score on 20%% of the training split")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the recipe")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--cache", help="folder of trained encoders: a stage prefix (e.g. declutr of declutr+pairs) "
                        "trained with the same settings is loaded instead of retrained")
    args = parser.parse_args(argv)
    recipe = settings(args.set, args.quick)
    methods = [m for m in args.methods.split(",") if m]
    baselines = [b for b in args.baselines.split(",") if b]

    docs = tfc.data.load_docstrings(tuple(args.packages.split(",")), min_words=args.min_words)
    if args.validation:  # model selection: split the training part again, never touch the held-out part
        docs = docs.split(0.2, seed=args.seed)[0]
    data = tfc.text.prepare_text_data(docs, recipe["vocab_size"], recipe["sequence_length"], 0.2, args.seed)
    train, held_out, vectorizer, token_ids = data.train, data.held_out, data.vectorizer, data.token_ids
    tasks = tfc.text.retrieval_tasks(held_out, seed=args.seed)
    print(
        f"corpus: {len(docs)} docstrings of {docs.metadata['versions']} (>= {args.min_words} words); "
        f"train {len(train)}, {'validation' if args.validation else 'held out'} {len(held_out)} "
        f"(span queries {len(tasks['span'])}, summary queries {len(tasks['summary'])})"
    )
    print("recipe:", json.dumps(recipe))
    vocabulary = vectorizer.get_vocabulary()
    recipe["vocab_size"] = data.vocab_size
    results, info = {}, {}

    def evaluate(name, embed, extra=None):
        results[name] = tfc.text.evaluate_text_retrieval(embed, tasks)
        info[name] = extra or {}
        print(f"  {name}: span r@1 {results[name]['span/recall@1']:.3f}, "
              f"summary r@1 {results[name]['summary/recall@1']:.3f}  {extra or ''}", flush=True)

    if "tfidf" in baselines:
        evaluate("tfidf", tfc.text.tfidf_embedder(train.texts))
    encoder_name = f"{recipe['encoder']} dim {recipe['dim']}" + (
        f" depth {recipe['depth']}" if recipe["encoder"] == "transformer" else ""
    )
    if "random" in baselines:
        random_encoder = make_encoder(method_config(recipe, "simcse"), args.seed)
        evaluate(f"random {encoder_name}", tfc.text.embedder(tfc.text.string_encoder(vectorizer, random_encoder)))
    if "word2vec" in baselines:
        config = recipe["skipgram"]
        skipgram, extra = train_skipgram(config, token_ids, vocabulary, args.seed)
        evaluate(
            "word2vec mean",
            lambda texts: skipgram.mean_vectors(tfc.text.tokenize(vectorizer, texts)),
            extra,
        )
    for method in methods:
        encoder, extra = train_method(method, recipe, data, args.seed, args.cache)
        evaluate(method, tfc.text.embedder(tfc.text.string_encoder(vectorizer, encoder)), extra)

    print()
    print(tfc.text.format_table(results))
    print("\nfit wall time (s, shared machine):", {k: round(v["fit_s"], 1) for k, v in info.items() if "fit_s" in v})
    output = {
        "data": data.metadata(),
        "validation": args.validation,
        "recipe": recipe,
        "results": results,
        "info": info,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(output, f, indent=1, default=str)
    return output


if __name__ == "__main__":
    main()
