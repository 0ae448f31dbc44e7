"""``SearchIndex``: the one interface of every index, its ``SearchResult``, and loading any saved index.

An index holds entries: a vector, an integer id >= 0, an integer label (-1 =
unlabelled) and an optional payload (``None``, ``bytes`` or a JSON value).
Every implementation (the faiss :class:`~tfcontrast.index.Index` with its
exact / hnsw / ivf backends, :class:`~tfcontrast.index.MilvusIndex`) provides:

===========================================  ==================================================
member                                       contract
===========================================  ==================================================
``metric``                                   ``"cosine"``, ``"inner_product"`` or ``"euclidean"``
                                             (:mod:`tfcontrast.index.metrics`; smaller is closer)
``dim``                                      the vector size, ``None`` until known
``len(index)``                               number of live entries
``add(embeddings, labels, ids, data)``       adds ``[n, dim]`` vectors; returns their int64 ids
``search(queries, k)``                       a :class:`SearchResult`, nearest first
``remove(ids)``                              removes entries; returns how many
``entries()``                                ``(ids, labels)`` of every live entry
``save(path, metadata=None)``                writes the index (faiss) or how to reconnect to it
                                             (Milvus) atomically; returns the absolute path
``load(path, **kwargs)`` (classmethod)       the inverse of ``save``
``persistent``                               ``True`` when the entries live outside the process
                                             (a database) and survive it without ``save``
``to_arrays()`` (where vectors can be        ``(embeddings, ids, labels)`` of every live entry
enumerated: both backends)                   (normalised rows for cosine)
===========================================  ==================================================

**k semantics (the same for every index and for NearestNeighbors).** ``k`` is
an integer >= 1 with no upper bound, and is *clamped to the number of
entries*: ``search(queries, k)`` returns ``[q, min(k, len(index))]`` arrays
(``[q, 0]`` for an empty index), so a huge ``k`` costs nothing and means
"all of them". Within those columns an approximate backend may still return
fewer real neighbours than asked; the missing ones are padding: id -1,
distance ``inf``, label -1, payload ``None``. :func:`pad_columns` widens a
result to exactly ``k`` columns with that padding when a caller needs a
fixed width.

Any saved index loads with :func:`load` (it reads which kind wrote it from
the manifest). Whatever the kind, evaluation (:func:`tfcontrast.index.evaluate_retrieval`,
:func:`~tfcontrast.index.knn_accuracy`), :meth:`NearestNeighbors.from_index`,
the callbacks, :func:`~tfcontrast.index.build_from_dataset` and
``export_saved_model(index=...)`` accept any ``SearchIndex``.

Example:
    >>> import numpy as np
    >>> from tfcontrast.index import Index
    >>> idx = Index("euclidean")
    >>> isinstance(idx, SearchIndex)
    True
    >>> _ = idx.add(np.eye(2), labels=[3, 4])
    >>> idx.search([[1.0, 0.0]], k=10**9).ids.tolist()  # clamped to the 2 entries
    [[0, 1]]
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """Neighbours of ``q`` queries, nearest first, in ``w = min(k, len(index))`` columns.

    Attributes:
        ids: ``[q, w]`` int64 entry ids, -1 for padding.
        distances: ``[q, w]`` float32 distances (package convention), ``inf`` for padding.
        labels: ``[q, w]`` int64 labels, -1 for padding or unlabelled entries.
        data: ``q`` lists of ``w`` payloads (``None`` for padding and entries
            without one), or ``None`` when the index holds no payloads (Milvus:
            when none of the returned entries has one).
    """

    ids: np.ndarray
    distances: np.ndarray
    labels: np.ndarray
    data: list[list[Any]] | None = None


@runtime_checkable
class SearchIndex(Protocol):
    """The interface every index implements (module docstring)."""

    @property
    def metric(self) -> str: ...

    @property
    def dim(self) -> int | None: ...

    @property
    def persistent(self) -> bool: ...

    def __len__(self) -> int: ...

    def add(self, embeddings, labels=None, ids=None, data=None) -> np.ndarray: ...

    def search(self, queries, k: int = 10) -> SearchResult: ...

    def remove(self, ids) -> int: ...

    def entries(self) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, path: str | os.PathLike, *, metadata: dict | None = None) -> str: ...

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs) -> "SearchIndex": ...


def empty_result(q: int, k: int, with_data: bool) -> SearchResult:
    """``q`` rows of ``k`` padding entries (id -1, distance inf, label -1, payload None)."""
    return SearchResult(
        ids=np.full((q, k), -1, np.int64),
        distances=np.full((q, k), np.inf, np.float32),
        labels=np.full((q, k), -1, np.int64),
        data=[[None] * k for _ in range(q)] if with_data else None,
    )


def pad_columns(result: SearchResult, k: int) -> SearchResult:
    """``result`` widened to ``k`` columns with padding (returned as is when already that wide)."""
    q, width = result.ids.shape
    if width >= k:
        return result
    pad = empty_result(q, k - width, result.data is not None)
    return SearchResult(
        ids=np.concatenate([result.ids, pad.ids], axis=1),
        distances=np.concatenate([result.distances, pad.distances], axis=1),
        labels=np.concatenate([result.labels, pad.labels], axis=1),
        data=None if result.data is None else [row + extra for row, extra in zip(result.data, pad.data)],
    )


def check_searchable(index, name: str = "index") -> None:
    """Raises ``TypeError`` unless ``index`` has ``search`` and ``entries`` (a SearchIndex or NearestNeighbors)."""
    missing = [m for m in ("search", "entries", "metric") if not hasattr(index, m)]
    if missing:
        raise TypeError(
            f"`{name}` must be a SearchIndex (tfcontrast.index.Index, MilvusIndex) or a NearestNeighbors "
            f"layer; a {type(index).__name__} has no {', '.join(missing)}."
        )


# ------------------------------------------------------------------ loading

_KINDS: dict[str, type] = {}


def register_index(kind: str) -> Callable[[type], type]:
    """Class decorator: the ``SearchIndex`` class whose ``load`` reads manifests of this ``kind``."""

    def decorate(cls: type) -> type:
        if kind in _KINDS and _KINDS[kind] is not cls:
            raise ValueError(f"index kind {kind!r} is already registered by {_KINDS[kind].__name__}.")
        _KINDS[kind] = cls
        cls.kind = kind
        return cls

    return decorate


def index_kinds() -> dict[str, type]:
    """``{kind: class}`` of every registered index."""
    return dict(_KINDS)


def load(path: str | os.PathLike, **kwargs) -> SearchIndex:
    """Loads any saved index: the kind named in its (verified) manifest chooses the class.

    Args:
        path: a directory written by some ``SearchIndex.save``.
        **kwargs: passed to that class's ``load`` when it takes them (e.g.
            ``token=`` for Milvus); the others are ignored, so a caller may
            always pass ``token=`` whatever the kind.

    Raises:
        IndexFileError (a ``ValueError``): no readable, verified manifest, or an unknown kind.
    """
    import inspect

    from tfcontrast.index import persistence

    kind = persistence.read_kind(path)
    if kind not in _KINDS:
        raise persistence.IndexFileError(
            f"{os.fspath(path)!r} holds an index of kind {kind!r}; this tfcontrast knows {sorted(_KINDS)}."
        )
    cls = _KINDS[kind]
    accepted = inspect.signature(cls.load).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        kwargs = {name: value for name, value in kwargs.items() if name in accepted}
    return cls.load(path, **kwargs)
