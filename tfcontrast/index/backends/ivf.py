"""``ivf``: an inverted file over a k-means coarse quantizer (``IndexIVFFlat``).

Jégou, Douze, Schmid, "Product quantization for nearest neighbor search",
IEEE TPAMI 2011 (the inverted-file structure; vectors stored uncompressed).

Parameters: ``nlist`` (number of lists, default 100) and ``nprobe`` (lists
visited per query, default 8). The quantizer is trained on the first ``add``,
which must therefore hold at least ``nlist`` vectors (faiss asks for ~39 per
list for good centroids). Slots are stored as the vectors' faiss ids, so
``remove`` deletes them from the inverted lists; when removed slots outnumber
live ones the lists are refilled from the live vectors (the trained quantizer
is kept). Approximate: with ``nprobe < nlist`` it may miss true neighbours
and return fewer than asked (padding).
"""

from __future__ import annotations

import faiss
import numpy as np

from tfcontrast.index.backends.base import FaissBackend, register_backend


@register_backend
class IVFBackend(FaissBackend):
    """Inverted file, trained on the first add (module docstring)."""

    name = "ivf"
    defaults = {"nlist": 100, "nprobe": 8}
    faiss_class = faiss.IndexIVFFlat

    @classmethod
    def check_first_add(cls, params: dict[str, int], n: int) -> None:
        if n < params["nlist"]:
            raise ValueError(
                f"`embeddings` has {n} rows, but the ivf backend trains its quantizer on the first `add`, which "
                f"needs at least nlist={params['nlist']} vectors. Add more at once or lower nlist."
            )

    def create(self):
        quantizer = faiss.IndexFlat(self.dim, self.faiss_metric)
        return faiss.IndexIVFFlat(quantizer, self.dim, self.params["nlist"], self.faiss_metric)

    def configure(self) -> None:
        self.index.nprobe = self.params["nprobe"]

    def add(self, x: np.ndarray, first_slot: int) -> None:
        if not self.index.is_trained:
            self.index.train(x)
        self.index.add_with_ids(x, np.arange(first_slot, first_slot + len(x), dtype=np.int64))

    def remove(self, slots: np.ndarray, alive: np.ndarray) -> bool:
        self.index.remove_ids(slots)
        if not self.too_many_removed(alive):
            return False
        live = self.vectors(len(alive))[alive]
        self.index.reset()  # keeps the trained quantizer
        self.index.add_with_ids(live, np.arange(len(live), dtype=np.int64))
        return True

    def vectors(self, n_slots: int) -> np.ndarray:
        """By slot from the inverted lists; removed slots are zeros."""
        out = np.zeros((n_slots, self.dim), np.float32)
        invlists = self.index.invlists
        for list_no in range(self.index.nlist):
            size = invlists.list_size(list_no)
            if size == 0:
                continue
            slots = faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy()
            codes = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * invlists.code_size)
            out[slots] = np.frombuffer(codes.tobytes(), np.float32).reshape(size, self.dim)
        return out

    def stored_count(self, slots: int, live: int) -> int:
        return live
