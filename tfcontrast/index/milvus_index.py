"""``MilvusIndex``: the ``SearchIndex`` interface on Milvus, in-process from a file or on a cluster from a URI.

Milvus is an open-source distributed vector database (sharding, replicas,
Kubernetes). Its Python client, ``pymilvus``, speaks the same API to
**Milvus Lite** (``pip install milvus-lite``), an embedded engine that runs
inside the Python process from a local path ending in ``.db`` (no server to
install, no network: it serves the client on ``127.0.0.1`` from a thread),
and to a **Milvus server or cluster** (``http://host:19530``, or Zilliz
Cloud). The same code therefore runs in tests and on a laptop with Lite and
at scale against a cluster; only ``uri`` (and ``token``) change::

    idx = MilvusIndex("runs/demo/milvus.db", collection="digits")              # Milvus Lite, in-process
    idx = MilvusIndex("http://milvus.internal:19530", collection="digits",
                      token=os.environ["MILVUS_TOKEN"], index_type="HNSW")     # a cluster

Install both with ``pip install "tfcontrast[milvus]"``.

**Collection.** One collection per index, with the fields ``id`` (INT64
primary key: our ids, no auto id), ``vector`` (FLOAT_VECTOR of ``dim``),
``label`` (INT64, -1 = unlabelled) and ``data`` (JSON ``{"v": payload}``;
byte strings as ``{"$bytes": base64}``, at most 65,536 bytes encoded). An
existing collection is reused only if it has exactly this schema, the same
dimension, metric and index type; otherwise construction fails with a
``ValueError`` saying what differs. A new collection is created on the first
``add`` (or at once when ``dim`` is given).

**Metrics** map to Milvus's ``COSINE`` / ``IP`` / ``L2``, and the scores Milvus
returns (a similarity, or the *squared* L2 distance) are converted to the
package's distances by :mod:`tfcontrast.index.metrics` (cosine = 1 - cos,
inner_product = -<q, x>, euclidean = ||q - x||), so results equal the faiss
:class:`~tfcontrast.index.Index` on the same data. Cosine rows are stored
normalised (``x / max(||x||, 1e-6)``, as in the faiss Index), so
:meth:`MilvusIndex.to_arrays` returns the same vectors; only rows of norm
below 1e-6 differ (Milvus renormalises them to unit length).

**Index types.** ``index_type="AUTOINDEX"`` (default: the server chooses;
Lite builds HNSW), ``"FLAT"`` (exact: the same neighbours as the faiss
exact Index), ``"HNSW"``, ``"IVF_FLAT"``, ``"IVF_SQ8"``, ... Build parameters go
in ``index_params`` (``{"M": 16, "efConstruction": 200}``, ``{"nlist": 1024}``),
search parameters in ``search_params`` (``{"ef": 64}``, ``{"nprobe": 16}``).
For HNSW, ``ef`` is raised to at least ``k`` on each search (Milvus requires
``ef >= k``). Data not yet sealed into an indexed segment is searched by
brute force (Lite keeps up to 128 MB in memory before sealing; :meth:`flush`
seals it).

**Consistency.** The collection is created with, and every search, query and
count uses, ``consistency_level="Strong"`` (the default): the server serves
a request only once every write acknowledged before it is visible, so a
search right after :meth:`add` returns what was added, from this client or
any other. No flush is needed for that. ``"Bounded"`` (staleness of a few
seconds) or ``"Eventually"`` trade that guarantee for lower search latency on
a busy cluster.

**Writes.** :meth:`add` *upserts*: re-adding an id replaces its entry, so
re-running an interrupted load is idempotent. Rows are sent in batches of at
most ``batch_bytes`` (default 16 MiB: a quarter of the 64 MiB gRPC message
limit of a default Milvus server) and 10,000 rows. Without ``ids``, the ids
continue one past the largest id in the collection, which needs a scan of
all ids: pass ``ids`` for large collections, and always when several
processes write (ids are the only coordination between writers).

**k.** As for every index, ``k`` is clamped to the number of entries; the
columns of a result are the most hits any query received (``min(k,
len(index))`` for an exact index type), and a query with fewer hits is padded.
Milvus returns at most 16,384 neighbours per query: a search that would need
more raises ``ValueError``.

**Errors.** An unreachable server raises :class:`MilvusConnectionError` (a
``ConnectionError``) naming the URI; a collection of another dimension, metric
or index type, bad ids (negative, repeated, or to remove but absent), bad
vectors or payloads raise ``ValueError``; a request the server refuses raises
:class:`MilvusServerError` with the server's message.

**Secrets.** The ``token`` (and any ``user:password@`` in the URI) is kept
only in memory for the client: it never appears in ``repr``/``str``, error
messages, logs of this module or the manifest written by :meth:`save`, and
the index refuses to be pickled. :meth:`save` records how to reconnect (URI
without credentials, collection, metric, index type); pass the token again to
:meth:`load` (e.g. from an environment variable).

**Scaling.** On a cluster: create the collection with several shards for
write throughput (``num_shards``), load it with replicas for query
throughput and availability (``replica_number``); choose an index type by
memory (HNSW: fast, the vectors plus a graph in RAM; IVF_SQ8 / IVF_PQ: 4-32x smaller;
DISKANN: on SSD), then tune ``search_params`` for recall. Use
:func:`tfcontrast.index.evaluate_retrieval` against a ``FLAT`` copy of a
sample to measure the recall you get.

**Threads.** Several threads may search one ``MilvusIndex`` at once (the
client's gRPC channel is thread-safe); several processes may write to one
collection on a server. Milvus Lite is single-process: a second process
opening the same ``.db`` path is refused until the first exits.

Example:
    >>> import numpy as np                                          # doctest: +SKIP
    >>> idx = MilvusIndex(str(tmp / "demo.db"), metric="euclidean")  # doctest: +SKIP
    >>> idx.add([[0.0, 0.0], [3.0, 4.0]], labels=[7, 8], ids=[10, 11]).tolist()  # doctest: +SKIP
    [10, 11]
    >>> idx.search([[3.0, 0.0]], k=5).distances.tolist()            # doctest: +SKIP
    [[3.0, 4.0]]
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.parse
from typing import Any, Sequence

import numpy as np

from tfcontrast.index import inputs, persistence
from tfcontrast.index.metrics import get_metric
from tfcontrast.index.search_index import SearchResult, empty_result, register_index

MILVUS_METRICS = {"cosine": "COSINE", "inner_product": "IP", "euclidean": "L2"}
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")
MAX_K = 16384  # Milvus's limit on neighbours per query (topk)
MAX_PAYLOAD_BYTES = 65536  # Milvus's default maximum size of one JSON value
MAX_BATCH_ROWS = 10_000
MAX_IDS_PER_EXPRESSION = 1000
FIELDS = ("id", "vector", "label", "data")


class MilvusConnectionError(ConnectionError):
    """The Milvus server at the URI cannot be reached (or Milvus Lite cannot open its path)."""


class MilvusServerError(RuntimeError):
    """A Milvus server refused or failed a request (its message, credentials hidden)."""


class _Secret:
    """A credential that never shows itself: ``repr``/``str`` print a placeholder; it cannot be pickled."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None):
        self._value = value

    def reveal(self) -> str | None:
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "<hidden>") if self._value else text

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Milvus credential cannot be pickled")


