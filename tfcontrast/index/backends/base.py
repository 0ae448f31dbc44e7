"""``FaissBackend``: what one faiss index type does behind :class:`tfcontrast.index.Index`, and the registry.

The :class:`~tfcontrast.index.Index` owns the bookkeeping (ids, labels,
payloads, the readers-writer lock, the manifest) and knows its entries by
*slot*, their insertion position 0, 1, 2, ... A backend stores vectors by
slot and answers in slots:

* :meth:`FaissBackend.add` stores rows as slots ``first_slot, first_slot + 1, ...``;
* :meth:`FaissBackend.search` returns ``(scores, slots)`` of the ``k`` best per
  query (slot -1 where it found fewer), scores as in the metric table of
  :mod:`tfcontrast.index.metrics` (a similarity, or the squared L2 distance);
* :meth:`FaissBackend.remove` drops slots and says whether its storage was
  compacted to the live slots (renumbered 0.. in order), which the Index mirrors;
* :meth:`FaissBackend.vectors` returns the stored vectors by slot;
* :meth:`FaissBackend.serialize` / :meth:`FaissBackend.deserialize` go through
  ``faiss.serialize_index``, and a loaded index is checked against the manifest.

Vectors reach a backend already checked (finite, float32, C-contiguous,
normalised for cosine), under the Index's lock.
"""

from __future__ import annotations

from typing import ClassVar

import faiss
import numpy as np

from tfcontrast.index import inputs
from tfcontrast.index.metrics import Metric
from tfcontrast.index.persistence import IndexFileError

BACKENDS: dict[str, type["FaissBackend"]] = {}


def register_backend(cls: type["FaissBackend"]) -> type["FaissBackend"]:
    """Class decorator: makes ``Index(backend=cls.name)`` use ``cls``."""
    if not cls.name or cls.name in BACKENDS:
        raise ValueError(f"backend name {cls.name!r} is empty or already registered.")
    BACKENDS[cls.name] = cls
    return cls


def get_backend(name: str) -> type["FaissBackend"]:
    """The backend class registered as ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"`backend` must be one of {tuple(BACKENDS)}, got {name!r}.")
    return BACKENDS[name]


class FaissBackend:
    """Base of the faiss backends (module docstring).

    Class attributes a backend sets:
        name: its registry name (``Index(backend=name)``).
        defaults: its parameters (integers >= 1) and their default values.
        faiss_class: the faiss type a saved index must deserialise to.
        keeps_removed: removed slots may stay in its storage (tombstones or
            dead slots), so a saved ``alive`` mask may hold ``False``.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, int]] = {}
    faiss_class: ClassVar[type]
    keeps_removed: ClassVar[bool] = True

    def __init__(self, metric: Metric, dim: int, params: dict[str, int], index=None):
        self.metric = metric
        self.dim = dim
        self.params = params
        self.index = self.create() if index is None else index
        self.configure()

    # ------------------------------------------------------------ parameters

    @classmethod
    def check_params(cls, params: dict) -> dict[str, int]:
        """``params`` merged over :attr:`defaults`; unknown names or values < 1 raise ``ValueError``."""
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            raise ValueError(
                f"Unknown parameter(s) {unknown} for backend {cls.name!r}; it takes {sorted(cls.defaults) or 'none'}."
            )
        merged = dict(cls.defaults, **params)
        return {name: inputs.check_k(value, name) for name, value in merged.items()}

    @classmethod
    def check_first_add(cls, params: dict[str, int], n: int) -> None:
        """Raises ``ValueError`` when ``n`` vectors cannot start this backend (ivf: fewer than ``nlist``)."""

    @property
    def faiss_metric(self) -> int:
        return faiss.METRIC_L2 if self.metric.squared_l2 else faiss.METRIC_INNER_PRODUCT

    # ------------------------------------------------------------ operations

    def create(self):
        """A new, empty faiss index of this backend's type."""
        raise NotImplementedError

    def configure(self) -> None:
        """Applies the search-time parameters to ``self.index`` (after create and load)."""

    def add(self, x: np.ndarray, first_slot: int) -> None:
        """Stores the rows of ``x`` as slots ``first_slot, first_slot + 1, ...``."""
        self.index.add(x)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, slots)``, ``[q, k]`` each, best first; slot -1 where fewer were found."""
        return self.index.search(q, k)

    def remove(self, slots: np.ndarray, alive: np.ndarray) -> bool:
        """Drops ``slots`` (already ``False`` in ``alive``, the mask of all slots).

        Returns:
            ``True`` when the storage now holds exactly the live slots,
            renumbered ``0..`` in their old order.
        """
        raise NotImplementedError

    def on_alive_changed(self, alive: np.ndarray) -> None:
        """Called after every add and remove (and on load) with the mask of live slots."""

    def vectors(self, n_slots: int) -> np.ndarray:
        """``[n_slots, dim]`` float32 stored vectors by slot."""
        if n_slots == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.index.reconstruct_n(0, self.index.ntotal)

    def too_many_removed(self, alive: np.ndarray) -> bool:
        """Removed slots outnumber live ones: time to rebuild (amortised O(1) per removal)."""
        live = int(alive.sum())
        return len(alive) - live > live

    # --------------------------------------------------------- serialisation

    def serialize(self) -> bytes:
        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def deserialize(
        cls, metric: Metric, dim: int, params: dict[str, int], payload: bytes, slots: int, alive: np.ndarray
    ) -> "FaissBackend":
        """The backend of a saved index, checked against the manifest.

        Raises:
            IndexFileError: unreadable bytes, or a faiss index whose type,
                dimension, metric or size disagrees with the manifest.
        """
        try:
            index = faiss.deserialize_index(np.frombuffer(payload, np.uint8))
        except Exception as err:  # noqa: BLE001 - faiss raises RuntimeError on corrupt bytes
            raise IndexFileError(f"index.faiss is not a readable faiss index: {str(err)[:300]}") from None
        backend = cls.__new__(cls)
        backend.metric, backend.dim, backend.params = metric, dim, params
        expected = backend.stored_count(slots, int(alive.sum()))
        problems = []
        if not isinstance(index, cls.faiss_class):
            problems.append(f"a {type(index).__name__}, not the {cls.name} backend's type")
        if index.d != dim or index.metric_type != backend.faiss_metric:
            problems.append(f"dim {index.d} / metric type {index.metric_type}")
        if index.ntotal != expected:
            problems.append(f"{index.ntotal} vectors instead of {expected}")
        if not cls.keeps_removed and not alive.all():
            problems.append(f"removed entries, which the {cls.name} backend never keeps")
        if problems:
            raise IndexFileError(f"index.faiss disagrees with the manifest: {'; '.join(problems)}.")
        backend.index = index
        backend.configure()
        return backend

    def stored_count(self, slots: int, live: int) -> int:
        """How many vectors the faiss index holds for ``slots`` slots of which ``live`` are live."""
        return slots
