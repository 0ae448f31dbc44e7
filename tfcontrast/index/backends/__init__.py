"""The faiss backends of :class:`tfcontrast.index.Index`, one module each, in a registry.

=========  ====================  ==================================================
name       module                faiss index
=========  ====================  ==================================================
``exact``  :mod:`.exact`         ``IndexFlatIP`` / ``IndexFlatL2`` (brute force)
``hnsw``   :mod:`.hnsw`          ``IndexHNSWFlat`` (graph; tombstones on remove)
``ivf``    :mod:`.ivf`           ``IndexIVFFlat`` (inverted lists; trained on first add)
=========  ====================  ==================================================

A new backend is one module: a subclass of :class:`~.base.FaissBackend`
decorated with :func:`register_backend`, imported below. ``Index(backend=name)``,
its save/load and the shared contract tests (``tests/index/test_search_index.py``)
pick it up from :data:`BACKENDS`.
"""

from tfcontrast.index.backends.base import BACKENDS, FaissBackend, get_backend, register_backend
from tfcontrast.index.backends import exact, hnsw, ivf  # noqa: F401  (registers them)

__all__ = ["BACKENDS", "FaissBackend", "get_backend", "register_backend"]
