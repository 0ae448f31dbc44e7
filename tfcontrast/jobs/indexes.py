"""The command's search indexes: the run's own index (faiss or Milvus) and ``tfcontrast index``.

**The run's index** (``<workdir>/index/``) holds the embeddings of the
training split, with their labels; an entry's id is its row in the training
split. ``index.backend`` chooses where it lives:

* ``exact`` / ``hnsw`` / ``ivf``: a faiss :class:`~tfcontrast.index.Index`
  saved in the run folder;
* ``milvus``: a :class:`~tfcontrast.index.MilvusIndex` collection at
  ``index.uri`` (a server ``http://host:19530``, or a Milvus Lite file; default
  ``<workdir>/milvus.db``) named ``index.collection`` (default: after the run
  folder); ``index/`` then records how to reconnect, never the token. The
  token is read from the environment variable ``MILVUS_TOKEN`` (never from the
  config, the command line or the run folder).

The evaluation's baselines (random encoder, raw pixels) are scored in faiss
indexes in memory whatever the backend: only the run's index goes to Milvus.

**``tfcontrast index``** (:func:`index_images`) embeds a folder or glob of
image files with the run's trained network, streaming, into a faiss folder or
a Milvus collection: a thin layer over
:func:`tfcontrast.index.build_from_dataset` with
:func:`~tfcontrast.index.image_files` / :func:`~tfcontrast.index.decode_images`
(progress with images/s and ETA on stderr, resumable after an interruption,
``--shard i/n`` for several processes writing one Milvus collection). An
entry's id is the file's position in the sorted list of paths; its payload is
the path, which ``tfcontrast lookup --index`` prints.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from typing import Callable

import numpy as np

from tfcontrast import index as index_lib
from tfcontrast.index.search_index import SearchIndex
from tfcontrast.jobs import workdir as workdir_lib

TOKEN_VARIABLE = "MILVUS_TOKEN"
RUN_INDEX_METADATA = {"entries": "training split", "ids": "row numbers of the training split"}


def milvus_token() -> str | None:
    """The Milvus credentials from the environment (``MILVUS_TOKEN``), or ``None``."""
    return os.environ.get(TOKEN_VARIABLE) or None


def is_milvus_uri(text: str) -> bool:
    """A Milvus server URI (``scheme://...``) or a Milvus Lite file (``*.db``), as opposed to a folder."""
    return "://" in text or text.rstrip("/").endswith(".db")


def collection_name(name: str, unique: str) -> str:
    """``tfcontrast_<name cleaned to letters, digits, underscores>_<8 hex digits of a hash of unique>``.

    ``unique`` (an absolute path) keeps two runs or folders of the same name apart.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[:48] or "run"
    digest = hashlib.sha1(unique.encode("utf-8")).hexdigest()[:8]
    return f"tfcontrast_{cleaned}_{digest}"


def run_index(config, wd: workdir_lib.Workdir, embeddings: np.ndarray, labels: np.ndarray) -> SearchIndex:
    """The run's index over the training ``embeddings`` (ids = rows), in the configured backend (module docstring).

    Raises:
        ValueError: a Milvus collection that holds other entries than this run's, or of
            another dimension or metric; MilvusConnectionError: an unreachable server.
    """
    if config.index.backend != "milvus":
        return memory_index(config, embeddings, labels)
    idx = index_lib.MilvusIndex(
        config.index.uri or wd.milvus_lite,
        collection=config.index.collection or collection_name(os.path.basename(wd.root), wd.root),
        metric=config.index.metric,
        token=milvus_token(),
        dim=int(embeddings.shape[1]),
    )
    n = len(embeddings)
    existing = len(idx)
    if existing and (existing != n or not np.array_equal(idx.entries()[0], np.arange(n))):
        idx.close()
        raise ValueError(
            f"Milvus collection {idx.collection!r} at {idx.uri} holds {existing} entries that are not this run's "
            f"{n} training embeddings: train into a new --workdir with another --config.index.collection, or drop "
            "that collection."
        )
    idx.add(embeddings, labels=labels, ids=np.arange(n))  # an upsert: evaluating again rewrites the same rows
    return idx


def empty_index(config) -> index_lib.Index:
    """An empty faiss index of the run's ``index.metric`` and ``index.backend`` (exact when the backend is milvus)."""
    backend = "exact" if config.index.backend == "milvus" else config.index.backend
    return index_lib.Index(metric=config.index.metric, backend=backend)


def memory_index(config, embeddings: np.ndarray, labels: np.ndarray) -> index_lib.Index:
    """A faiss index (:func:`empty_index`) of ``embeddings`` with ``labels``; ids are rows."""
    idx = empty_index(config)
    idx.add(embeddings, labels=labels, ids=np.arange(len(embeddings)))
    return idx


def load(path: str) -> SearchIndex:
    """A saved index of any kind (a Milvus one reconnects with ``MILVUS_TOKEN``).

    Raises:
        ValueError: no readable index at ``path`` (the message names it).
    """
    if not os.path.isdir(path):
        raise ValueError(f"{path} holds no index: run `tfcontrast evaluate` (the run's own) or `tfcontrast index` first.")
    return index_lib.load(path, token=milvus_token())


def close(idx) -> None:
    """Closes an index that holds a connection (Milvus), so that another process may open its Lite file."""
    closer = getattr(idx, "close", None)
    if callable(closer):
        closer()


# ---------------------------------------------------------------- tfcontrast index


def index_images(
    workdir: str,
    images: str,
    to: str,
    *,
    collection: str | None = None,
    shard: tuple[int, int] | None = None,
    batch_size: int = 256,
    restart: bool = False,
    out: Callable[[str], None] = print,
    progress=True,
) -> int:
    """Embeds the image files ``images`` (a folder or glob) with the run's network into ``to`` (module docstring).

    Args:
        workdir: a trained run (its ``model/embedder.keras`` and input contract).
        images: a folder (searched recursively) or a glob of image files.
        to: a folder for a faiss index (``index.metric`` / ``index.backend`` of the
            run, exact for a Milvus run), or a Milvus URI / Lite ``.db`` file.
        collection: the Milvus collection; default derived from the run and the images.
        shard: ``(i, n)``: embed the files at positions ``i, i + n, ...`` (Milvus only).
        batch_size: images embedded and written together.
        restart: start over instead of resuming the checkpoint at the destination.
        out: where the closing lines go (the progress goes to stderr).
        progress: passed to :func:`~tfcontrast.index.build_from_dataset`.

    Returns:
        The number of entries in the index written (its Milvus connection is closed before returning).

    Raises:
        ValueError: no finished run, no images, a model that does not read images in
            [0, 1], ``to`` naming the run's own index, ``shard`` with a faiss folder, a
            checkpoint made with other arguments, ...
    """
    from tfcontrast.jobs.evaluation import load_run

    wd = workdir_lib.Workdir(workdir)
    config, _ = load_run(wd)
    net = workdir_lib.load_embedder(wd.embedder)
    shape = tuple(net.input_shape[1:])
    if len(shape) != 3 or shape[-1] not in (1, 3) or None in shape:
        raise ValueError(f"this run's model reads inputs of shape {shape}, not images: `tfcontrast index` embeds image files.")
    contract = read_contract(wd)
    if contract is not None and not (contract.range[0] <= 0.0 and contract.range[1] >= 1.0):
        raise ValueError(
            f"this run's model was trained on {contract.describe()}; `tfcontrast index` reads image files as "
            "pixels / 255 in [0, 1], which it was not trained on."
        )
    files = index_lib.image_files(images)
    if is_milvus_uri(to):
        source = os.path.abspath(images)
        name = collection or collection_name(
            f"{os.path.basename(wd.root)}_{os.path.basename(os.path.normpath(images.split('*')[0]))}", f"{wd.root}|{source}"
        )
        idx = index_lib.MilvusIndex(to, collection=name, metric=config.index.metric, token=milvus_token())
        suffix = f"-shard-{shard[0]}-of-{shard[1]}" if shard and shard[1] > 1 else ""
        output = wd.path("indexes", f"{name}{suffix}")
        where = f"Milvus collection {name!r} at {idx.uri}"
    else:
        output = os.path.abspath(to)
        if output == wd.index:
            raise ValueError(
                f"--to {to} is the run's own index of its training split (tfcontrast evaluate rewrites it): "
                "choose another folder, e.g. " + wd.path("images_index")
            )
        if shard and shard[1] > 1:
            raise ValueError(
                "--shard needs a Milvus --to: several processes write one Milvus collection, while a faiss folder "
                "has one writer."
            )
        idx, where = empty_index(config), output
    built = index_lib.build_from_dataset(
        net, files, idx, batch_size, preprocess=index_lib.decode_images(shape[:2], shape[2]), output=output,
        resume=not restart, shard=shard, progress=progress, print_seconds=1.0 if sys.stderr.isatty() else 10.0,
    )
    try:
        entries = len(built)
    finally:
        close(built)
    out(f"indexed {entries:,} images of {images} into {where}")
    out(f"look up with: tfcontrast lookup --workdir {wd.root} --index {output} --query IMAGE")
    return entries


def read_contract(wd: workdir_lib.Workdir):
    """The run's input contract (``input_contract.json``), or ``None`` for a run trained before it was recorded."""
    from tfcontrast.contract import InputContract

    if not os.path.isfile(wd.contract):
        return None
    return InputContract.from_dict(workdir_lib.read_json(wd.contract))
