"""Similarity search: one ``SearchIndex`` interface, faiss and Milvus indexes, an in-graph layer, metrics.

==============================  ================================================  =========================
name                            what                                              module
==============================  ================================================  =========================
``SearchIndex``                 the interface of every index (add / search /      ``search_index``
                                remove / len / metric / save / load / entries)
``SearchResult``                ``ids``, ``distances``, ``labels``, ``data``      ``search_index``
``load``                        loads any saved index (faiss or Milvus)           ``search_index``
``Index``                       faiss on one machine: exact / hnsw / ivf          ``faiss_index``,
                                backends, ids, labels, payloads, thread-safe,     ``backends/``
                                atomic checksummed save / load
``MilvusIndex``                 Milvus (Lite in-process from a file, or a         ``milvus_index``
                                cluster from a URI): the same interface
``NearestNeighbors``            exact k-NN Keras layer (matmul + top_k, XLA)      ``nearest_neighbors``
``build_from_dataset``          embeds a ``tf.data`` stream into any index in     ``build``
                                batches: progress, resume after a kill, shards
``image_files``,                streaming image folders / globs (in order, with   ``images``
``decode_images``,              stable ids and paths; decoded lazily)
``image_dataset``
``evaluate_retrieval``          recall@k, precision@k, mAP@R                      ``evaluation``
``knn_accuracy``                distance-weighted k-NN vote accuracy              ``evaluation``
``IndexFileError``              a saved index that fails verification             ``persistence``
==============================  ================================================  =========================

Distances everywhere follow :mod:`tfcontrast.index.metrics` (smaller is closer):
cosine = 1 - cos, euclidean = ||a - b||, inner_product = -<a, b>. ``k`` is
clamped to the number of entries by every index (see :mod:`.search_index`).

    from tfcontrast import index
    idx = index.Index(metric="cosine", backend="hnsw")     # or index.MilvusIndex("runs/demo/milvus.db")
    idx.add(embeddings, labels=labels)
    res = idx.search(queries, k=10)          # res.ids, res.distances, res.labels
    index.evaluate_retrieval(idx, queries, query_labels, ks=(1, 5, 10))
    layer = index.NearestNeighbors.from_index(idx, k=10)   # exact, in-graph
"""

from tfcontrast.index.build import BuildProgress, build_from_dataset
from tfcontrast.index.evaluation import evaluate_retrieval, knn_accuracy
from tfcontrast.index.faiss_index import Index
from tfcontrast.index.images import decode_images, image_dataset, image_files
from tfcontrast.index.milvus_index import MilvusIndex
from tfcontrast.index.nearest_neighbors import NearestNeighbors
from tfcontrast.index.persistence import IndexFileError
from tfcontrast.index.search_index import SearchIndex, SearchResult, load

__all__ = [
    "BuildProgress",
    "Index",
    "IndexFileError",
    "MilvusIndex",
    "NearestNeighbors",
    "SearchIndex",
    "SearchResult",
    "build_from_dataset",
    "decode_images",
    "evaluate_retrieval",
    "image_dataset",
    "image_files",
    "knn_accuracy",
    "load",
]
