"""The ``text`` data kind and its job: train a sentence encoder on documents, evaluate, export, look up.

``tfcontrast train --config simcse_docstrings --workdir runs/text`` (or
``declutr_docstrings``; any method whose batch kind has ``data="text"``):

1. validate the config; a workdir holding another run is refused; nothing is
   written before the data and the model are built;
2. load the documents (``data.name``: the docstrings of installed packages,
   a folder of ``.txt`` files or a ``.jsonl``), split them
   (``data.test_fraction``, ``data.split_seed``), adapt the
   ``TextVectorization`` vocabulary on the training part and tokenise it
   (:func:`tfcontrast.text.prepare_text_data`);
3. build the encoder (``encoder.*``, :func:`tfcontrast.text.text_encoder`,
   seeded by ``seed``) and the method around it from its registration, and
   train with ``model.fit`` on its batch kind's stream, checkpointing every
   epoch (:mod:`tfcontrast.jobs.checkpoint`; the same command resumes);
   then, with ``pairs.steps > 0``, the optional second stage on the same
   encoder (:mod:`tfcontrast.jobs.text_pairs`): (first paragraph, rest) pairs
   of the *training* documents with in-batch negatives, weak supervision
   from the documents' layout, checkpointed in ``checkpoint_pairs/``
   (a resumed run repeats and loses neither stage);
4. save ``model/embedder.keras``: raw strings -> embeddings (vocabulary inside);
5. :func:`evaluate`: on the held-out documents, span -> span and summary ->
   body retrieval (recall@1/@5, MRR; :func:`tfcontrast.text.evaluate_text_retrieval`)
   of the trained encoder next to TF-IDF (fitted on the training split), the
   same encoder at its initial weights, the mean of SkipGram word vectors
   trained on the training split (``eval.word2vec_*``) and, when the pair
   stage ran, the encoder before it (row ``before_pairs``); an index of every
   document (``index/``, payload = the document's name); a SavedModel
   (``export/``) whose ``lookup`` signature takes raw strings and returns the
   ``index.lookup_k`` nearest names; ``summary.json`` (``train.stages``:
   each stage that ran, with its steps) and ``report.md``.

:func:`lookup` embeds a query text and prints the nearest document names
(``tfcontrast lookup --workdir runs/text --query "eigenvalues of a symmetric matrix"``).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Callable

import keras
import numpy as np

from tfcontrast import config as config_lib, index as index_lib, registry, text
from tfcontrast.fields import Choice, Float, Int, Str
from tfcontrast.jobs import checkpoint, components, text_pairs, workdir as workdir_lib
from tfcontrast.jobs.training import RunError, _previous_config, check_workdir, restore_checkpoint

SOURCES = ("docstrings", "text_folder", "jsonl")
REPORT = "report.md"
BEFORE_PAIRS = "before_pairs"  # the results row of the method's encoder alone when the pair stage ran


# ------------------------------------------------------------------ the job


def load_data(config) -> text.TextData:
    """The run's documents, split, with the vocabulary adapted on the training part.

    Raises:
        ConfigError: the documents cannot be loaded (named with ``config.data``).
    """
    d = config.data
    options = {"min_words": d.min_words}
    if d.name == "docstrings":
        source, options["packages"] = "docstrings", tuple(p.strip() for p in d.packages.split(",") if p.strip())
    else:
        source = d.path
        if d.name == "jsonl":
            options["text_field"] = d.text_field
    try:
        return text.prepare_text_data(source, d.vocab_size, d.sequence_length, d.test_fraction, d.split_seed, **options)
    except (ValueError, OSError) as err:
        raise config_lib.ConfigError([("config.data", str(err))]) from None


def build_encoder(config, data: text.TextData) -> keras.Model:
    """The configured encoder, ``int ids [batch, sequence_length] -> [batch, dim]``, at weights seeded by ``config.seed``."""
    e = config.encoder
    options = {"dim": e.dim, "dropout": e.dropout}
    if e.name == "transformer":
        options.update(depth=e.depth, heads=e.heads)
    keras.utils.set_random_seed(config.seed)
    try:
        return text.text_encoder(e.name, data.vocab_size, data.sequence_length, **options)
    except ValueError as err:
        raise config_lib.ConfigError([("config.encoder", str(err))]) from None


def build_model(config, data: text.TextData) -> keras.Model:
    """The method's model (its registered builder) around :func:`build_encoder`, compiled with the configured optimizer."""
    spec = registry.methods.get(config.method)
    encoder = build_encoder(config, data)
    try:
        model = spec.build(config, encoder, registry.BuildContext(input_shape=(data.sequence_length,)))
    except ValueError as err:
        raise config_lib.ConfigError([("config.model", str(err))]) from None
    model.compile(optimizer=components.build_optimizer(config), jit_compile=config.train.jit_compile)
    return model