class _QuietIteratorWarning(logging.Filter):
    """Drops pymilvus's "failed to get mvccTs" warning: Milvus Lite has no mvcc timestamps, and the
    client-side timestamp it falls back to is exactly what a strong read wants."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "mvccTs" not in record.getMessage()


class _QuietUnimplemented(logging.Filter):
    """Drops the traceback that Milvus Lite's in-process gRPC server logs when the client, connecting,
    asks for an RPC Lite does not implement (``AllocTimestamp``: "Method not implemented!"); the
    client carries on without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Method not implemented" not in record.getMessage()


_iterator_filter_lock = threading.Lock()
_iterator_filter_installed = False


def _pymilvus():
    try:
        import pymilvus
    except ImportError:
        raise ImportError(
            "MilvusIndex needs pymilvus (and milvus-lite for local .db files): pip install \"tfcontrast[milvus]\"."
        ) from None
    return pymilvus


def is_lite_uri(uri: str) -> bool:
    """Whether ``uri`` names a Milvus Lite database (a local path ending in ``.db``), not a server."""
    return "://" not in uri and uri.endswith(".db")


def public_uri(uri: str) -> str:
    """``uri`` without credentials (``user:password@``), query or fragment: safe to print and save."""
    if is_lite_uri(uri):
        return os.path.abspath(uri)
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@register_index("milvus")
class MilvusIndex:
    """A Milvus collection as a :class:`~tfcontrast.index.SearchIndex` (see the module docstring).

    Args:
        uri: a Milvus Lite path ending in ``.db`` (``"runs/demo/milvus.db"``;
            created if missing) or a server URI (``"http://host:19530"``).
        collection: the collection name (letters, digits, underscores).
        metric: ``"cosine"`` (default), ``"inner_product"`` or ``"euclidean"``.
        index_type: Milvus index type: ``"AUTOINDEX"`` (default), ``"FLAT"``
            (exact), ``"HNSW"``, ``"IVF_FLAT"``, ...
        token: credentials (``"user:password"`` or an API key); never shown or saved.
        dim: the vector size; ``None``: from the existing collection or the first ``add``.
        index_params: build parameters of the index type (e.g. ``{"M": 16}``).
        search_params: search parameters (e.g. ``{"ef": 64}``, ``{"nprobe": 16}``).
        consistency_level: ``"Strong"`` (default: a search sees every
            acknowledged write), ``"Bounded"``, ``"Session"`` or ``"Eventually"``.
        batch_bytes: the largest insert request, in bytes (default 16 MiB).
        timeout: seconds to wait for the server on connection and on each request.

    Raises:
        ValueError: bad arguments, or an existing collection with another
            schema, dimension, metric or index type.
        MilvusConnectionError: the server cannot be reached.
        ImportError: pymilvus (or milvus-lite for ``.db`` paths) is not installed.
    """

    def __init__(
        self,
        uri: str,
        collection: str = "tfcontrast",
        metric: str = "cosine",
        index_type: str = "AUTOINDEX",
        token: str | None = None,
        dim: int | None = None,
        *,
        index_params: dict | None = None,
        search_params: dict | None = None,
        consistency_level: str = "Strong",
        batch_bytes: int = 16 << 20,
        timeout: float = 30.0,
    ):
        self._token = _Secret(token)
        if not isinstance(uri, (str, os.PathLike)) or not os.fspath(uri):
            raise ValueError(f"`uri` must be a Milvus Lite path ending in .db or a server URI, got {type(uri).__name__}.")
        uri = os.fspath(uri)
        if "://" not in uri and not uri.endswith(".db"):
            raise ValueError(
                f"`uri` must be a Milvus Lite path ending in .db or a server URI such as http://host:19530, "
                f"got {public_uri(uri)!r}."
            )
        if not isinstance(collection, str) or not collection or not collection.replace("_", "a").isalnum() or collection[0].isdigit():
            raise ValueError(f"`collection` must be letters, digits and underscores, not starting with a digit; got {collection!r}.")
        if not isinstance(index_type, str) or not index_type or not index_type.replace("_", "A").isalnum():
            raise ValueError(f"`index_type` must be a Milvus index type name such as 'AUTOINDEX', 'FLAT', 'HNSW'; got {index_type!r}.")
        if consistency_level not in CONSISTENCY_LEVELS:
            raise ValueError(f"`consistency_level` must be one of {CONSISTENCY_LEVELS}, got {consistency_level!r}.")
        for name, value in (("index_params", index_params), ("search_params", search_params)):
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"`{name}` must be a dict, got {type(value).__name__}.")
        self._metric = get_metric(metric)
        self._uri = os.path.abspath(uri) if is_lite_uri(uri) else uri
        self._public_uri = public_uri(uri)
        self._credentials = _Secret(_uri_password(uri))  # the URI may carry user:password@
        self._collection = collection
        self._index_type = index_type.upper()
        self._index_params = dict(index_params or {})
        self._search_params = dict(search_params or {})
        self._consistency = consistency_level
        self._batch_bytes = inputs.check_k(batch_bytes, "batch_bytes")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"`timeout` must be a number of seconds > 0, got {timeout!r}.")
        self._timeout = float(timeout)
        self._dim = None if dim is None else inputs.check_k(dim, "dim")
        self._metadata: dict = {}
        self._create_lock = threading.Lock()
        self._client = self._connect()
        if not self._exists() and self._dim is not None:
            self._create(self._dim)

    # ------------------------------------------------------------ properties

    @property
    def metric(self) -> str:
        return self._metric.name

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def persistent(self) -> bool:
        """``True``: the entries live in Milvus and survive this process; :meth:`save` writes how to reconnect."""
        return True

    @property
    def uri(self) -> str:
        """The URI without credentials (absolute path for Milvus Lite)."""
        return self._public_uri

    @property
    def collection(self) -> str:
        return self._collection

    @property
    def index_type(self) -> str:
        return self._index_type

    @property
    def consistency_level(self) -> str:
        return self._consistency

    @property
    def metadata(self) -> dict:
        """The ``metadata`` of the manifest this index was loaded from or last saved with (else ``{}``)."""
        return dict(self._metadata)

    def __repr__(self) -> str:
        return (
            f"MilvusIndex(uri={self._public_uri!r}, collection={self._collection!r}, metric={self.metric!r}, "
            f"index_type={self._index_type!r}, dim={self._dim})"
        )

    __str__ = __repr__

    def __reduce_ex__(self, protocol):
        raise TypeError("a MilvusIndex holds a connection and credentials and cannot be pickled; save() it instead.")

    def __len__(self) -> int:
        if not self._exists():
            return 0
        rows = self._call(
            "count the entries",
            self._client.query,
            self._collection,
            filter="",
            output_fields=["count(*)"],
            consistency_level=self._consistency,
            timeout=self._timeout,
        )
        return int(rows[0]["count(*)"])

    # ------------------------------------------------------------- writing

    def add(self, embeddings, labels=None, ids=None, data: Sequence[Any] | None = None) -> np.ndarray:
        """Upserts ``n`` entries (an id already present is replaced); returns their ids (int64 ``[n]``).

        Args:
            embeddings: ``[n, dim]`` finite real values, ``||x|| <= 6.5e18``.
            labels: ``[n]`` integers >= -1 (-1 = unlabelled); default all -1.
            ids: ``[n]`` unique integers >= 0; default one past the largest id
                in the collection (a scan: pass ids for large collections).
            data: ``n`` payloads, each ``None``, ``bytes`` or JSON-serialisable
                (at most 65,536 bytes encoded).

        Raises:
            ValueError: wrong shape or dimension, NaN/inf or too large values,
                negative or repeated ids, bad labels or payloads. Nothing is
                written when it raises (a server failure midway may leave the
                earlier batches written: re-adding them is idempotent).
        """
        x, labels, given_ids, data = inputs.as_entries(embeddings, labels, ids, data)
        n = x.shape[0]
        payloads = [_encode(value, i) for i, value in enumerate(data)] if data is not None else [{"v": None}] * n
        if self._dim is not None and x.shape[1] != self._dim:
            raise ValueError(f"`embeddings` must have dim {self._dim} (the collection's), got shape {x.shape}.")
        if self._metric.normalizes:
            x = inputs.normalize_rows(x)
        if n == 0:
            return np.empty(0, np.int64)
        if not self._exists():
            self._create(x.shape[1])
        if x.shape[1] != self._dim:
            raise ValueError(f"`embeddings` must have dim {self._dim} (the collection's), got shape {x.shape}.")
        new_ids = self._next_ids(n) if given_ids is None else given_ids
        row_bytes = 4 * x.shape[1] + 64
        batch: list[dict] = []
        size = 0
        for i in range(n):
            payload_bytes = len(json.dumps(payloads[i], separators=(",", ":")))
            if batch and (size + row_bytes + payload_bytes > self._batch_bytes or len(batch) >= MAX_BATCH_ROWS):
                self._upsert(batch)
                batch, size = [], 0
            batch.append({"id": int(new_ids[i]), "vector": x[i], "label": int(labels[i]), "data": payloads[i]})
            size += row_bytes + payload_bytes
        self._upsert(batch)
        return new_ids.copy()

    def remove(self, ids) -> int:
        """Deletes the entries with these ids; returns how many were removed.

        Raises:
            ValueError: an id not in the collection, or a repeated id (nothing is removed).
        """
        ids = inputs.as_ids(ids, "ids", None)
        if len(ids) == 0:
            return 0
        present = self._present(ids)
        if not present.all():
            raise ValueError(f"`ids` not in the index: {ids[~present][:10].tolist()}.")
        for start in range(0, len(ids), MAX_IDS_PER_EXPRESSION):
            chunk = ids[start : start + MAX_IDS_PER_EXPRESSION].tolist()
            self._call("delete entries", self._client.delete, self._collection, ids=chunk, timeout=self._timeout)
        return len(ids)

    def flush(self) -> None:
        """Seals the collection's recent writes into persisted, indexed segments.

        Not needed for consistency (see the module docstring); useful before a
        benchmark or a backup. Servers rate-limit flushes: do not call it per batch.
        """
        if self._exists():
            self._call("flush", self._client.flush, self._collection, timeout=self._timeout)

    def drop(self) -> None:
        """Deletes the whole collection from Milvus (irreversible)."""
        if self._exists():
            self._call("drop the collection", self._client.drop_collection, self._collection, timeout=self._timeout)
            self._created = False

    def close(self) -> None:
        """Closes the connection (the collection stays in Milvus)."""
        self._client.close()

    def __enter__(self) -> "MilvusIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------- reading

    def search(self, queries, k: int = 10) -> SearchResult:
        """The nearest entries to each query, ``k`` clamped to the number of entries (module docstring).

        Args:
            queries: ``[q, dim]`` (or one ``[dim]`` vector) of finite values, ``||x|| <= 6.5e18``.
            k: number of neighbours, an integer >= 1.

        Raises:
            ValueError: bad ``k``, wrong dimension, bad values, or more than
                16,384 neighbours needed (Milvus's limit).
        """
        k = inputs.check_k(k)
        q = inputs.as_vectors(queries, "queries", allow_1d=True)
        if self._dim is not None and q.shape[1] != self._dim:
            raise ValueError(f"`queries` must have dim {self._dim} (the collection's), got shape {q.shape}.")
        if self._metric.normalizes:
            q = inputs.normalize_rows(q)
        if not self._exists():
            return empty_result(len(q), 0, False)
        if len(q) == 0:
            return empty_result(0, min(k, len(self)), False)
        limit = k
        if k > MAX_K:
            limit = len(self)
            if limit > MAX_K:
                raise ValueError(
                    f"`k` = {k} needs {limit} neighbours per query but Milvus returns at most {MAX_K}; lower k."
                )
            if limit == 0:
                return empty_result(len(q), 0, False)
        params = dict(self._search_params)
        if self._index_type == "HNSW" and "ef" in params:
            params["ef"] = max(int(params["ef"]), limit)
        hits: list = []
        step = max(1, min(1024, (1 << 16) // limit))
        for start in range(0, len(q), step):
            hits.extend(
                self._call(
                    "search",
                    self._client.search,
                    self._collection,
                    data=q[start : start + step],
                    limit=limit,
                    anns_field="vector",
                    output_fields=["label", "data"],
                    search_params={"metric_type": MILVUS_METRICS[self.metric], "params": params},
                    consistency_level=self._consistency,
                    timeout=self._timeout,
                )
            )
        return self._result(hits)

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, labels)`` of every entry, sorted by id (a scan of the collection)."""
        rows = self._scan(["label"])
        return _column(rows, "id", np.int64), _column(rows, "label", np.int64)

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(embeddings, ids, labels)`` of every entry, sorted by id (normalised rows for cosine).

        Reads the whole collection into memory: fine for what fits, not for a cluster's billions.
        """
        rows = self._scan(["vector", "label"])
        dim = self._dim or 0
        vectors = np.asarray([r["vector"] for r in rows], np.float32).reshape(len(rows), dim)
        return vectors, _column(rows, "id", np.int64), _column(rows, "label", np.int64)

    def get_data(self, ids) -> list[Any]:
        """The payloads of these ids (``None`` where none was given).

        Raises:
            ValueError: an id not in the index.
        """
        ids = inputs.as_int_vector(ids, "ids", None, minimum=0)
        found: dict[int, Any] = {}
        if self._exists():
            for chunk in _chunks(np.unique(ids)):
                rows = self._call(
                    "read payloads", self._client.get, self._collection, ids=chunk, output_fields=["data"],
                    timeout=self._timeout,
                )
                found.update({int(r["id"]): _decode(r.get("data")) for r in rows})
        missing = [int(i) for i in ids if int(i) not in found]
        if missing:
            raise ValueError(f"`ids` not in the index: {missing[:10]}.")
        return [found[int(i)] for i in ids]

    # ---------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike, *, metadata: dict | None = None) -> str:
        """Flushes the collection and writes how to reconnect to it (never the token) to ``path`` atomically.

        Args:
            path: a new or empty directory, or an index saved earlier (replaced).
            metadata: a JSON-serialisable dict stored in the manifest.

        Returns:
            The absolute path written.
        """
        metadata = None if metadata is None else persistence.check_metadata(metadata)
        path = os.path.abspath(os.fspath(path))
        self.flush()
        with persistence.atomic_directory(path) as tmp:
            persistence.write_manifest(
                tmp,
                {
                    "kind": self.kind,
                    "uri": self._public_uri,
                    "collection": self._collection,
                    "metric": self.metric,
                    "index_type": self._index_type,
                    "dim": self._dim,
                    "index_params": self._index_params,
                    "search_params": self._search_params,
                    "consistency_level": self._consistency,
                    "files": {},
                },
                metadata,
            )
        if metadata is not None:
            self._metadata = metadata
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, token: str | None = None, timeout: float = 30.0) -> "MilvusIndex":
        """Reconnects to the collection recorded by :meth:`save` (its manifest verified).

        Args:
            path: the saved directory.
            token: the credentials (they are never saved).
            timeout: seconds to wait for the server.

        Raises:
            IndexFileError: a missing, modified or non-Milvus manifest.
            MilvusConnectionError / ValueError: as for the constructor (e.g.
                the collection changed metric or dimension since).
        """
        directory = persistence.resolve(path)
        required = {
            "uri": str, "collection": str, "metric": str, "index_type": str, "index_params": dict,
            "search_params": dict, "consistency_level": str,
        }
        manifest = persistence.read_manifest(directory, required)
        if manifest.get("kind") != cls.kind:
            raise persistence.IndexFileError(
                f"{directory!r} holds a {manifest.get('kind', 'faiss')!r} index, not a Milvus one; load it with "
                "tfcontrast.index.load(path)."
            )
        index = cls(
            manifest["uri"],
            manifest["collection"],
            manifest["metric"],
            manifest["index_type"],
            token=token,
            dim=manifest.get("dim"),
            index_params=manifest["index_params"],
            search_params=manifest["search_params"],
            consistency_level=manifest["consistency_level"],
            timeout=timeout,
        )
        index._metadata = manifest.get("metadata", {})
        return index

    # ------------------------------------------------------------- internals

    def _connect(self):
        pymilvus = _pymilvus()
        if is_lite_uri(self._uri):
            try:
                import milvus_lite  # noqa: F401
            except ImportError:
                raise ImportError(
                    "A .db `uri` runs Milvus Lite, which needs the milvus-lite package: pip install \"tfcontrast[milvus]\"."
                ) from None
            os.makedirs(os.path.dirname(self._uri), exist_ok=True)
            _quiet_iterator_warning()
        try:
            return pymilvus.MilvusClient(uri=self._uri, token=self._token.reveal() or "", timeout=self._timeout)
        except Exception as err:  # noqa: BLE001 - pymilvus raises MilvusException, grpc errors, OSError
            raise MilvusConnectionError(
                f"Cannot connect to Milvus at {self._public_uri!r}: {self._scrub(str(err))}"
            ) from None

    def _scrub(self, text: str) -> str:
        return self._credentials.scrub(self._token.scrub(text))

    def _call(self, what: str, fn, *args, **kwargs):
        """Runs a client call; server errors become MilvusServerError / MilvusConnectionError, credentials hidden."""
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            message = self._scrub(str(err))
            if "unavailable" in message.lower() or "fail connecting" in message.lower():
                raise MilvusConnectionError(f"Milvus at {self._public_uri!r} is unreachable ({what}): {message}") from None
            raise MilvusServerError(
                f"Milvus at {self._public_uri!r} refused to {what} on collection {self._collection!r}: {message}"
            ) from None

    _created = False

    def _exists(self) -> bool:
        """Whether the collection exists (adopting it, checked, if another client created it since)."""
        if not self._created and self._call("check the collection", self._client.has_collection, self._collection):
            self._check_existing()
        return self._created

    def _create(self, dim: int) -> None:
        """Creates the collection (or adopts one another client created meanwhile)."""
        with self._create_lock:
            if self._created:
                return
            pymilvus = _pymilvus()
            client = self._client
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
            schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("label", pymilvus.DataType.INT64)
            schema.add_field("data", pymilvus.DataType.JSON)
            index_params = client.prepare_index_params()
            index_params.add_index(
                "vector", index_type=self._index_type, metric_type=MILVUS_METRICS[self.metric], params=self._index_params
            )
            try:
                client.create_collection(
                    self._collection, schema=schema, index_params=index_params,
                    consistency_level=self._consistency, timeout=self._timeout,
                )
            except Exception as err:  # noqa: BLE001
                if not self._call("check the collection", client.has_collection, self._collection):
                    raise MilvusServerError(
                        f"Milvus at {self._public_uri!r} refused to create collection {self._collection!r} "
                        f"(index_type={self._index_type!r}, params={self._index_params}): {self._scrub(str(err))}"
                    ) from None
                self._check_existing()  # created meanwhile by another client
                return
            self._dim = dim
            self._created = True

    def _check_existing(self) -> None:
        """Adopts an existing collection after checking its schema, dimension, metric and index type."""
        where = f"collection {self._collection!r} at {self._public_uri!r}"
        info = self._call("describe the collection", self._client.describe_collection, self._collection)
        fields = {f["name"]: f for f in info.get("fields", [])}
        pymilvus = _pymilvus()
        kinds = {
            "id": pymilvus.DataType.INT64, "vector": pymilvus.DataType.FLOAT_VECTOR,
            "label": pymilvus.DataType.INT64, "data": pymilvus.DataType.JSON,
        }
        wrong = [
            name for name, kind in kinds.items() if name not in fields or fields[name].get("type") != kind
        ] + sorted(set(fields) - set(kinds))
        if wrong or not fields["id"].get("is_primary") or info.get("auto_id"):
            raise ValueError(
                f"{where} is not a tfcontrast collection (it needs fields id INT64 primary key without auto id, "
                f"vector FLOAT_VECTOR, label INT64, data JSON; these differ: {wrong or ['id']}). Choose another "
                "`collection` name."
            )
        dim = int(fields["vector"].get("params", {}).get("dim"))
        if self._dim is not None and dim != self._dim:
            raise ValueError(f"{where} holds {dim}-d vectors, but `dim` is {self._dim}.")
        indexes = self._call("describe the index", self._client.list_indexes, self._collection)
        if not indexes:
            raise ValueError(f"{where} has no vector index; tfcontrast collections are created with one.")
        described = self._call("describe the index", self._client.describe_index, self._collection, indexes[0])
        metric = str(described.get("metric_type", "")).upper()
        if metric != MILVUS_METRICS[self.metric]:
            names = {v: k for k, v in MILVUS_METRICS.items()}
            raise ValueError(
                f"{where} uses metric {metric} ({names.get(metric, 'unknown to tfcontrast')!r}), but `metric` is "
                f"{self.metric!r}."
            )
        index_type = str(described.get("index_type", "")).upper()
        if index_type != self._index_type:
            raise ValueError(f"{where} has index type {index_type}, but `index_type` is {self._index_type!r}.")
        state = self._call("read the load state", self._client.get_load_state, self._collection)
        if "NotLoad" in str(state.get("state")):
            self._call("load the collection", self._client.load_collection, self._collection, timeout=self._timeout)
        self._dim = dim
        self._created = True

    def _upsert(self, rows: list[dict]) -> None:
        if rows:
            self._call("write entries", self._client.upsert, self._collection, rows, timeout=self._timeout)

    def _next_ids(self, n: int) -> np.ndarray:
        ids = self._scan([])
        start = int(ids[-1]["id"]) + 1 if ids else 0
        return np.arange(start, start + n, dtype=np.int64)

    def _present(self, ids: np.ndarray) -> np.ndarray:
        found: set[int] = set()
        if self._exists():
            for chunk in _chunks(ids):
                rows = self._call(
                    "look up ids", self._client.query, self._collection, filter=f"id in {chunk}",
                    output_fields=["id"], consistency_level=self._consistency, timeout=self._timeout,
                )
                found.update(int(r["id"]) for r in rows)
        return np.array([int(i) in found for i in ids], bool)

    def _scan(self, fields: list[str]) -> list[dict]:
        """Every row (id plus ``fields``), sorted by id."""
        if not self._exists():
            return []
        iterator = self._call(
            "scan the collection", self._client.query_iterator, self._collection, batch_size=4096,
            filter="", output_fields=["id", *fields], consistency_level=self._consistency, timeout=self._timeout,
        )
        rows: list[dict] = []
        try:
            while True:
                batch = self._call("scan the collection", iterator.next)
                if not batch:
                    break
                rows.extend(batch)
        finally:
            iterator.close()
        rows.sort(key=lambda r: r["id"])
        return rows

    def _result(self, hits) -> SearchResult:
        q = len(hits)
        width = max((len(row) for row in hits), default=0)
        result = empty_result(q, width, False)
        scores = np.zeros((q, width), np.float32)
        found = np.zeros((q, width), bool)
        data = [[None] * width for _ in range(q)]
        any_data = False
        for i, row in enumerate(hits):
            for j, hit in enumerate(row):
                result.ids[i, j] = int(hit["id"])
                scores[i, j] = hit["distance"]
                entity = hit.get("entity", {})
                result.labels[i, j] = int(entity.get("label", -1))
                value = _decode(entity.get("data"))
                data[i][j] = value
                any_data = any_data or value is not None
                found[i, j] = True
        result.distances[found] = self._metric.distances(scores)[found]
        return SearchResult(result.ids, result.distances, result.labels, data if any_data else None)


