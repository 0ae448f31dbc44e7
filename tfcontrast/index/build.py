"""``build_from_dataset``: embed a large collection into any index, streaming, resumable, sharded.

The dataset streams through ``tf.data`` in batches: a batch of images is
embedded, written to the index with :meth:`SearchIndex.add` and dropped, so
memory holds the pipeline's few prefetched batches and the index, never the
collection (peak RSS measured in ``benchmarks/RESULTS.md``).

**Elements.** Each element of ``dataset`` (unbatched) is an image tensor, or a
dict with ``"image"`` and optionally ``"id"`` (int: the entry's id),
``"label"`` (int) and ``"data"`` (the payload; a string tensor becomes a
``str``, e.g. the file path). ``preprocess``, if given, is mapped over the
elements *after* sharding and skipping, so expensive decoding happens only
for what this process embeds (see :mod:`tfcontrast.index.images`).

**Ids.** An element's id is its ``"id"`` if it has one, else its position in
``dataset`` (0, 1, 2, ...): deterministic, and globally unique across shards.

**Shards.** ``shard=(i, n)`` makes this process take the elements at
positions ``i, i + n, i + 2n, ...`` (``tf.data.Dataset.shard`` on the
enumerated stream). Run ``n`` processes (or the workers of a
``MultiWorkerMirroredStrategy``: ``shard=(task_id, num_workers)``) with the
same dataset, each writing into a shared :class:`~tfcontrast.index.MilvusIndex`
(or each into its own ``output``); together they index every element once,
with the same ids as a single process.

**Checkpoints and resume.** With ``output``, the index is saved there (with
:meth:`SearchIndex.save`) every ``checkpoint_seconds`` and at the end. The
build's progress (batches and rows done, batch size, shard, the dataset's
size) is stored in the same atomic save, in the manifest's ``metadata``
(covered by its checksum), so the checkpoint and the entries it describes can
never disagree; a copy goes to the small file ``<output>.progress.json``
beside it (written atomically) for anyone watching. Calling
``build_from_dataset`` again with the same arguments after an interruption
(Ctrl-C, ``kill -9``, a lost machine) continues after the last checkpoint:
an in-process index (the faiss :class:`~tfcontrast.index.Index`) is restored
from ``output``, a :class:`~tfcontrast.index.MilvusIndex` continues in its
collection (rows written after the checkpoint are upserted again, which is
idempotent). The result is the index an uninterrupted run builds.
A finished build returns at once. ``resume=False`` starts over.

**Progress.** ``progress`` receives a :class:`BuildProgress` after every
batch (images/s, ETA when the dataset's size is known); the default prints
a line to stderr at most once per ``print_seconds``.

Example:
    >>> from tfcontrast.index import Index, build_from_dataset, decode_images, image_files  # doctest: +SKIP
    >>> idx = build_from_dataset(encoder, image_files("photos/"), Index("cosine"), batch_size=256,
    ...                          preprocess=decode_images((32, 32)), output="runs/demo/index")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from tfcontrast.index import persistence
from tfcontrast.index.search_index import SearchIndex

PROGRESS_FORMAT = "tfcontrast.build"
METADATA_KEY = "build"


@dataclasses.dataclass(frozen=True)
class BuildProgress:
    """Where a build stands, passed to the ``progress`` callback after every batch.

    Attributes:
        rows_done: elements of this shard embedded and written so far (all runs).
        batches_done: batches of this shard written so far (all runs).
        total_rows: this shard's elements, ``None`` when the dataset's size is unknown.
        rows_per_second: this run's rate (images/s).
        elapsed_seconds: this run's time so far.
        eta_seconds: time left at this rate, ``None`` when unknown.
        resumed_from: ``rows_done`` at the start of this run (0 for a fresh build).
        finished: the last batch is written (and checkpointed, with ``output``).
    """

    rows_done: int
    batches_done: int
    total_rows: int | None
    rows_per_second: float
    elapsed_seconds: float
    eta_seconds: float | None
    resumed_from: int
    finished: bool


class ProgressPrinter:
    """Prints a :class:`BuildProgress` line to ``stream`` at most every ``seconds`` (and the last one).

    On a terminal the line is redrawn in place; otherwise lines are appended.
    """

    def __init__(self, stream=None, seconds: float = 1.0):
        self.stream = stream if stream is not None else sys.stderr
        self.seconds = float(seconds)
        self._last = -math.inf

    def __call__(self, p: BuildProgress) -> None:
        now = time.monotonic()
        if not p.finished and now - self._last < self.seconds:
            return
        self._last = now
        total = f"/{p.total_rows:,}" if p.total_rows is not None else ""
        eta = f", ETA {_duration(p.eta_seconds)}" if p.eta_seconds is not None and not p.finished else ""
        line = f"indexed {p.rows_done:,}{total} images, {p.rows_per_second:,.0f} images/s{eta}"
        if p.finished:
            line += f", done in {_duration(p.elapsed_seconds)}"
        tty = getattr(self.stream, "isatty", lambda: False)()
        end = "\n" if p.finished or not tty else ""
        self.stream.write(("\r" if tty else "") + line + end)
        self.stream.flush()


def build_from_dataset(
    embedder,
    dataset: tf.data.Dataset,
    index: SearchIndex,
    batch_size: int = 256,
    *,
    preprocess: Callable[[Any], Any] | None = None,
    output: str | os.PathLike | None = None,
    resume: bool = True,
    shard: tuple[int, int] | None = None,
    checkpoint_seconds: float = 60.0,
    progress: bool | Callable[[BuildProgress], None] = True,
    print_seconds: float = 10.0,
) -> SearchIndex:
    """Embeds ``dataset`` in batches into ``index`` (module docstring); returns the index holding the entries.

    Args:
        embedder: a Keras model/layer (called with ``training=False`` in a
            ``tf.function``) or any callable mapping a batch to ``[batch, dim]``.
        dataset: unbatched elements: an image tensor or a dict with ``"image"``
            and optional ``"id"``, ``"label"``, ``"data"``.
        index: any :class:`~tfcontrast.index.SearchIndex`, usually empty.
        batch_size: elements embedded and written together.
        preprocess: mapped over the elements after sharding and skipping
            (e.g. :func:`~tfcontrast.index.images.decode_images`).
        output: where the index is saved at checkpoints and at the end; needed to resume.
        resume: continue from the checkpoint in ``output`` if there is one.
        shard: ``(i, n)``: this process embeds the elements at positions ``i mod n``.
        checkpoint_seconds: seconds of work between checkpoints (0: after every batch).
        progress: ``True`` prints to stderr, ``False`` is silent, a callable
            receives a :class:`BuildProgress` after every batch.
        print_seconds: the printer's interval when ``progress=True``.

    Returns:
        ``index``, or, when resuming an in-process index, the index restored
        from ``output`` and completed.

    Raises:
        ValueError: bad arguments; a checkpoint made with another batch size,
            shard or dataset size; ``output`` holding an index that is not a
            checkpoint of a build (with ``resume=True``); or resuming into a
            non-empty in-process index.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"`dataset` must be a tf.data.Dataset of unbatched elements, got {type(dataset).__name__}.")
    if not all(callable(getattr(index, m, None)) for m in ("add", "save", "__len__")):
        raise TypeError(f"`index` must be a SearchIndex (Index, MilvusIndex), got {type(index).__name__}.")
    batch_size = _positive_int(batch_size, "batch_size")
    shard_index, num_shards = _check_shard(shard)
    if isinstance(checkpoint_seconds, bool) or not isinstance(checkpoint_seconds, (int, float)) or checkpoint_seconds < 0:
        raise ValueError(f"`checkpoint_seconds` must be a number >= 0, got {checkpoint_seconds!r}.")
    report = _reporter(progress, print_seconds)
    output = None if output is None else os.path.abspath(os.fspath(output))

    size = int(dataset.cardinality())
    total = None if size < 0 else max(0, (size - shard_index + num_shards - 1) // num_shards)
    plan = {"format": PROGRESS_FORMAT, "batch_size": batch_size, "shard": [shard_index, num_shards], "dataset_size": None if size < 0 else size}
    state = dict(plan, rows_done=0, batches_done=0, total_rows=total, finished=False)
    if output is not None and resume:
        checkpoint = _read_checkpoint(output)
        if checkpoint is not None:
            index, state = _resume(index, output, checkpoint, plan)
    started, resumed_from = time.monotonic(), state["rows_done"]

    def snapshot(finished: bool) -> BuildProgress:
        elapsed = time.monotonic() - started
        rate = (state["rows_done"] - resumed_from) / elapsed if elapsed > 0 else 0.0
        left = None if total is None else max(0, total - state["rows_done"])
        eta = None if left is None or rate <= 0 else left / rate
        return BuildProgress(
            state["rows_done"], state["batches_done"], total, rate, elapsed, eta, resumed_from, finished
        )

    if state["finished"]:
        report(snapshot(True))
        return index

    embed = _embedding_function(embedder)
    stream = dataset.enumerate()
    if num_shards > 1:
        stream = stream.shard(num_shards, shard_index)
    if state["rows_done"]:
        stream = stream.skip(state["rows_done"])
    if preprocess is not None:
        stream = stream.map(lambda pos, x: (pos, preprocess(x)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    stream = stream.batch(batch_size).prefetch(2)

    last_checkpoint = time.monotonic()
    for positions, element in stream:
        images, ids, labels, data = _unpack(element, positions)
        embeddings = np.asarray(embed(images))
        if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
            raise ValueError(
                f"`embedder` must map a batch of {len(ids)} to [{len(ids)}, dim] embeddings, got shape {embeddings.shape}."
            )
        index.add(embeddings, labels=labels, ids=ids, data=data)
        state["rows_done"] += len(ids)
        state["batches_done"] += 1
        if output is not None and time.monotonic() - last_checkpoint >= checkpoint_seconds:
            _checkpoint(index, output, state)
            last_checkpoint = time.monotonic()
        report(snapshot(False))
    state["finished"] = True
    if output is not None:
        _checkpoint(index, output, state)
    report(snapshot(True))
    return index


# ----------------------------------------------------------------- pieces


def progress_path(output: str) -> str:
    """The progress file beside ``output``: ``<output>.progress.json``."""
    return output.rstrip(os.sep) + ".progress.json"


def _checkpoint(index, output: str, state: dict) -> None:
    """Saves the index with the progress in its manifest, then mirrors the progress beside it."""
    index.save(output, metadata={METADATA_KEY: dict(state)})
    path = progress_path(output)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(state, output=output, updated=time.time()), f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_checkpoint(output: str) -> dict | None:
    """The build state saved in ``output``'s manifest, ``None`` when nothing is there yet.

    Raises:
        ValueError: ``output`` holds an index that is not a build checkpoint.
    """
    if not os.path.exists(output) or (os.path.isdir(output) and not os.listdir(output)):
        return None
    try:
        manifest = persistence.read_manifest(persistence.resolve(output))
    except persistence.IndexFileError as err:
        raise ValueError(f"`output` {output!r} holds no readable build checkpoint: {err}") from None
    state = manifest.get("metadata", {}).get(METADATA_KEY)
    if not isinstance(state, dict) or state.get("format") != PROGRESS_FORMAT:
        raise ValueError(
            f"`output` {output!r} holds an index that build_from_dataset did not write; choose another `output`, "
            "or pass resume=False to replace it."
        )
    return dict(state, kind=manifest.get("kind"), manifest=manifest)


def _resume(index, output: str, checkpoint: dict, plan: dict):
    for key in ("batch_size", "shard", "dataset_size"):
        if checkpoint.get(key) != plan[key]:
            raise ValueError(
                f"The checkpoint in {output!r} was made with {key}={checkpoint.get(key)!r}, this call has "
                f"{plan[key]!r}: resume with the same arguments, or pass resume=False to start over."
            )
    if index.persistent:
        saved = checkpoint["manifest"]
        mine = (getattr(index, "kind", None), getattr(index, "uri", None), getattr(index, "collection", None))
        if (saved.get("kind"), saved.get("uri"), saved.get("collection")) != mine:
            raise ValueError(
                f"The checkpoint in {output!r} was written for {saved.get('kind')} collection "
                f"{saved.get('collection')!r} at {saved.get('uri')!r}, not for this index ({index!r})."
            )
    else:
        if len(index):
            raise ValueError(
                f"Resuming from {output!r} restores the index saved there; pass an empty index "
                f"(this one holds {len(index)} entries), or resume=False to start over."
            )
        restored = type(index).load(output)
        if (restored.metric, getattr(restored, "backend", None)) != (index.metric, getattr(index, "backend", None)):
            raise ValueError(
                f"The checkpoint in {output!r} holds {restored!r}, but the index passed is {index!r}: pass one "
                "like the checkpoint's, or resume=False to start over."
            )
        index = restored
    state = {key: checkpoint[key] for key in ("format", "batch_size", "shard", "dataset_size", "rows_done", "batches_done", "total_rows", "finished")}
    return index, state


def _embedding_function(embedder) -> Callable:
    if isinstance(embedder, keras.layers.Layer):
        return tf.function(lambda x: embedder(x, training=False), reduce_retracing=True)
    if not callable(embedder):
        raise TypeError(f"`embedder` must be a Keras model or a callable, got {type(embedder).__name__}.")
    return embedder


def _unpack(element, positions) -> tuple[Any, np.ndarray, np.ndarray | None, list | None]:
    if not isinstance(element, dict):
        return element, positions.numpy().astype(np.int64), None, None
    if "image" not in element:
        raise ValueError(
            f"`dataset` elements (after `preprocess`) must be an image tensor or a dict with 'image'; got keys {sorted(element)}."
        )
    ids = element["id"].numpy() if "id" in element else positions.numpy()
    labels = element["label"].numpy() if "label" in element else None
    data = None
    if "data" in element:
        data = [_payload(v) for v in element["data"].numpy().tolist()]
    return element["image"], np.asarray(ids).astype(np.int64), labels, data


def _payload(value):
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return int(value)


def _check_shard(shard) -> tuple[int, int]:
    if shard is None:
        return 0, 1
    try:
        i, n = shard
    except (TypeError, ValueError):
        raise ValueError(f"`shard` must be (index, count), got {shard!r}.") from None
    n = _positive_int(n, "shard count")
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
        raise ValueError(f"`shard` index must be an integer in [0, {n}), got {i!r}.")
    return int(i), n


def _reporter(progress, seconds: float) -> Callable[[BuildProgress], None]:
    if progress is True:
        return ProgressPrinter(seconds=seconds)
    if progress is False or progress is None:
        return lambda p: None
    if not callable(progress):
        raise ValueError(f"`progress` must be True, False or a callable, got {progress!r}.")
    return progress


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
