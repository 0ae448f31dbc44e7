"""``tfcontrast evaluate``: score a trained run and write its index, export, plots and summary.

From the saved embedding network (``model/embedder.keras``) alone:

1. embed the train split (the references) and the test split (the queries),
   through one compiled graph per network (:func:`tfcontrast.probe.inference_graph`);
2. index the train embeddings with their labels (``index.metric`` /
   ``index.backend``: a faiss :class:`tfcontrast.index.Index`, or a Milvus
   collection, :mod:`tfcontrast.jobs.indexes`) and save it to ``index/``;
3. score the test queries against it: k-NN accuracy (distance-weighted vote of
   ``eval.knn_k`` neighbours, :func:`tfcontrast.index.knn_accuracy`),
   recall@k / precision@k / mAP@R (:func:`tfcontrast.index.evaluate_retrieval`)
   and a linear probe (:func:`tfcontrast.probe.fit_linear_probe`, fitted on
   the train embeddings);
4. the same scores for two baselines: the same network at its initial random
   weights (rebuilt from ``config.seed``: exactly where training started) and
   the raw pixels (flattened inputs; wider than ``RAW_PIXEL_DIMS`` = 256, their
   top 256 singular directions: :func:`pixel_features`, recorded in
   ``settings.raw_pixels``);
5. the same scores again with the test queries under the evaluation nuisance
   (:func:`tfcontrast.augment.nuisance_transform`: integer shifts up to
   ``eval.nuisance_max_shift`` px and rotations up to
   ``eval.nuisance_max_degrees``), against the clean train references. Each
   source has **one** index and **one** probe fit, scored on both query sets;
6. collapse indicators of the test embeddings (projection std and effective
   rank, :mod:`tfcontrast.models.ssl.collapse`);
7. plots (training curves, 2-D map of the test embeddings, neighbour grid,
   singular-value spectrum), drawn in a background thread while 4-6 and the
   export run; the map is ``eval.map_method``, except that t-SNE is used for
   at most ``TSNE_MAX_POINTS`` = 2,000 test embeddings and PCA above
   (recorded in ``settings.embedding_map``); then the SavedModel export,
   which checks its inputs against the run's input contract
   (``input_contract.json``);
8. ``summary.json``, rewritten whole (:mod:`tfcontrast.jobs.report`), with the
   collapse alarm's warning if it fired during training.

The scores' linear algebra runs on one BLAS/OpenMP thread per task
(:func:`single_threaded_numerics`). Costs grow linearly with the number of
images except the exact searches (queries x references x dim, a small
constant at dim 128-256) and mAP@R (queries x the size of a class);
``benchmarks/bench_eval.py`` measures them against the training time.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from tfcontrast import augment, config as config_lib, export, index as index_lib, plots, probe
from tfcontrast.callbacks import CollapseAlarm
from tfcontrast.jobs import checkpoint, components, indexes, inputs, report, workdir as workdir_lib
from tfcontrast.models.ssl import collapse

# Raw pixels wider than this are scored in their top RAW_PIXEL_DIMS singular directions (pixel_features).
RAW_PIXEL_DIMS = 256
# Train rows the raw-pixel projection is fitted on (a fixed random subset above it): its cost stays bounded.
RAW_PIXEL_FIT_ROWS = 5_000
# t-SNE maps at most this many test embeddings; above, the map is PCA (t-SNE grows like n log n: 1-2 s
# for the 360 digits, minutes for tens of thousands).
TSNE_MAX_POINTS = 2_000


@dataclass
class Features:
    """One source's features: the train split (the references) and each query set (``clean``, ``nuisance``)."""

    train: np.ndarray
    queries: dict[str, np.ndarray]
    note: dict = field(default_factory=dict)  # how the features were made, for summary.json


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
    query_images = query_sets(run, e)
    with single_threaded_numerics(), concurrent.futures.ThreadPoolExecutor(1, "tfcontrast-plots") as background:
        features = {"trained": network_features(net, run, query_images, e.batch_size)}
        idx = build_index(config, features["trained"].train, run.y_train, wd)
        # The plots (a t-SNE, matplotlib) run beside the rest of the evaluation.
        trained = dict(index=idx, train=features["trained"].train, test=features["trained"].queries["clean"])
        grid = grid_neighbours(run, trained, e)
        map_method = embedding_map_method(e.map_method, len(trained["test"]))
        drawn = background.submit(single_threaded(write_plots), config, wd, state, run, trained, grid, map_method)
        features["random_encoder"] = network_features(baseline_network(config, run), run, query_images, e.batch_size)
        features["raw_pixels"] = pixel_features(run.x_train, query_images)
        results = {name: score_source(config, f, run, idx if name == "trained" else None) for name, f in features.items()}
        idx.save(wd.index, metadata=indexes.RUN_INDEX_METADATA)
        evaluation = {
            **results["trained"]["clean"],
            "collapse": collapse_indicators(trained["test"]),
            "baselines": {
                "random_encoder": {
                    **results["random_encoder"]["clean"],
                    "collapse": collapse_indicators(features["random_encoder"].queries["clean"]),
                },
                "raw_pixels": results["raw_pixels"]["clean"],
            },
            "nuisance": (
                {
                    "max_shift": e.nuisance_max_shift,
                    "max_degrees": e.nuisance_max_degrees,
                    "seed": e.nuisance_seed,
                    **{name: r["nuisance"] for name, r in results.items()},
                }
                if "nuisance" in query_images
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
                "raw_pixels": features["raw_pixels"].note,
                "embedding_map": {"method": map_method, "tsne_max_points": TSNE_MAX_POINTS},
                **(
                    {"milvus": {"uri": idx.uri, "collection": idx.collection}}
                    if config.index.backend == "milvus"
                    else {}
                ),
            },
        }
        contract = inputs.input_contract(run)
        workdir_lib.write_json(wd.contract, contract.to_dict())
        export.export_saved_model(net, wd.export, index=idx, k=config.index.lookup_k, contract=contract)
        artefacts = drawn.result()
    indexes.close(idx)  # a Milvus Lite file is free for the next process (e.g. `tfcontrast lookup`)
    evaluation["wall_time_s"] = round(time.perf_counter() - started, 3)
    summary = report.summary(
        config, wd, state, run, evaluation, plots=artefacts, feature_dim=int(trained["test"].shape[1])
    )
    workdir_lib.write_json(wd.summary, summary)
    out(report.headline(summary))
    out(f"wrote {wd.summary}")
    return summary


