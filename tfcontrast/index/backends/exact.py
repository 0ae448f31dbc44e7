"""``exact``: brute-force search over every stored vector (``IndexFlatIP`` / ``IndexFlatL2``).

No parameters. ``remove`` compacts the storage (an O(n) copy per call), so the
slots are always exactly the live entries. Results are exact: the true ``k``
nearest, never padding within ``min(k, len(index))`` columns.

For ``euclidean``, faiss's brute force expands ``||q||^2 + ||x||^2 - 2 <q, x>``
(BLAS); near 0 its cancellation error, through the square root, reaches ~1e-2
for vectors of norm ~30, while hnsw / ivf compute the difference directly. The
squared distances of the ``q * k`` winners are therefore recomputed from the
difference vectors and re-sorted (O(q k dim), a few percent of the search),
so this backend agrees with the others and with ``NearestNeighbors``.
"""

from __future__ import annotations

import faiss
import numpy as np

from tfcontrast.index.backends.base import FaissBackend, register_backend


@register_backend
class ExactBackend(FaissBackend):
    """Brute force (module docstring)."""

    name = "exact"
    defaults = {}
    faiss_class = faiss.IndexFlat
    keeps_removed = False

    def create(self):
        return faiss.IndexFlat(self.dim, self.faiss_metric)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, slots = self.index.search(q, k)
        if self.metric.squared_l2:
            scores, slots = self._recompute_squared_l2(q, slots)
        return scores, slots

    def remove(self, slots: np.ndarray, alive: np.ndarray) -> bool:
        self.index.remove_ids(slots)
        return True

    def _recompute_squared_l2(self, q: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """||q - x||^2 of the winners computed directly, re-sorted (module docstring)."""
        stored = faiss.rev_swig_ptr(self.index.get_xb(), self.index.ntotal * self.dim)
        stored = stored.reshape(self.index.ntotal, self.dim)
        missing = slots < 0
        diff = stored[np.where(missing, 0, slots)] - q[:, None, :]
        squared = np.einsum("qkd,qkd->qk", diff, diff)
        squared[missing] = np.inf
        order = np.argsort(squared, axis=1, kind="stable")
        return np.take_along_axis(squared, order, axis=1), np.take_along_axis(slots, order, axis=1)