def train(config, workdir: str, out: Callable[[str], None] = print) -> dict:
    """Trains (or resumes) the text run of ``config`` in ``workdir``, then evaluates it (module docstring).

    Raises:
        ConfigError: a bad config or data (before anything is written).
        RunError: ``workdir`` holds a run of another config, or something that is not a run.
    """
    started = time.perf_counter()
    config = config_lib.validate(config)
    wd = workdir_lib.Workdir(workdir)
    previous = check_workdir(wd, config)
    if previous is not None:
        if os.path.exists(wd.summary) and workdir_lib.read_json(wd.summary).get("status") == "done":
            out(f"{wd.root}: already trained and evaluated; nothing to do.")
            return workdir_lib.read_json(wd.summary)

    data = load_data(config)
    kind = registry.batch_kinds.get(registry.methods.get(config.method).batch)
    problems = kind.check(config, data) if kind.check is not None else []
    if problems:
        raise config_lib.ConfigError(problems)
    model = build_model(config, data)
    state = restore_checkpoint(model, wd, out)
    spe = config.train.steps_per_epoch
    start_epoch = state["epoch"] if state else 0
    try:
        stream = kind.stream(config, data, None, start_epoch * spe)
    except ValueError as err:
        raise config_lib.ConfigError([("config.train", str(err))]) from None

    os.makedirs(wd.root, exist_ok=True)
    workdir_lib.write_json(wd.config, config.to_dict())
    out(
        f"{'resuming' if start_epoch else 'training'} {config.method} in {wd.root}: {config.train.steps} steps, "
        f"{len(data.train)} training documents ({len(data.held_out)} held out), vocabulary {data.vocab_size}"
    )
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    if start_epoch * spe < config.train.steps:
        saver = checkpoint.Checkpoint(wd.checkpoint, spe, state)
        stop = config.train.stop_after_steps
        stopper = checkpoint.StopAfter(stop if stop > start_epoch * spe else 0, spe)
        model.fit(
            stream, epochs=config.train.steps // spe, steps_per_epoch=spe, initial_epoch=start_epoch,
            callbacks=[saver, stopper, _tensorboard(wd.logs)],
            verbose=1,
        )
        state = checkpoint.read_state(wd.checkpoint)
        if stopper.stopped and (state["step"] < config.train.steps or config.pairs.steps):
            return _stopped(config, wd, state, None, out)

    encoder = registry.methods.get(config.method).embedder(model)
    try:  # the optional (summary, body) pair stage on the trained encoder (tfcontrast.jobs.text_pairs)
        pair_state = text_pairs.train(config, data, encoder, wd, [_tensorboard(os.path.join(wd.logs, text_pairs.NAME))], out)
    except RunError:
        raise
    except ValueError as err:
        raise config_lib.ConfigError([("config.pairs", str(err))]) from None
    if pair_state is not None and pair_state["step"] < config.pairs.steps:
        return _stopped(config, wd, state, pair_state, out)

    strings = text.string_encoder(data.vectorizer, encoder)
    workdir_lib.atomic_write(wd.embedder, lambda tmp: strings.save(tmp), suffix=".keras")
    out(f"trained in {time.perf_counter() - started:.1f} s")
    return evaluate(wd.root, out=out, data=data)


