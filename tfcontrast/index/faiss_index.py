"""``Index``: a faiss-backed similarity index with ids, labels, payloads and safe persistence.

Distances follow the package convention of :mod:`tfcontrast.distances`
(smaller is closer), the same for every backend and for
:class:`~tfcontrast.index.NearestNeighbors` on the same pairs (up to float32
round-off):

=================  =====================================  ======================
metric             distance                               faiss index
=================  =====================================  ======================
``cosine``         1 - cos(a, b), clipped to [0, 2]       inner product on rows
                                                          normalised inside
                                                          (x / max(||x||, 1e-6))
``inner_product``  -<a, b>                                inner product
``euclidean``      ||a - b|| (not squared)                L2 (sqrt taken here)
=================  =====================================  ======================

Backends:

* ``"exact"``: ``IndexFlatIP`` / ``IndexFlatL2``, brute force (BLAS). No
  parameters. ``remove`` compacts the storage (O(n) copy per call).
* ``"hnsw"``: ``IndexHNSWFlat`` (Malkov & Yashunin, "Efficient and robust
  approximate nearest neighbor search using Hierarchical Navigable Small World
  graphs", TPAMI 2018). Parameters ``M`` (graph degree, default 32),
  ``ef_construction`` (default 100) and ``ef_search`` (default 64; faiss
  uses ``max(ef_search, k)``); raise ``ef_search`` for recall, lower it for
  speed (on the benchmark's 100,000 clustered vectors: recall@10 0.998 at
  32, 0.9999 at 64). About 800 bytes per 128-d vector (512 of them the vector). faiss cannot delete from an HNSW graph, so
  ``remove`` marks entries as tombstones: they stay in the graph (still
  traversed, so recall does not drop) but an ``IDSelectorBitmap`` keeps them
  out of results, at the cost of one bit test per visited node. When
  tombstones outnumber live entries the graph is rebuilt from the live
  vectors (O(n log n); amortised O(log n) per removed entry).
* ``"ivf"``: ``IndexIVFFlat`` (inverted file over a k-means coarse quantizer;
  Jégou, Douze, Schmid, "Product quantization for nearest neighbor search",
  TPAMI 2011). Parameters ``nlist`` (default 100) and ``nprobe`` (default 8).
  The quantizer is trained on the first ``add``, which must therefore hold at
  least ``nlist`` vectors (faiss asks for ~39 per list for good centroids).
  ``remove`` deletes from the inverted lists.

The approximate backends may return fewer than ``k`` results (padded) even
when the index holds more, and may miss true neighbours; ``exact`` never does.

**Ids, labels and data.** Every entry has a unique integer id >= 0 (by default
consecutive from 0, continuing after the largest id ever added), an integer
label (-1 = unlabelled) and an optional payload, ``None``, a byte string or a
JSON-serialisable value. Internally faiss stores entries by slot (insertion
position), and searches map slots back to ids, labels and payloads with
vectorised lookups.

**Results.** :meth:`Index.search` returns a :class:`SearchResult` of
``[q, k]`` arrays: ``ids`` (int64), ``distances`` (float32), ``labels``
(int64). Missing results (fewer than ``k`` entries) are padded with id -1,
distance ``inf`` and label -1. Searching an empty index returns that padding
for every query (documented empty result), not an error.

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

Example:
    >>> import numpy as np
    >>> idx = Index(metric="euclidean")
    >>> idx.add(np.array([[0.0, 0.0], [3.0, 4.0]]), labels=[7, 8]).tolist()
    [0, 1]
    >>> res = idx.search([[3.0, 0.0]], k=3)
    >>> res.ids.tolist(), res.distances.tolist(), res.labels.tolist()
    ([[0, 1, -1]], [[3.0, 4.0, inf]], [[7, 8, -1]])
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any, Sequence

import faiss
import numpy as np

from tfcontrast.index import inputs, persistence
from tfcontrast.index.locking import ReadWriteLock

METRICS = ("cosine", "inner_product", "euclidean")
BACKENDS = ("exact", "hnsw", "ivf")
DEFAULT_PARAMS = {
    "exact": {},
    "hnsw": {"M": 32, "ef_construction": 100, "ef_search": 64},
    "ivf": {"nlist": 100, "nprobe": 8},
}
_FAISS_FILE = "index.faiss"


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """Neighbours of ``q`` queries, nearest first.

    Attributes:
        ids: ``[q, k]`` int64 entry ids, -1 where fewer than ``k`` exist.
        distances: ``[q, k]`` float32 distances (package convention), ``inf`` padding.
        labels: ``[q, k]`` int64 labels, -1 for padding or unlabelled entries.
        data: ``q`` lists of ``k`` payloads (``None`` for padding), or ``None``
            when the index holds no payloads.
    """

    ids: np.ndarray
    distances: np.ndarray
    labels: np.ndarray
    data: list[list[Any]] | None = None


class Index:
    """A faiss index of embeddings with ids, labels and payloads (see the module docstring).

    Args:
        metric: ``"cosine"`` (default), ``"inner_product"`` or ``"euclidean"``.
        backend: ``"exact"`` (default), ``"hnsw"`` or ``"ivf"``.
        dim: the embedding size; inferred from the first ``add`` when ``None``.
        **params: backend parameters (``M``, ``ef_construction``, ``ef_search``
            for hnsw; ``nlist``, ``nprobe`` for ivf). Unknown names raise.

    Raises:
        ValueError: unknown metric, backend or parameter, or a bad value.
    """

    def __init__(self, metric: str = "cosine", backend: str = "exact", *, dim: int | None = None, **params: int):
        if metric not in METRICS:
            raise ValueError(f"`metric` must be one of {METRICS}, got {metric!r}.")
        if backend not in BACKENDS:
            raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
        unknown = sorted(set(params) - set(DEFAULT_PARAMS[backend]))
        if unknown:
            raise ValueError(
                f"Unknown parameter(s) {unknown} for backend {backend!r}; it takes "
                f"{sorted(DEFAULT_PARAMS[backend]) or 'none'}."
            )
        merged = dict(DEFAULT_PARAMS[backend], **params)
        for name, value in merged.items():
            inputs.check_k(value, name)
        if dim is not None:
            dim = inputs.check_k(dim, "dim")
        self._metric = metric
        self._backend = backend
        self._params = merged
        self._dim = dim
        self._lock = ReadWriteLock()
        self._save_lock = threading.Lock()
        self._faiss = None
        self._slot_ids = np.empty(0, np.int64)
        self._slot_labels = np.empty(0, np.int64)
        self._slot_data: list[Any] | None = None
        self._alive = np.empty(0, bool)
        self._n_alive = 0
        self._sorted_ids = np.empty(0, np.int64)  # live ids, sorted
        self._sorted_slots = np.empty(0, np.int64)  # their slots
        self._next_id = 0
        self._selector = None  # hnsw tombstones: (bitmap array, IDSelectorBitmap)

    # ----------------------------------------------------------- properties

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def params(self) -> dict:
        """The backend parameters in effect (defaults filled in)."""
        return dict(self._params)

    @property
    def dim(self) -> int | None:
        """Embedding size, ``None`` until the first ``add`` (unless given)."""
        return self._dim

    @property
    def faiss_index(self):
        """The underlying faiss index (``None`` before the first ``add``), for inspection.

        Its labels are internal slots, not ids, and mutating it bypasses the
        lock and the id/label bookkeeping: read from it, do not write to it.
        """
        return self._faiss

    def __len__(self) -> int:
        return self._n_alive

    def __repr__(self) -> str:
        return f"Index(metric={self._metric!r}, backend={self._backend!r}, dim={self._dim}, count={self._n_alive})"

    # ------------------------------------------------------------- writing

    def add(self, embeddings, labels=None, ids=None, data: Sequence[Any] | None = None) -> np.ndarray:
        """Adds ``n`` entries; returns their ids (int64 ``[n]``).

        Args:
            embeddings: ``[n, dim]`` finite real values.
            labels: ``[n]`` integers >= -1 (-1 = unlabelled); default all -1.
            ids: ``[n]`` unique integers >= 0 not already in the index; default
                consecutive from one past the largest id ever added.
            data: ``n`` payloads, each ``None``, ``bytes`` or JSON-serialisable.

        Raises:
            ValueError: wrong shape or dimension, NaN/inf, bad or duplicate ids
                (within the call or against the index), bad labels or data,
                or (ivf) a first ``add`` with fewer than ``nlist`` vectors.
                Nothing is added when it raises.
        """
        x = inputs.as_vectors(embeddings, "embeddings")
        n = x.shape[0]
        labels = np.full(n, -1, np.int64) if labels is None else inputs.as_labels(labels, "labels", n)
        given_ids = None if ids is None else inputs.as_ids(ids, "ids", n)
        data = inputs.as_data(data, n)
        if self._metric == "cosine":
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
            untrained = self._backend == "ivf" and (self._faiss is None or not self._faiss.is_trained)
            if untrained and n < self._params["nlist"]:
                raise ValueError(
                    f"The ivf backend trains its quantizer on the first `add`, which needs at least "
                    f"nlist={self._params['nlist']} vectors; got {n}. Add more at once or lower nlist."
                )
            if self._faiss is None:
                self._dim = x.shape[1]
                self._faiss = self._new_faiss(self._dim)
            if untrained:
                self._faiss.train(x)
            first_slot = len(self._slot_ids)
            slots = np.arange(first_slot, first_slot + n, dtype=np.int64)
            if self._backend == "ivf":
                self._faiss.add_with_ids(x, slots)
            else:
                self._faiss.add(x)
            self._append(new_ids, labels, data, slots)
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
            if self._backend == "exact":
                self._faiss.remove_ids(slots)
                keep = np.ones(len(self._slot_ids), bool)
                keep[slots] = False
                self._compact(keep)
            else:
                if self._backend == "ivf":
                    self._faiss.remove_ids(slots)
                self._alive[slots] = False
                self._n_alive -= len(slots)
                self._drop_sorted(ids)
                if len(self._slot_ids) - self._n_alive > self._n_alive:
                    self._rebuild()
                elif self._backend == "hnsw":
                    self._update_selector()
            return len(ids)

    # ------------------------------------------------------------- reading

    def search(self, queries, k: int) -> SearchResult:
        """The ``k`` nearest entries to each query (see :class:`SearchResult`).

        Args:
            queries: ``[q, dim]`` (or one ``[dim]`` vector) of finite values.
            k: number of neighbours, >= 1; more than the index holds is padded.

        Raises:
            ValueError: ``k`` < 1, wrong dimension, NaN/inf in ``queries``.
        """
        k = inputs.check_k(k)
        q = inputs.as_vectors(queries, "queries", allow_1d=True)
        if self._metric == "cosine":
            q = inputs.normalize_rows(q)
        with self._lock.read():
            if self._dim is not None and q.shape[1] != self._dim:
                raise ValueError(f"`queries` must have dim {self._dim} (the index's), got shape {q.shape}.")
            if self._n_alive == 0:
                return _empty_result(len(q), k, self._slot_data is not None)
            k_found = min(k, self._n_alive)  # faiss need not pad beyond what exists
            if self._selector is not None:
                params = faiss.SearchParametersHNSW(sel=self._selector[1], efSearch=self._params["ef_search"])
                scores, slots = self._faiss.search(q, k_found, params=params)
            else:
                scores, slots = self._faiss.search(q, k_found)
            if self._metric == "euclidean" and self._backend == "exact":
                scores, slots = self._exact_squared_l2(q, scores, slots)
            if k_found < k:
                slots = np.pad(slots, ((0, 0), (0, k - k_found)), constant_values=-1)
                scores = np.pad(scores, ((0, 0), (0, k - k_found)))
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
            return self._slot_vectors()[live], self._slot_ids[live], self._slot_labels[live]

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

    def save(self, path: str | os.PathLike) -> str:
        """Writes the index to the directory ``path`` atomically (see :mod:`.persistence`).

        Returns:
            The absolute path written.
        """
        path = os.path.abspath(os.fspath(path))
        with self._save_lock, self._lock.read():  # saves in turn; searches go on meanwhile
            with persistence.atomic_directory(path) as tmp:
                files = {}
                if self._faiss is not None:
                    files[_FAISS_FILE] = persistence.write_bytes(
                        tmp, _FAISS_FILE, faiss.serialize_index(self._faiss).tobytes()
                    )
                for name, array in (("ids.npy", self._slot_ids), ("labels.npy", self._slot_labels), ("alive.npy", self._alive)):
                    files[name] = persistence.write_bytes(tmp, name, persistence.npy_bytes(array))
                if self._slot_data is not None:
                    files["data.json"] = persistence.write_bytes(tmp, "data.json", persistence.data_json_bytes(self._slot_data))
                persistence.write_manifest(
                    tmp,
                    {
                        "metric": self._metric,
                        "backend": self._backend,
                        "dim": self._dim,
                        "count": self._n_alive,
                        "slots": len(self._slot_ids),
                        "next_id": self._next_id,
                        "params": self._params,
                        "faiss_version": faiss.__version__,
                        "files": files,
                    },
                )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Index":
        """Reads an index written by :meth:`save`, verifying every checksum.

        Raises:
            IndexFileError (a ``ValueError``): missing, truncated, modified or
                pickled files, an unknown format version, or contents that
                disagree with the manifest.
        """
        directory = persistence.resolve(path)
        required = {"metric": str, "backend": str, "count": int, "slots": int, "next_id": int, "params": dict}
        manifest, payloads = persistence.read_verified(directory, required)
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
            if _FAISS_FILE not in payloads:
                raise persistence.IndexFileError(f"{directory!r}: the manifest does not list {_FAISS_FILE!r}.")
            index._faiss = index._check_loaded(_deserialize(payloads[_FAISS_FILE]), slots, count, alive, directory)
        elif slots:
            raise persistence.IndexFileError(f"{directory!r}: entries but no `dim` in the manifest.")
        index._next_id = manifest["next_id"]
        index._append(ids, labels, data, np.arange(slots, dtype=np.int64), alive=alive)
        return index

    # ------------------------------------------------------------- internals

    def _new_faiss(self, dim: int):
        metric = faiss.METRIC_L2 if self._metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        if self._backend == "exact":
            return faiss.IndexFlatL2(dim) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(dim)
        if self._backend == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self._params["M"], metric)
            index.hnsw.efConstruction = self._params["ef_construction"]
            index.hnsw.efSearch = self._params["ef_search"]
            return index
        quantizer = faiss.IndexFlatL2(dim) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, self._params["nlist"], metric)
        index.nprobe = self._params["nprobe"]
        return index

    def _check_loaded(self, index, slots: int, count: int, alive: np.ndarray, directory: str):
        """Checks a deserialised faiss index against the manifest; returns it."""
        expected = {"exact": (faiss.IndexFlat,), "hnsw": (faiss.IndexHNSWFlat,), "ivf": (faiss.IndexIVFFlat,)}
        metric = faiss.METRIC_L2 if self._metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        ntotal = count if self._backend == "ivf" else slots
        problems = []
        if not isinstance(index, expected[self._backend]):
            problems.append(f"a {type(index).__name__}, not the {self._backend} backend's type")
        if index.d != self._dim or index.metric_type != metric:
            problems.append(f"dim {index.d} / metric type {index.metric_type}")
        if index.ntotal != ntotal:
            problems.append(f"{index.ntotal} vectors instead of {ntotal}")
        if self._backend == "exact" and not alive.all():
            problems.append("removed entries, which the exact backend never keeps")
        if problems:
            raise persistence.IndexFileError(f"{directory!r}: {_FAISS_FILE} disagrees with the manifest: {'; '.join(problems)}.")
        if self._backend == "hnsw":
            index.hnsw.efSearch = self._params["ef_search"]
        elif self._backend == "ivf":
            index.nprobe = self._params["nprobe"]
        return index

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
        if self._backend == "hnsw":
            self._update_selector()

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

    def _slot_vectors(self) -> np.ndarray:
        """``[slots, dim]`` stored vectors by slot (removed ivf slots are zeros)."""
        n_slots, dim = len(self._slot_ids), self._dim or 0
        if self._faiss is None or n_slots == 0:
            return np.zeros((n_slots, dim), np.float32)
        if self._backend != "ivf":
            return self._faiss.reconstruct_n(0, self._faiss.ntotal)
        out = np.zeros((n_slots, dim), np.float32)
        invlists = self._faiss.invlists
        for list_no in range(self._faiss.nlist):
            size = invlists.list_size(list_no)
            if size == 0:
                continue
            slots = faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy()
            codes = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * invlists.code_size)
            out[slots] = np.frombuffer(codes.tobytes(), np.float32).reshape(size, dim)
        return out

    def _rebuild(self) -> None:
        """Rebuilds hnsw / ivf storage from the live vectors, dropping removed slots."""
        live = self._alive.copy()
        vectors = self._slot_vectors()[live]
        if self._backend == "hnsw":
            self._faiss = self._new_faiss(self._dim)
            self._faiss.add(vectors)
        else:
            self._faiss.reset()  # keeps the trained quantizer
            self._faiss.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
        self._selector = None
        self._compact(live)

    def _update_selector(self) -> None:
        """hnsw: the bitmap of live slots that filters tombstones out of results."""
        if self._alive.all():
            self._selector = None
            return
        bitmap = np.packbits(self._alive, bitorder="little")
        self._selector = (bitmap, faiss.IDSelectorBitmap(len(self._alive), faiss.swig_ptr(bitmap)))

    def _exact_squared_l2(self, q: np.ndarray, scores: np.ndarray, slots: np.ndarray):
        """Recomputes ||q - x||^2 of the k winners directly and re-sorts them.

        faiss's brute force expands ||q||^2 + ||x||^2 - 2<q, x> (BLAS); near 0
        its cancellation error, through the sqrt, reaches ~1e-2 for vectors of
        norm ~30, while hnsw / ivf compute the difference directly. Recomputing
        the q * k winners (O(q k dim), a few percent of the search) makes the
        exact backend agree with them and with NearestNeighbors.
        """
        vectors = faiss.rev_swig_ptr(self._faiss.get_xb(), self._faiss.ntotal * self._dim)
        vectors = vectors.reshape(self._faiss.ntotal, self._dim)
        missing = slots < 0
        diff = vectors[np.where(missing, 0, slots)] - q[:, None, :]
        squared = np.einsum("qkd,qkd->qk", diff, diff)
        squared[missing] = np.inf
        order = np.argsort(squared, axis=1, kind="stable")
        return np.take_along_axis(squared, order, axis=1), np.take_along_axis(slots, order, axis=1)

    def _result(self, scores: np.ndarray, slots: np.ndarray) -> SearchResult:
        """Maps faiss (scores, slots) to package distances, ids, labels, data."""
        missing = slots < 0
        if self._metric == "cosine":
            distances = np.clip(np.float32(1.0) - scores, 0.0, 2.0)
        elif self._metric == "inner_product":
            distances = np.negative(scores)
        else:
            distances = np.sqrt(np.maximum(scores, 0.0))
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


def _empty_result(q: int, k: int, with_data: bool) -> SearchResult:
    return SearchResult(
        ids=np.full((q, k), -1, np.int64),
        distances=np.full((q, k), np.inf, np.float32),
        labels=np.full((q, k), -1, np.int64),
        data=[[None] * k for _ in range(q)] if with_data else None,
    )


def _deserialize(payload: bytes):
    try:
        return faiss.deserialize_index(np.frombuffer(payload, np.uint8))  # already downcast
    except Exception as err:  # noqa: BLE001 - faiss raises RuntimeError on corrupt bytes
        raise persistence.IndexFileError(f"{_FAISS_FILE} is not a readable faiss index: {str(err)[:300]}") from None