# ------------------------------------------------------------------ features


def query_sets(run: inputs.RunData, e) -> dict[str, np.ndarray]:
    """The test queries: ``clean``, and for images ``nuisance`` (the seeded shifts and rotations)."""
    queries = {"clean": run.x_test}
    if run.is_images:
        queries["nuisance"] = augment.nuisance_transform(
            run.x_test, e.nuisance_max_shift, e.nuisance_max_degrees, e.nuisance_seed
        )
    return queries


def network_features(network, run: inputs.RunData, query_images: Mapping[str, np.ndarray], batch_size: int) -> Features:
    """``network``'s embeddings of the train split and of every query set, through one compiled graph."""
    graph = probe.inference_graph(network, run.input_shape)

    def embed(x):
        return probe.embed(graph, x, batch_size=batch_size)

    return Features(embed(run.x_train), {name: embed(x) for name, x in query_images.items()})


def baseline_network(config, run: inputs.RunData):
    """The embedding network at its initial random weights: exactly where training started (``config.seed``)."""
    model = components.initial_model(config, run.input_shape, run.num_classes)
    return components.embedder(model, config.method)


def pixel_features(x_train: np.ndarray, query_images: Mapping[str, np.ndarray], dims: int = RAW_PIXEL_DIMS) -> Features:
    """The raw-pixel baseline: flattened inputs, projected to their top ``dims`` singular directions if wider.

    The projection (``V``: the top right singular vectors of the train pixels,
    from a randomized SVD of at most ``RAW_PIXEL_FIT_ROWS`` train rows, seed 0;
    no centring) keeps inner products and distances of the pixels up to the
    discarded energy, so k-NN and retrieval on it are those of the pixels, and
    the linear probe reads ``dims`` features instead of thousands (issue 12:
    the 3,072-wide probe of 32x32x3 images cost minutes). ``note`` records it.
    """
    flat_train = x_train.reshape(len(x_train), -1).astype(np.float32, copy=False)
    flat_queries = {name: x.reshape(len(x), -1).astype(np.float32, copy=False) for name, x in query_images.items()}
    width = flat_train.shape[1]
    if width <= dims:
        return Features(flat_train, flat_queries, {"pixels": width, "dim": width, "projection": None})
    basis = pixel_basis(flat_train, dims)
    note = {
        "pixels": width,
        "dim": dims,
        "projection": f"top {dims} right singular vectors of the train pixels (randomized SVD of at most "
        f"{RAW_PIXEL_FIT_ROWS} train rows, seed 0; no centring)",
    }
    return Features(flat_train @ basis, {name: x @ basis for name, x in flat_queries.items()}, note)


def pixel_basis(flat_train: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    """``[width, dims]`` orthonormal columns: the top right singular vectors of (a subset of) ``flat_train``."""
    from sklearn.utils.extmath import randomized_svd

    rows = flat_train
    if len(rows) > RAW_PIXEL_FIT_ROWS:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), RAW_PIXEL_FIT_ROWS, replace=False))
        rows = rows[pick]
    _, _, vt = randomized_svd(rows.astype(np.float64), dims, random_state=seed)
    return vt.T.astype(np.float32)