def evaluate(workdir: str, out: Callable[[str], None] = print, data: text.TextData | None = None) -> dict:
    """Scores the trained text run in ``workdir``; writes ``index/``, ``export/``, ``summary.json``, ``report.md``.

    Raises:
        ValueError: no trained run in ``workdir``.
    """
    started = time.perf_counter()
    wd = workdir_lib.Workdir(workdir)
    config = _previous_config(wd)
    state = checkpoint.read_state(wd.checkpoint)
    if config is None or state is None or not os.path.exists(wd.embedder):
        raise ValueError(f"{wd.root} holds no trained run (config.json, checkpoint/, model/embedder.keras).")
    data = data if data is not None else load_data(config)
    strings = keras.models.load_model(wd.embedder, compile=False)
    e = config.eval

    out("scoring on the held-out documents (TF-IDF, random encoder and word2vec baselines) ...")
    random_strings = text.string_encoder(data.vectorizer, build_encoder(config, data))
    skipgram = _skipgram(config, data)
    rows = {
        "tfidf": text.tfidf_embedder(data.train.texts),
        "random_encoder": text.embedder(random_strings),
        "word2vec_mean": lambda texts: skipgram.mean_vectors(text.tokenize(data.vectorizer, texts)),
    }
    if config.pairs.steps:  # the method's encoder alone (its last checkpoint), before the pair stage
        rows[BEFORE_PAIRS] = text.embedder(text.string_encoder(data.vectorizer, _method_encoder(config, data, wd)))
    rows["trained"] = text.embedder(strings)
    tasks = text.retrieval_tasks(data.held_out, seed=config.seed)
    results = {name: text.evaluate_text_retrieval(embed, tasks) for name, embed in rows.items()}

    embeddings = text.embedder(strings)(list(data.documents.texts))
    idx = index_lib.Index(metric="cosine", backend="exact")
    idx.add(embeddings, ids=np.arange(len(embeddings)), data=list(data.documents.ids))
    idx.save(wd.index)
    text.export_text_model(strings, wd.export, names=data.documents.ids, embeddings=embeddings, k=config.index.lookup_k)

    table = text.format_table(results)
    summary = {
        "status": "done",
        "method": config.method,
        "workdir": wd.root,
        "config": config.to_dict(),
        "data": data.metadata(),
        "train": _train_facts(config, state, checkpoint.read_state(wd.path(text_pairs.FOLDER)) if config.pairs.steps else None),
        "evaluation": {
            "held_out_documents": len(data.held_out),
            "queries": {name: len(task) for name, task in tasks.items()},
            "results": results,
            "targets": _targets(results),
            "wall_time_s": round(time.perf_counter() - started, 1),
        },
        "artefacts": {"embedder": "model/embedder.keras", "index": "index", "export": "export", "report": REPORT},
    }
    workdir_lib.write_json(wd.summary, summary)
    workdir_lib.atomic_write(wd.path(REPORT), lambda tmp: _write_report(tmp, summary, table), suffix=".md")
    out(table)
    out(headline(summary))
    return summary


def lookup(workdir: str, query: str, k: int = 5, raw: bool = False, index: str | None = None) -> str:
    """The names of the ``k`` documents nearest to the text ``query``, one per line with the cosine similarity.

    Raises:
        ValueError: an empty query, no evaluated run in ``workdir``, or ``raw`` / ``index`` (image options).
    """
    if raw or index is not None:
        raise ValueError("--raw and --index apply to image runs; a text run looks up the text given as --query.")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("--query must be a non-empty text for a text run.")
    wd = workdir_lib.Workdir(workdir)
    if not os.path.exists(wd.embedder) or not os.path.isdir(wd.index):
        raise ValueError(f"{wd.root} holds no evaluated text run (model/embedder.keras and index/).")
    strings = keras.models.load_model(wd.embedder, compile=False)
    found = index_lib.Index.load(wd.index).search(text.embedder(strings)([query]), k=k)
    lines = [f"nearest documents to {query!r}:"]
    for rank, (name, distance) in enumerate(zip(found.data[0], found.distances[0]), start=1):
        if name is not None:
            lines.append(f"  {rank:>2}. {name}  (cosine {1.0 - float(distance):.3f})")
    return "\n".join(lines)


