"""``Index``: tfcontrast's faiss index: ids, labels, payloads, a lock and safe persistence over any faiss backend.

An :class:`Index` is a :class:`~tfcontrast.index.SearchIndex` for one machine.
It owns the bookkeeping that every faiss backend shares and delegates vector
storage and search to one backend of :mod:`tfcontrast.index.backends`
(``"exact"`` brute force, ``"hnsw"`` graph, ``"ivf"`` inverted file; each
module documents its parameters, costs and removal strategy).

**Distances** follow the metric table of :mod:`tfcontrast.index.metrics`
(smaller is closer): cosine = 1 - cos, inner_product = -<a, b>, euclidean =
||a - b||; the same for every backend and for
:class:`~tfcontrast.index.NearestNeighbors` on the same pairs (up to float32
round-off).

**Ids, labels and data.** Every entry has a unique integer id >= 0 (by default
consecutive from 0, continuing after the largest id ever added), an integer
label (-1 = unlabelled) and an optional payload, ``None``, a byte string or a
JSON-serialisable value. Backends store entries by slot (insertion
position); searches map slots back to ids, labels and payloads with
vectorised lookups.

**Results.** :meth:`Index.search` returns a
:class:`~tfcontrast.index.SearchResult` of ``[q, min(k, len(index))]`` arrays:
``k`` is clamped to the number of entries (a huge ``k`` is cheap and means
"all"), and an empty index gives ``[q, 0]`` arrays. Within those columns,
the approximate backends may return fewer neighbours than asked; the missing
ones are padding (id -1, distance ``inf``, label -1). ``exact`` never pads.

**Input range.** Vectors and queries must be finite with ``||x|| <= 6.5e18``
(:data:`tfcontrast.index.inputs.MAX_NORM`), so that no float32 distance
overflows; anything else is refused with a ``ValueError`` naming the argument.

**Threads.** Any number of threads may search at once; ``add``, ``remove``
and ``save`` take an exclusive lock (see :mod:`tfcontrast.index.locking`), so
a search sees the index either before or after a write, never half of it.
faiss parallelises each call with OpenMP over all cores; this module leaves
that process-wide setting alone. Two cases call for changing it: when many
threads search at once, ``faiss.omp_set_num_threads(1)`` avoids each search
fanning out over cores the other threads already use; on a machine shared
with other busy processes, OpenMP's spin-waiting at barriers can make exact
search several times slower (we measured 0.6 s -> 3 s per 1,000 queries over
100,000 vectors), which ``OMP_WAIT_POLICY=PASSIVE`` in the environment
(before faiss is imported) avoids.

**Persistence.** :meth:`Index.save` writes a directory atomically, replacing
only a new or empty path or an earlier saved index; :meth:`Index.load`
verifies the manifest's own checksum and every file's size and SHA-256 before
parsing (:mod:`tfcontrast.index.persistence`).

Example:
    >>> import numpy as np
    >>> idx = Index(metric="euclidean")
    >>> idx.add(np.array([[0.0, 0.0], [3.0, 4.0]]), labels=[7, 8]).tolist()
    [0, 1]
    >>> res = idx.search([[3.0, 0.0]], k=3)   # clamped to the 2 entries
    >>> res.ids.tolist(), res.distances.tolist(), res.labels.tolist()
    ([[0, 1]], [[3.0, 4.0]], [[7, 8]])
"""

from __future__ import annotations

import os
import threading
from typing import Any, Sequence

import faiss
import numpy as np

from tfcontrast.index import inputs, persistence
from tfcontrast.index.backends import get_backend
from tfcontrast.index.locking import ReadWriteLock
from tfcontrast.index.metrics import METRIC_NAMES, get_metric
from tfcontrast.index.search_index import SearchResult, empty_result, register_index

METRICS = METRIC_NAMES
FAISS_FILE = "index.faiss"