# -------------------------------------------------------------------- scores


def score_source(config, features: Features, run: inputs.RunData, idx=None) -> dict[str, dict]:
    """The scores of every query set of one source: one index, one probe fit, scored on each set."""
    idx = idx if idx is not None else build_index(config, features.train, run.y_train)
    fitted = probe.fit_linear_probe(features.train, run.y_train)
    return {name: scores(config, idx, fitted, q, run.y_test) for name, q in features.queries.items()}


def load_run(wd: workdir_lib.Workdir):
    """``(config, checkpoint state)`` of a finished run in ``wd``.

    Raises:
        ValueError: no config, an unfinished run, or no saved embedding network.
    """
    if not os.path.exists(wd.config):
        raise ValueError(f"{wd.root} holds no run (no config.json): train one with `tfcontrast train`.")
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


def scores(config, idx, fitted_probe: probe.LinearProbe, queries, query_y) -> dict:
    """k-NN accuracy, probe accuracy, recall@k, precision@k and mAP@R of ``queries`` against ``idx``."""
    e = config.eval
    out = {
        "knn_accuracy": index_lib.knn_accuracy(idx, queries, query_y, k=e.knn_k),
        "probe_accuracy": fitted_probe.accuracy(queries, query_y),
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


def write_plots(config, wd, state: Mapping, run: inputs.RunData, trained: Mapping, grid=None,
                map_method: str | None = None) -> dict:
    """Writes the PNGs of ``plots/``; returns their paths relative to the workdir.

    ``grid``: the neighbour grid's ``(query rows, search result)`` (:func:`grid_neighbours`);
    ``map_method``: the 2-D map's method (default :func:`embedding_map_method`).
    """
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
    map_method = map_method or embedding_map_method(e.map_method, len(trained["test"]))
    paths["embedding_map"] = plots.embedding_map(
        trained["test"], run.y_test, os.path.join(wd.plots, "embedding_map.png"), method=map_method,
        title=f"{config.method}: test embeddings ({map_method.upper()})",
    )
    paths["spectrum"] = plots.singular_value_spectrum(trained["test"], os.path.join(wd.plots, "spectrum.png"))
    grid = grid if grid is not None else grid_neighbours(run, trained, e)
    if grid is not None:
        rows, found = grid
        paths["neighbors"] = plots.neighbor_grid(
            run.x_test[rows], run.y_test[rows], run.x_train[found.ids], found.labels,
            os.path.join(wd.plots, "neighbors.png"),
            title=f"{config.method}: the {e.grid_neighbors} nearest training images of {len(rows)} test images "
            f"({config.index.metric})",
            class_names=run.class_names,
        )
    return {k: os.path.relpath(v, wd.root) for k, v in paths.items()}


def grid_neighbours(run: inputs.RunData, trained: Mapping, e):
    """``(test rows, their search result)`` of the neighbour grid, or ``None`` when the data are not images."""
    if not run.is_images:
        return None
    rows = grid_queries(run.y_test, e.grid_queries)
    return rows, trained["index"].search(trained["test"][rows], e.grid_neighbors)


def embedding_map_method(requested: str, points: int) -> str:
    """``requested`` (``eval.map_method``), except t-SNE above ``TSNE_MAX_POINTS`` points: PCA then."""
    return "pca" if requested == "tsne" and points > TSNE_MAX_POINTS else requested


@contextlib.contextmanager
def single_threaded_numerics():
    """NumPy/SciPy BLAS and OpenMP (scikit-learn's t-SNE) on one thread in this thread, for the block.

    The evaluation's linear algebra is small (a probe on 1,437 x 128
    features); with two threads on a machine whose other processes keep
    the cores busy, BLAS and OpenMP threads spin-wait for each other: one
    probe fit took 3.4 s instead of 0.12 s, a t-SNE of 360 points 50 s
    instead of 4 s (2 cores, loaded). One thread per task also lets the
    plots run beside the scores on the second core. TensorFlow's own thread
    pools are not affected.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def single_threaded(fn):
    """``fn`` run under :func:`single_threaded_numerics` (OpenMP's thread count is per calling thread)."""

    def run(*args, **kwargs):
        with single_threaded_numerics():
            return fn(*args, **kwargs)

    return run


def grid_queries(labels: np.ndarray, count: int) -> np.ndarray:
    """``count`` test rows for the neighbour grid: the first of each class in turn, then the next, ..."""
    order = []
    by_class = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels)]
    while len(order) < min(count, len(labels)):
        for rows in by_class:
            if rows and len(order) < count:
                order.append(rows.pop(0))
    return np.asarray(order, dtype=np.int64)