def headline(summary: dict) -> str:
    """Two lines: the trained encoder against TF-IDF on both tasks, and whether the targets are met."""
    r, t = summary["evaluation"]["results"], summary["evaluation"]["targets"]
    stages = " + ".join(stage["name"] for stage in summary["train"].get("stages", [])) or summary["method"]
    return (
        f"{stages}: span->span recall@1 {r['trained']['span/recall@1']:.3f} (TF-IDF {r['tfidf']['span/recall@1']:.3f}); "
        f"summary->body recall@1 {r['trained']['summary/recall@1']:.3f} (TF-IDF {r['tfidf']['summary/recall@1']:.3f}, "
        f"ratio {t['summary_ratio']:.2f})\n"
        f"  targets: beats TF-IDF on span->span: {t['span_beats_tfidf']}; >= 0.9x TF-IDF on summary->body: {t['summary_at_least_0.9x']}"
    )


def _targets(results: dict) -> dict:
    trained, tfidf = results["trained"], results["tfidf"]
    ratio = trained["summary/recall@1"] / max(tfidf["summary/recall@1"], 1e-12)
    return {
        "span_beats_tfidf": bool(trained["span/recall@1"] > tfidf["span/recall@1"]),
        "summary_ratio": round(ratio, 4),
        "summary_at_least_0.9x": bool(ratio >= 0.9),
    }


def _method_encoder(config, data: text.TextData, wd: workdir_lib.Workdir) -> keras.Model:
    """The encoder at the end of the method's own stage (``checkpoint/``), i.e. before the pair stage."""
    model = build_model(config, data)
    restore_checkpoint(model, wd, out=lambda line: None)
    return registry.methods.get(config.method).embedder(model)


def _skipgram(config, data: text.TextData) -> text.SkipGram:
    """SkipGram word vectors trained on the training split (the word2vec baseline), seeded by ``config.seed``."""
    e = config.eval
    keras.utils.set_random_seed(config.seed)
    model = text.SkipGram(
        data.vocab_size, dim=e.word2vec_dim, window=e.word2vec_window, num_negatives=e.word2vec_negatives,
        vocabulary=data.vectorizer.get_vocabulary(),
    )
    model.adapt(data.token_ids)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(model.dataset(data.token_ids, 2048, epochs=e.word2vec_epochs, seed=config.seed), verbose=0)
    return model


def _tensorboard(folder: str) -> keras.callbacks.TensorBoard:
    return keras.callbacks.TensorBoard(log_dir=folder, write_graph=False, profile_batch=0)


def _stopped(config, wd: workdir_lib.Workdir, state: dict, pair_state: dict | None, out: Callable[[str], None]) -> dict:
    """Writes the summary of a run stopped by ``train.stop_after_steps`` (resumable) and returns it."""
    summary = {"status": "stopped", "method": config.method, "config": config.to_dict(), "train": _train_facts(config, state, pair_state)}
    workdir_lib.write_json(wd.summary, summary)
    step = state["step"] + (pair_state["step"] if pair_state else 0)
    out(f"stopped after step {step} (train.stop_after_steps); run the same command again to continue.")
    return summary


def _stage_facts(steps: int, state: dict | None, batch_size: int) -> dict:
    state = state or {"step": 0}
    history = state.get("history") or {}
    wall = float(state.get("train_wall_time_s", 0.0))
    return {
        "steps": steps,
        "steps_done": int(state["step"]),
        "wall_time_s": round(wall, 1),
        "documents_per_second": round(state["step"] * batch_size / wall, 1) if wall > 0 else None,
        "final_metrics": {k: round(v[-1], 6) for k, v in history.items() if v},
    }


def _train_facts(config, state, pair_state: dict | None = None) -> dict:
    """The method's training facts (``steps``, ``steps_done``, ...) and ``stages``: what each stage ran."""
    facts = _stage_facts(config.train.steps, state, config.train.batch_size)
    stages = [{"name": config.method, "data": "training documents (the method's views)", **facts}]
    if config.pairs.steps:
        stages.append(
            {
                "name": text_pairs.NAME,
                "data": "(first paragraph, rest) pairs of the training documents; in-batch negatives",
                **_stage_facts(config.pairs.steps, pair_state, config.train.batch_size),
            }
        )
    return {**facts, "stages": stages}


