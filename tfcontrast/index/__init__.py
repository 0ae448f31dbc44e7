"""Similarity search: an in-graph Keras lookup layer, a faiss index, retrieval metrics.

==============================  ==============================================  =========================
name                            what                                            module
==============================  ==============================================  =========================
``NearestNeighbors``            exact k-NN Keras layer (matmul + top_k, XLA)    ``nearest_neighbors``
``Index``                       faiss index: exact / hnsw / ivf, ids, labels,   ``faiss_index``
                                payloads, thread-safe, atomic save / load
``SearchResult``                ``ids``, ``distances``, ``labels``, ``data``    ``faiss_index``
``evaluate_retrieval``          recall@k, precision@k, mAP@R                    ``evaluation``
``knn_accuracy``                distance-weighted k-NN vote accuracy            ``evaluation``
``IndexFileError``              a saved index that fails verification           ``persistence``
==============================  ==============================================  =========================

Distances everywhere follow :mod:`tfcontrast.distances` (smaller is closer):
cosine = 1 - cos, euclidean = ||a - b||, inner_product = -<a, b>.

    from tfcontrast import index
    idx = index.Index(metric="cosine", backend="hnsw")
    idx.add(embeddings, labels=labels)
    res = idx.search(queries, k=10)          # res.ids, res.distances, res.labels
    index.evaluate_retrieval(idx, queries, query_labels, ks=(1, 5, 10))
    layer = index.NearestNeighbors.from_index(idx, k=10)   # exact, in-graph
"""

from tfcontrast.index.evaluation import evaluate_retrieval, knn_accuracy
from tfcontrast.index.faiss_index import Index, SearchResult
from tfcontrast.index.nearest_neighbors import NearestNeighbors
from tfcontrast.index.persistence import IndexFileError

__all__ = ["Index", "IndexFileError", "NearestNeighbors", "SearchResult", "evaluate_retrieval", "knn_accuracy"]