def _uri_password(uri: str) -> str | None:
    if is_lite_uri(uri):
        return None
    parts = urllib.parse.urlsplit(uri)
    return parts.password or parts.username


def _encode(value: Any, i: int) -> dict:
    encoded = {"v": inputs.encode_payload(value)}
    if len(json.dumps(encoded, separators=(",", ":"))) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"`data[{i}]` is larger than Milvus's {MAX_PAYLOAD_BYTES} bytes per JSON value once encoded.")
    return encoded


def _decode(stored: Any) -> Any:
    if isinstance(stored, str):  # some servers return JSON fields as text
        stored = json.loads(stored)
    if not isinstance(stored, dict) or "v" not in stored:
        return None
    return inputs.decode_payload(stored["v"])


def _column(rows: list[dict], key: str, dtype) -> np.ndarray:
    return np.fromiter((r[key] for r in rows), dtype=dtype, count=len(rows))


def _chunks(ids: np.ndarray):
    for start in range(0, len(ids), MAX_IDS_PER_EXPRESSION):
        yield [int(i) for i in ids[start : start + MAX_IDS_PER_EXPRESSION]]


def _quiet_iterator_warning() -> None:
    global _iterator_filter_installed
    with _iterator_filter_lock:
        if not _iterator_filter_installed:
            logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_QuietIteratorWarning())
            logging.getLogger("grpc._server").addFilter(_QuietUnimplemented())
            _iterator_filter_installed = True