def _write_report(path: str, summary: dict, table: str) -> None:
    data = summary["data"]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# {summary['method']} on {data.get('source', 'documents')}\n\n")
        f.write(
            f"{data['documents']} documents ({data['train']} train, {data['held_out']} held out), "
            f"vocabulary {data['vocab_size']}, sequence length {data['sequence_length']}.\n\n"
            "Training stages of the `trained` row, in order:\n\n"
        )
        for stage in summary["train"]["stages"]:
            f.write(f"- {stage['name']}: {stage['steps_done']} steps in {stage['wall_time_s']} s on {stage['data']}\n")
        f.write("\n")
        f.write(table + "\n\n" + headline(summary) + "\n")


# ------------------------------------------------------------- registration


def _text_checks(c: dict) -> list[tuple[str, str]]:
    """``data.path`` fits ``data.name`` (made absolute in ``c``); docstrings name packages."""
    problems, data = [], c["data"]
    if data["name"] == "docstrings":
        if data["path"]:
            problems.append(("config.data.path", f"must be '' for data.name='docstrings', got {data['path']!r}"))
        if not [p for p in data["packages"].split(",") if p.strip()]:
            problems.append(("config.data.packages", "must name at least one installed package"))
        return problems
    if not data["path"]:
        return [("config.data.path", f"is required for data.name={data['name']!r}: pass --config.data.path=...")]
    data["path"] = path = os.path.abspath(os.path.expanduser(data["path"]))
    if data["name"] == "text_folder" and not os.path.isdir(path):
        problems.append(("config.data.path", f"must be an existing folder of .txt files, got {path!r}"))
    if data["name"] == "jsonl" and not os.path.isfile(path):
        problems.append(("config.data.path", f"must be an existing .jsonl file, got {path!r}"))
    return problems


registry.register_data_kind(
    "text",
    summary="documents: docstrings of installed packages, a folder of .txt files or a .jsonl (tfcontrast.jobs.text)",
    sections={
        "data": {
            "name": Choice(SOURCES, "docstrings", "docstrings (of the installed packages) | text_folder | jsonl"),
            "path": Str("", "folder of .txt files (text_folder) or .jsonl file (jsonl); '' for docstrings"),
            "packages": Str("numpy,scipy,sklearn", "docstrings: comma-separated installed packages"),
            "min_words": Int(80, "documents with fewer words are left out", min=0),
            "text_field": Str("text", "jsonl: the field holding each document's text"),
            "test_fraction": Float(0.2, "share of the documents held out for evaluation", within="(0, 1)"),
            "split_seed": Int(0, "seed of the train / held-out split", min=0),
            "vocab_size": Int(20000, "TextVectorization vocabulary (adapted on the training split)", min=3),
            "sequence_length": Int(256, "tokens per encoded text (longer texts are cut, shorter padded)", min=2),
        },
        "encoder": {
            "name": Choice(tuple(text.pipeline.ENCODERS), "transformer", "transformer (pre-norm, mean pooling) | cnn (Kim 2014)"),
            "dim": Int(256, "embedding width", min=1),
            "depth": Int(2, "transformer: blocks (0: position-aware bag of embeddings)", min=0),
            "heads": Int(4, "transformer: attention heads (divide dim)", min=1),
            "dropout": Float(0.1, "dropout rate (SimCSE's only augmentation)", within="[0, 1)"),
        },
        "augment": None,
        "eval": {
            "word2vec_dim": Int(128, "word2vec baseline: word vector width", min=1),
            "word2vec_window": Int(5, "word2vec baseline: context window", min=1),
            "word2vec_negatives": Int(5, "word2vec baseline: negatives per (word, context) pair", min=1),
            "word2vec_epochs": Int(2, "word2vec baseline: passes over the training split", min=1),
        },
        "index": {"lookup_k": Int(10, "names returned by the exported `lookup` signature", min=1)},
        "pairs": text_pairs.SECTION,
    },
    job=__name__,
    check=lambda c: _text_checks(c) + text_pairs.checks(c),
    later_steps=text_pairs.later_steps,
)