@register_index("faiss")
class Index:
    """A faiss index of embeddings with ids, labels and payloads (see the module docstring).

    Args:
        metric: ``"cosine"`` (default), ``"inner_product"`` or ``"euclidean"``.
        backend: ``"exact"`` (default), ``"hnsw"``, ``"ivf"``, or any name in
            :data:`tfcontrast.index.backends.BACKENDS`.
        dim: the embedding size; inferred from the first ``add`` when ``None``.
        **params: backend parameters (``M``, ``ef_construction``, ``ef_search``
            for hnsw; ``nlist``, ``nprobe`` for ivf). Unknown names raise.

    Raises:
        ValueError: unknown metric, backend or parameter, or a bad value.
    """

    def __init__(self, metric: str = "cosine", backend: str = "exact", *, dim: int | None = None, **params: int):
        self._metric = get_metric(metric)
        self._backend_cls = get_backend(backend)
        self._params = self._backend_cls.check_params(params)
        self._dim = None if dim is None else inputs.check_k(dim, "dim")
        self._lock = ReadWriteLock()
        self._save_lock = threading.Lock()
        self._store = None  # the backend, created by the first add
        self._slot_ids = np.empty(0, np.int64)
        self._slot_labels = np.empty(0, np.int64)
        self._slot_data: list[Any] | None = None
        self._alive = np.empty(0, bool)
        self._n_alive = 0
        self._sorted_ids = np.empty(0, np.int64)  # live ids, sorted
        self._sorted_slots = np.empty(0, np.int64)  # their slots
        self._next_id = 0
        self._metadata: dict = {}

    # ----------------------------------------------------------- properties

    @property
    def metric(self) -> str:
        return self._metric.name

    @property
    def backend(self) -> str:
        return self._backend_cls.name

    @property
    def params(self) -> dict:
        """The backend parameters in effect (defaults filled in)."""
        return dict(self._params)

    @property
    def dim(self) -> int | None:
        """Embedding size, ``None`` until the first ``add`` (unless given)."""
        return self._dim

    @property
    def persistent(self) -> bool:
        """``False``: the entries live in this process; :meth:`save` keeps them."""
        return False

    @property
    def metadata(self) -> dict:
        """The ``metadata`` of the manifest this index was loaded from or last saved with (else ``{}``)."""
        return dict(self._metadata)

    @property
    def faiss_index(self):
        """The underlying faiss index (``None`` before the first ``add``), for inspection.

        Its labels are internal slots, not ids, and mutating it bypasses the
        lock and the id/label bookkeeping: read from it, do not write to it.
        """
        return None if self._store is None else self._store.index

    def __len__(self) -> int:
        return self._n_alive

    def __repr__(self) -> str:
        return f"Index(metric={self.metric!r}, backend={self.backend!r}, dim={self._dim}, count={self._n_alive})"

    # ------------------------------------------------------------- writing

    def add(self, embeddings, labels=None, ids=None, data: Sequence[Any] | None = None) -> np.ndarray:
        """Adds ``n`` entries; returns their ids (int64 ``[n]``).

        Args:
            embeddings: ``[n, dim]`` finite real values, ``||x|| <= 6.5e18``.
            labels: ``[n]`` integers >= -1 (-1 = unlabelled); default all -1.
            ids: ``[n]`` unique integers >= 0 not already in the index; default
                consecutive from one past the largest id ever added.
            data: ``n`` payloads, each ``None``, ``bytes`` or JSON-serialisable.

        Raises:
            ValueError: wrong shape or dimension, NaN/inf or too large values,
                bad or duplicate ids (within the call or against the index),
                bad labels or data, or (ivf) a first ``add`` with fewer than
                ``nlist`` vectors. Nothing is added when it raises.
        """
        x, labels, given_ids, data = inputs.as_entries(embeddings, labels, ids, data)
        n = x.shape[0]
        if self._metric.normalizes:
            x = inputs.normalize_rows(x)
        with self._lock.write():
            if self._dim is not None and x.shape[1] != self._dim:
                raise ValueError(f"`embeddings` must have dim {self._dim} (the index's), got shape {x.shape}.")
            if n == 0:
                return np.empty(0, np.int64)
            if given_ids is None:
                new_ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
            else:
                new_ids = given_ids
                present = self._find_slots(new_ids) >= 0
                if present.any():
                    raise ValueError(f"`ids` already in the index: {new_ids[present][:10].tolist()}.")
            store = self._store
            if store is None:
                self._backend_cls.check_first_add(self._params, n)
                store = self._backend_cls(self._metric, x.shape[1], self._params)
            first_slot = len(self._slot_ids)
            store.add(x, first_slot)
            self._store, self._dim = store, x.shape[1]
            self._append(new_ids, labels, data, np.arange(first_slot, first_slot + n, dtype=np.int64))
            return new_ids.copy()

    def remove(self, ids) -> int:
        """Removes the entries with these ids; returns how many were removed.

        Raises:
            ValueError: an id not in the index, or a repeated id (nothing is removed).
        """
        ids = inputs.as_ids(ids, "ids", None)
        with self._lock.write():
            slots = self._find_slots(ids)
            if (slots < 0).any():
                raise ValueError(f"`ids` not in the index: {ids[slots < 0][:10].tolist()}.")
            if len(ids) == 0:
                return 0
            self._alive[slots] = False
            self._n_alive -= len(slots)
            self._drop_sorted(ids)
            if self._store.remove(slots, self._alive):
                self._compact(self._alive.copy())
            self._store.on_alive_changed(self._alive)
            return len(ids)

    # ------------------------------------------------------------- reading

    def search(self, queries, k: int = 10) -> SearchResult:
        """The ``min(k, len(self))`` nearest entries to each query (see :class:`SearchResult`).

        Args:
            queries: ``[q, dim]`` (or one ``[dim]`` vector) of finite values, ``||x|| <= 6.5e18``.
            k: number of neighbours, an integer >= 1, clamped to the number of entries.

        Raises:
            ValueError: ``k`` < 1, wrong dimension, NaN/inf or too large values in ``queries``.
        """
        k = inputs.check_k(k)
        q = inputs.as_vectors(queries, "queries", allow_1d=True)
        if self._metric.normalizes:
            q = inputs.normalize_rows(q)
        with self._lock.read():
            if self._dim is not None and q.shape[1] != self._dim:
                raise ValueError(f"`queries` must have dim {self._dim} (the index's), got shape {q.shape}.")
            width = min(k, self._n_alive)
            if width == 0:
                return empty_result(len(q), 0, self._slot_data is not None)
            scores, slots = self._store.search(q, width)
            return self._result(scores, slots)

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, labels)`` of the live entries, in insertion order (copies)."""
        with self._lock.read():
            live = self._alive
            return self._slot_ids[live], self._slot_labels[live]

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(embeddings, ids, labels)`` of the live entries in insertion order.

        Embeddings are float32 ``[n, dim]`` as stored: for ``cosine`` they are
        the L2-normalised vectors.
        """
        with self._lock.read():
            live = self._alive
            if self._store is None:
                vectors = np.zeros((0, self._dim or 0), np.float32)
            else:
                vectors = self._store.vectors(len(self._slot_ids))[live]
            return vectors, self._slot_ids[live], self._slot_labels[live]

    def get_data(self, ids) -> list[Any]:
        """The payloads of these ids (``None`` where none was given).

        Raises:
            ValueError: an id not in the index.
        """
        ids = inputs.as_int_vector(ids, "ids", None, minimum=0)
        with self._lock.read():
            slots = self._find_slots(ids)
            if (slots < 0).any():
                raise ValueError(f"`ids` not in the index: {ids[slots < 0][:10].tolist()}.")
            if self._slot_data is None:
                return [None] * len(ids)
            return [self._slot_data[s] for s in slots.tolist()]

    # ---------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike, *, metadata: dict | None = None) -> str:
        """Writes the index to the directory ``path`` atomically (see :mod:`.persistence`).

        Args:
            path: a new or empty directory, or an index saved earlier (replaced).
            metadata: a JSON-serialisable dict stored in the manifest (covered
                by its checksum) and returned by ``Index.load(path).metadata``.

        Returns:
            The absolute path written.

        Raises:
            tfcontrast.storage.RefusedPathError: ``path`` holds something else.
            ValueError: ``metadata`` is not a JSON-serialisable dict.
        """
        metadata = None if metadata is None else persistence.check_metadata(metadata)
        path = os.path.abspath(os.fspath(path))
        with self._save_lock, self._lock.read():  # saves in turn; searches go on meanwhile
            with persistence.atomic_directory(path) as tmp:
                files = {}
                if self._store is not None:
                    files[FAISS_FILE] = persistence.write_bytes(tmp, FAISS_FILE, self._store.serialize())
                for name, array in (("ids.npy", self._slot_ids), ("labels.npy", self._slot_labels), ("alive.npy", self._alive)):
                    files[name] = persistence.write_bytes(tmp, name, persistence.npy_bytes(array))
                if self._slot_data is not None:
                    files["data.json"] = persistence.write_bytes(tmp, "data.json", persistence.data_json_bytes(self._slot_data))
                manifest = {
                    "kind": self.kind,
                    "metric": self.metric,
                    "backend": self.backend,
                    "dim": self._dim,
                    "count": self._n_alive,
                    "slots": len(self._slot_ids),
                    "next_id": self._next_id,
                    "params": self._params,
                    "faiss_version": faiss.__version__,
                    "files": files,
                }
                persistence.write_manifest(tmp, manifest, metadata)
            if metadata is not None:
                self._metadata = metadata
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, legacy_manifest: bool = False) -> "Index":
        """Reads an index written by :meth:`save`, verifying every checksum.

        Args:
            path: the saved directory.
            legacy_manifest: also read a manifest of format version 1 (tfcontrast
                0.1.0), which has no checksum of its own (a warning says so).

        Raises:
            IndexFileError (a ``ValueError``): missing, truncated, modified or
                pickled files, a modified manifest, an unknown format version,
                or contents that disagree with the manifest.
        """
        directory = persistence.resolve(path)
        required = {"metric": str, "backend": str, "count": int, "slots": int, "next_id": int, "params": dict}
        manifest, payloads = persistence.read_verified(directory, required, legacy_manifest=legacy_manifest)
        kind = manifest.get("kind", cls.kind)
        if kind != cls.kind:
            raise persistence.IndexFileError(
                f"{directory!r} holds a {kind!r} index, not a faiss Index; load it with tfcontrast.index.load(path)."
            )
        try:
            index = cls(manifest["metric"], manifest["backend"], dim=manifest.get("dim"), **manifest["params"])
        except (TypeError, ValueError) as err:
            raise persistence.IndexFileError(f"{directory!r}: invalid manifest: {err}") from None
        slots, count = manifest["slots"], manifest["count"]
        ids = persistence.load_npy(payloads, "ids.npy", np.int64, slots)
        labels = persistence.load_npy(payloads, "labels.npy", np.int64, slots)
        alive = persistence.load_npy(payloads, "alive.npy", np.bool_, slots)
        live_ids = ids[alive]
        if (
            int(alive.sum()) != count
            or len(np.unique(live_ids)) != count
            or (slots and (ids.min() < 0 or labels.min() < -1))
            or (count and manifest["next_id"] <= live_ids.max())
        ):
            raise persistence.IndexFileError(f"{directory!r}: ids/labels/alive arrays are inconsistent with the manifest.")
        data = persistence.load_data(payloads, "data.json", slots) if "data.json" in payloads else None
        if index.dim is not None:
            if FAISS_FILE not in payloads:
                raise persistence.IndexFileError(f"{directory!r}: the manifest does not list {FAISS_FILE!r}.")
            try:
                index._store = index._backend_cls.deserialize(
                    index._metric, index.dim, index._params, payloads[FAISS_FILE], slots, alive
                )
            except persistence.IndexFileError as err:
                raise persistence.IndexFileError(f"{directory!r}: {err}") from None
        elif slots:
            raise persistence.IndexFileError(f"{directory!r}: entries but no `dim` in the manifest.")
        index._next_id = manifest["next_id"]
        index._append(ids, labels, data, np.arange(slots, dtype=np.int64), alive=alive)
        index._metadata = manifest.get("metadata", {})
        return index

    # ------------------------------------------------------------- internals

    def _append(self, ids, labels, data, slots, alive=None) -> None:
        """Appends slot rows and merges the live ids into the sorted lookup."""
        n = len(ids)
        alive = np.ones(n, bool) if alive is None else alive
        if data is not None and self._slot_data is None:
            self._slot_data = [None] * len(self._slot_ids)
        if self._slot_data is not None:
            self._slot_data.extend(data if data is not None else [None] * n)
        self._slot_ids = np.concatenate([self._slot_ids, ids])
        self._slot_labels = np.concatenate([self._slot_labels, labels])
        self._alive = np.concatenate([self._alive, alive])
        self._n_alive += int(alive.sum())
        live_ids, live_slots = ids[alive], slots[alive]
        order = np.argsort(live_ids, kind="stable")
        live_ids, live_slots = live_ids[order], live_slots[order]
        at = np.searchsorted(self._sorted_ids, live_ids)
        self._sorted_ids = np.insert(self._sorted_ids, at, live_ids)
        self._sorted_slots = np.insert(self._sorted_slots, at, live_slots)
        if n:
            self._next_id = max(self._next_id, int(ids.max()) + 1)
        if self._store is not None:
            self._store.on_alive_changed(self._alive)

    def _find_slots(self, ids: np.ndarray) -> np.ndarray:
        """Slot of each live id, -1 where absent."""
        if len(self._sorted_ids) == 0:
            return np.full(len(ids), -1, np.int64)
        at = np.minimum(np.searchsorted(self._sorted_ids, ids), len(self._sorted_ids) - 1)
        return np.where(self._sorted_ids[at] == ids, self._sorted_slots[at], -1)

    def _drop_sorted(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self._sorted_ids, ids, assume_unique=True)
        self._sorted_ids = self._sorted_ids[keep]
        self._sorted_slots = self._sorted_slots[keep]

    def _compact(self, keep: np.ndarray) -> None:
        """Keeps the slots in ``keep`` (renumbered 0..) and rebuilds the id lookup."""
        self._slot_ids = self._slot_ids[keep]
        self._slot_labels = self._slot_labels[keep]
        if self._slot_data is not None:
            self._slot_data = [d for d, kept in zip(self._slot_data, keep.tolist()) if kept]
        self._alive = np.ones(len(self._slot_ids), bool)
        self._n_alive = len(self._slot_ids)
        order = np.argsort(self._slot_ids, kind="stable")
        self._sorted_ids = self._slot_ids[order]
        self._sorted_slots = order.astype(np.int64)

    def _result(self, scores: np.ndarray, slots: np.ndarray) -> SearchResult:
        """Maps backend (scores, slots) to package distances, ids, labels, data."""
        missing = slots < 0
        distances = self._metric.distances(scores)
        ids = self._slot_ids.take(slots)
        labels = self._slot_labels.take(slots)
        if missing.any():
            distances[missing] = np.inf
            ids[missing] = -1
            labels[missing] = -1
        data = None
        if self._slot_data is not None:
            table = self._slot_data
            data = [[None if s < 0 else table[s] for s in row] for row in slots.tolist()]
        return SearchResult(ids=ids, distances=distances, labels=labels, data=data)
