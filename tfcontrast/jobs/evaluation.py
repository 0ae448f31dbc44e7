"""``tfcontrast evaluate``: score a trained run and write its index, export, plots and summary.

From the saved embedding network (``model/embedder.keras``) alone:

1. embed the train split (the references) and the test split (the queries);
2. index the train embeddings with their labels (``index.metric`` /
   ``index.backend``: a faiss :class:`tfcontrast.index.Index`, or a Milvus
   collection, :mod:`tfcontrast.jobs.indexes`) and save it to ``index/``;
3. score the test queries against it: k-NN accuracy (distance-weighted vote of
   ``eval.knn_k`` neighbours, :func:`tfcontrast.index.knn_accuracy`),
   recall@k / precision@k / mAP@R (:func:`tfcontrast.index.evaluate_retrieval`)
   and a linear probe (:func:`tfcontrast.probe.linear_probe_accuracy`, fitted on
   the train embeddings);
4. the same scores for two baselines: the same network at its initial random
   weights (rebuilt from ``config.seed``: exactly where training started) and
   the raw pixels (flattened inputs);
5. the same scores again with the test queries under the evaluation nuisance
   (:func:`tfcontrast.augment.nuisance_transform`: integer shifts up to
   ``eval.nuisance_max_shift`` px and rotations up to
   ``eval.nuisance_max_degrees``), against the clean train references;
6. collapse indicators of the test embeddings (projection std and effective
   rank, :mod:`tfcontrast.models.ssl.collapse`);
7. plots (training curves, 2-D map of the test embeddings, neighbour grid,
   singular-value spectrum) and the SavedModel export, which checks its inputs
   against the run's input contract (``input_contract.json``);
8. ``summary.json``, rewritten whole (:mod:`tfcontrast.jobs.report`), with the
   collapse alarm's warning if it fired during training.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from tfcontrast import augment, config as config_lib, export, index as index_lib, plots, probe
from tfcontrast.callbacks import CollapseAlarm
from tfcontrast.jobs import checkpoint, components, indexes, inputs, report, workdir as workdir_lib
from tfcontrast.models.ssl import collapse


def evaluate(workdir: str, out: Callable[[str], None] = print, run: inputs.RunData | None = None) -> dict:
    """Evaluates the trained run in ``workdir`` (module docstring); returns the summary written.

    Args:
        workdir: a run folder written by ``tfcontrast train``.
        out: where progress lines go.
        run: the run's data when the caller has it loaded already.

    Raises:
        ValueError: no finished run in ``workdir``.
    """
    started = time.perf_counter()
    wd = workdir_lib.Workdir(workdir)
    config, state = load_run(wd)
    run = run if run is not None else inputs.load_split(config)
    e = config.eval
    net = workdir_lib.load_embedder(wd.embedder)
    initial = components.embedder(components.initial_model(config, run.input_shape, run.num_classes), config.method)

    def embed(network, x):
        return probe.embed(network, x, batch_size=e.batch_size)

    x_nuisance = None
    if run.is_images:
        x_nuisance = augment.nuisance_transform(run.x_test, e.nuisance_max_shift, e.nuisance_max_degrees, e.nuisance_seed)
    sources = {
        "trained": (lambda x: embed(net, x)),
        "random_encoder": (lambda x: embed(initial, x)),
        "raw_pixels": (lambda x: x.reshape(len(x), -1).astype(np.float32)),
    }
    clean, nuisance, trained = {}, {}, {}
    for name, fn in sources.items():
        train_emb, test_emb = fn(run.x_train), fn(run.x_test)
        idx = build_index(config, train_emb, run.y_train, wd if name == "trained" else None)
        clean[name] = scores(config, idx, train_emb, run.y_train, test_emb, run.y_test)
        if x_nuisance is not None:
            nuisance[name] = scores(config, idx, train_emb, run.y_train, fn(x_nuisance), run.y_test)
        if name == "trained":
            trained = dict(index=idx, train=train_emb, test=test_emb)
    idx = trained["index"]
    idx.save(wd.index, metadata=indexes.RUN_INDEX_METADATA)

    evaluation = {
        **clean["trained"],
        "collapse": collapse_indicators(trained["test"]),
        "baselines": {
            "random_encoder": {**clean["random_encoder"], "collapse": collapse_indicators(sources["random_encoder"](run.x_test))},
            "raw_pixels": clean["raw_pixels"],
        },
        "nuisance": (
            {
                "max_shift": e.nuisance_max_shift,
                "max_degrees": e.nuisance_max_degrees,
                "seed": e.nuisance_seed,
                **nuisance,
            }
            if nuisance
            else None
        ),
        "settings": {
            "knn_k": e.knn_k,
            "recall_ks": list(e.recall_ks),
            "metric": config.index.metric,
            "backend": config.index.backend,
            "embedding_dim": int(trained["test"].shape[1]),
            "n_train": len(run.x_train),
            "n_test": len(run.x_test),
            **({"milvus": {"uri": idx.uri, "collection": idx.collection}} if config.index.backend == "milvus" else {}),
        },
    }
    artefacts = write_plots(config, wd, state, run, trained)
    contract = inputs.input_contract(run)
    workdir_lib.write_json(wd.contract, contract.to_dict())
    export.export_saved_model(net, wd.export, index=idx, k=config.index.lookup_k, contract=contract)
    indexes.close(idx)  # a Milvus Lite file is free for the next process (e.g. `tfcontrast lookup`)
    evaluation["wall_time_s"] = round(time.perf_counter() - started, 3)
    summary = report.summary(config, wd, state, run, evaluation, plots=artefacts, feature_dim=int(trained["test"].shape[1]))
    workdir_lib.write_json(wd.summary, summary)
    out(report.headline(summary))
    out(f"wrote {wd.summary}")
    return summary


def load_run(wd: workdir_lib.Workdir):
    """``(config, checkpoint state)`` of a finished run in ``wd``.

    Raises:
        ValueError: no config, an unfinished run, or no saved embedding network.
    """
    workdir_lib.require_run(wd)
    config = config_lib.from_json(open(wd.config, encoding="utf-8").read())
    state = checkpoint.read_state(wd.checkpoint)
    if state is None or state["step"] < config.train.steps or not os.path.exists(wd.embedder):
        step = 0 if state is None else state["step"]
        raise ValueError(
            f"the run in {wd.root} has not finished training ({step} of {config.train.steps} steps): "
            "run the same `tfcontrast train` command to continue it."
        )
    return config, state


def build_index(config, embeddings: np.ndarray, labels: np.ndarray, wd: workdir_lib.Workdir | None = None):
    """The configured index over ``embeddings`` with their labels; ids are row numbers.

    With ``wd``, the run's own index (a Milvus collection for ``index.backend``
    milvus, :func:`tfcontrast.jobs.indexes.run_index`); without, a faiss index
    in memory (the baselines).
    """
    if wd is not None:
        return indexes.run_index(config, wd, embeddings, labels)
    return indexes.memory_index(config, embeddings, labels)


def scores(config, idx, train_emb, train_y, queries, query_y) -> dict:
    """k-NN accuracy, probe accuracy, recall@k, precision@k and mAP@R of ``queries`` against ``idx``."""
    e = config.eval
    out = {
        "knn_accuracy": index_lib.knn_accuracy(idx, queries, query_y, k=e.knn_k),
        "probe_accuracy": probe.linear_probe_accuracy(train_emb, train_y, queries, query_y),
    }
    out.update(index_lib.evaluate_retrieval(idx, queries, query_y, ks=tuple(e.recall_ks)))
    return {k: round(float(v), 6) for k, v in out.items()}


def collapse_indicators(embeddings: np.ndarray) -> dict:
    """Projection std (vs its ceiling ``1/sqrt(d)``) and effective rank (vs ``d``) of ``embeddings``."""
    x = tf.constant(embeddings, tf.float32)
    d = int(embeddings.shape[1])
    return {
        "projection_std": round(float(collapse.projection_std(x)), 6),
        "projection_std_ceiling": round(1.0 / float(np.sqrt(d)), 6),
        "effective_rank": round(float(collapse.effective_rank(x)), 3),
        "dim": d,
    }


def write_plots(config, wd, state: Mapping, run: inputs.RunData, trained: Mapping) -> dict:
    """Writes the PNGs of ``plots/``; returns their paths relative to the workdir."""
    e = config.eval
    paths = {}
    history = state.get("history") or {}
    if history:
        projection_dim = config.model.get("projection_dim")
        bands = CollapseAlarm().bands(
            projection_dim if isinstance(projection_dim, int) else None, int(trained["test"].shape[1])
        )
        paths["training_curves"] = plots.training_curves(
            history, os.path.join(wd.plots, "training_curves.png"),
            title=f"{config.method}: training curves ({config.train.steps} steps)", bands=bands,
        )
    paths["embedding_map"] = plots.embedding_map(
        trained["test"], run.y_test, os.path.join(wd.plots, "embedding_map.png"), method=e.map_method,
        title=f"{config.method}: test embeddings ({e.map_method.upper()})",
    )
    paths["spectrum"] = plots.singular_value_spectrum(trained["test"], os.path.join(wd.plots, "spectrum.png"))
    if run.is_images:
        rows = grid_queries(run.y_test, e.grid_queries)
        found = trained["index"].search(trained["test"][rows], e.grid_neighbors)
        paths["neighbors"] = plots.neighbor_grid(
            run.x_test[rows], run.y_test[rows], run.x_train[found.ids], found.labels,
            os.path.join(wd.plots, "neighbors.png"),
            title=f"{config.method}: the {e.grid_neighbors} nearest training images of {len(rows)} test images "
            f"({config.index.metric})",
            class_names=run.class_names,
        )
    return {k: os.path.relpath(v, wd.root) for k, v in paths.items()}


def grid_queries(labels: np.ndarray, count: int) -> np.ndarray:
    """``count`` test rows for the neighbour grid: the first of each class in turn, then the next, ..."""
    order = []
    by_class = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels)]
    while len(order) < min(count, len(labels)):
        for rows in by_class:
            if rows and len(order) < count:
                order.append(rows.pop(0))
    return np.asarray(order, dtype=np.int64)
