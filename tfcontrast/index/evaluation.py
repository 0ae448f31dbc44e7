"""Retrieval metrics over an index: recall@k, precision@k, mAP@R and weighted kNN accuracy.

For a query with label y, its ranked neighbours n_1, n_2, ... (nearest first)
and rel_j = 1 if label(n_j) == y else 0:

* **recall@k** (the metric-learning definition, as in Musgrave et al. and
  Oh Song et al., "Deep Metric Learning via Lifted Structured Feature
  Embedding", CVPR 2016): 1 if any of the k nearest has the query's label,
  else 0; averaged over queries. (Not the information-retrieval recall
  "fraction of all relevant items found".)
* **precision@k**: (1/k) sum_{j<=k} rel_j, averaged over queries; missing
  neighbours (an index smaller than k) count as irrelevant.
* **mAP@R** (Musgrave, Belongie, Lim, "A Metric Learning Reality Check",
  ECCV 2020): with R the number of references carrying the query's label,
  MAP@R = (1/R) sum_{i<=R} P(i) rel_i, where P(i) is the precision at i;
  averaged over queries. It rewards ranking all R relevant references first.
* **kNN accuracy** (weighted vote, Wu et al., "Unsupervised Feature Learning
  via Non-Parametric Instance Discrimination", CVPR 2018; the DINO/SimCLR
  kNN monitor): each of the k nearest votes for its label with weight
  w_j = exp(-d_j / T) (T = ``temperature``, default 0.07). For cosine this is
  exp((s_j - 1) / T), proportional to Wu et al.'s exp(s_j / T) with s the
  cosine similarity. The prediction is the label with the largest total
  weight (ties: the smallest label); a query with no labelled neighbour is
  counted wrong.

**Leave-one-out.** When the queries are the indexed embeddings themselves,
pass ``exclude_self=True``: each query's own entry (matched by id, from
``query_ids``, by default the index's ids in insertion order, so query i is
entry i) is dropped from its neighbours, and R counts the other references
with the label. Without it every query finds itself at distance 0.

Queries whose label no reference carries (R = 0) have no defined mAP@R and can
never be recalled; they are left out of every average (as in
pytorch-metric-learning's ``AccuracyCalculator``). Unlabelled references
(label -1) never match. ``index`` is any
:class:`~tfcontrast.index.SearchIndex` (the faiss ``Index``, ``MilvusIndex``)
or a :class:`~tfcontrast.index.NearestNeighbors`; with an approximate backend
the metrics measure the approximate ranking. An index smaller than the depth
a metric needs (``k``, or R for mAP@R) counts the missing neighbours as
irrelevant (the search clamps ``k`` to the number of entries; the result is
padded here).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tfcontrast.index import inputs
from tfcontrast.index.search_index import check_searchable, pad_columns

# Queries per search call, so [batch, max R] arrays stay small.
_MAX_CELLS = 1 << 22


def evaluate_retrieval(
    index,
    queries,
    labels,
    ks: Sequence[int] = (1, 5, 10),
    *,
    exclude_self: bool = False,
    query_ids=None,
) -> dict[str, float]:
    """recall@k and precision@k for every k in ``ks``, and mAP@R (module docstring).

    Args:
        index: a ``SearchIndex`` or ``NearestNeighbors`` holding labelled references.
        queries: ``[q, dim]`` query embeddings.
        labels: ``[q]`` integer query labels >= 0.
        ks: cut-offs, integers >= 1.
        exclude_self: leave-one-out (drop each query's own entry, by id).
        query_ids: ``[q]`` ids of the queries' own entries (``exclude_self``
            only); default the index's ids in insertion order.

    Returns:
        ``{"recall@k": ..., "precision@k": ..., ..., "map@r": ...}`` (floats in [0, 1]).

    Raises:
        ValueError: bad ``ks``, labels, shapes, or no query has a relevant reference.
    """
    ks = _check_ks(ks)
    q, y, ref_ids, ref_labels, qids = _prepare(index, queries, labels, exclude_self, query_ids)
    r = _relevant_counts(ref_ids, ref_labels, y, qids)
    valid = r > 0
    if not valid.any():
        raise ValueError("No query label occurs among the index's labelled references: nothing to evaluate.")
    q, y, r = q[valid], y[valid], r[valid]
    qids = None if qids is None else qids[valid]
    depth = max(max(ks), int(r.max()))
    hits = {k: 0.0 for k in ks}
    precision = {k: 0.0 for k in ks}
    ap_sum = 0.0
    for rows in _batches(len(q), depth):
        _, _, nbr_labels = _neighbours(index, q[rows], depth, qids if qids is None else qids[rows])
        rel = nbr_labels == y[rows, None]
        for k in ks:
            hits[k] += float(rel[:, :k].any(axis=1).sum())
            precision[k] += float((rel[:, :k].sum(axis=1) / k).sum())
        ap_sum += float(_average_precision_at_r(rel, r[rows]).sum())
    n = len(q)
    out = {}
    for k in ks:
        out[f"recall@{k}"] = hits[k] / n
        out[f"precision@{k}"] = precision[k] / n
    out["map@r"] = ap_sum / n
    return out


def knn_accuracy(
    index,
    queries,
    labels,
    k: int = 20,
    *,
    temperature: float = 0.07,
    exclude_self: bool = False,
    query_ids=None,
) -> float:
    """Accuracy of the distance-weighted k-NN vote, w_j = exp(-d_j / temperature).

    Args:
        index: a ``SearchIndex`` or ``NearestNeighbors`` holding labelled references.
        queries: ``[q, dim]`` query embeddings.
        labels: ``[q]`` integer query labels >= 0.
        k: voters per query, >= 1.
        temperature: T > 0 of the weights (module docstring).
        exclude_self: leave-one-out, as in :func:`evaluate_retrieval`.
        query_ids: ids of the queries' own entries (``exclude_self`` only).

    Returns:
        The fraction of queries whose predicted label equals their label.
    """
    k = inputs.check_k(k)
    if isinstance(temperature, bool) or not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"`temperature` must be a finite number > 0, got {temperature!r}.")
    q, y, _, _, qids = _prepare(index, queries, labels, exclude_self, query_ids)
    correct = 0
    for rows in _batches(len(q), k):
        _, dist, nbr = _neighbours(index, q[rows], k, qids if qids is None else qids[rows])
        correct += int((_weighted_vote(dist.astype(np.float64), nbr, temperature) == y[rows]).sum())
    return correct / len(q)


# ----------------------------------------------------------------- pieces


def _average_precision_at_r(rel: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per row: (1/R) sum_{i<=R} P(i) rel_i, with R = ``r[row]`` <= rel.shape[1]."""
    positions = np.arange(1, rel.shape[1] + 1)
    within = positions[None, :] <= r[:, None]
    rel = rel & within
    precision_at = np.cumsum(rel, axis=1) / positions[None, :]
    return (precision_at * rel).sum(axis=1) / r


def _weighted_vote(dist: np.ndarray, nbr_labels: np.ndarray, temperature: float) -> np.ndarray:
    """Label with the largest sum of exp(-d / T) per row; -1 when no labelled neighbour."""
    usable = (nbr_labels >= 0) & np.isfinite(dist)
    # exp(-(d - d_min) / T): the same argmax as exp(-d / T), without underflow.
    d_min = np.where(usable, dist, np.inf).min(axis=1, keepdims=True)
    d_min = np.where(np.isfinite(d_min), d_min, 0.0)
    weights = np.where(usable, np.exp(-(np.where(usable, dist, d_min) - d_min) / temperature), 0.0)
    classes = np.unique(nbr_labels[usable])
    if len(classes) == 0:
        return np.full(len(dist), -1, np.int64)
    column = np.searchsorted(classes, np.where(usable, nbr_labels, classes[0]))
    votes = np.zeros((len(dist), len(classes)))
    np.add.at(votes, (np.repeat(np.arange(len(dist)), dist.shape[1]), column.ravel()), weights.ravel())
    predicted = classes[votes.argmax(axis=1)]
    return np.where(usable.any(axis=1), predicted, -1)


def _prepare(index, queries, labels, exclude_self: bool, query_ids):
    check_searchable(index)
    q = inputs.as_vectors(queries, "queries", allow_1d=False)
    y = inputs.as_int_vector(labels, "labels", len(q), minimum=0)
    ref_ids, ref_labels = index.entries()
    if len(q) == 0:
        raise ValueError("`queries` is empty: nothing to evaluate.")
    if not (ref_labels >= 0).any():
        raise ValueError("The index holds no labelled references (every label is -1); add labels to evaluate.")
    qids = None
    if exclude_self:
        if query_ids is None:
            if len(q) != len(ref_ids):
                raise ValueError(
                    f"`exclude_self` without `query_ids` needs the queries to be the index's entries in order "
                    f"({len(ref_ids)} rows), got {len(q)}; pass `query_ids`."
                )
            qids = ref_ids.astype(np.int64)
        else:
            qids = inputs.as_int_vector(query_ids, "query_ids", len(q), minimum=0)
    elif query_ids is not None:
        raise ValueError("`query_ids` is only used with `exclude_self=True`.")
    return q, y, ref_ids, ref_labels, qids


def _relevant_counts(ref_ids, ref_labels, y, qids) -> np.ndarray:
    """R per query: references with the query's label, minus the query itself if excluded."""
    classes, counts = np.unique(ref_labels[ref_labels >= 0], return_counts=True)
    at = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
    r = np.where(classes[at] == y, counts[at], 0)
    if qids is not None:
        order = np.argsort(ref_ids)
        pos = np.minimum(np.searchsorted(ref_ids[order], qids), len(order) - 1)
        present = ref_ids[order][pos] == qids
        own_label = np.where(present, ref_labels[order][pos], -2)
        r = r - (own_label == y)
    return r


def _neighbours(index, queries, k: int, qids):
    """(ids, distances, labels) of the k nearest, padded to k columns, the query's own entry removed if ``qids``."""
    if qids is None:
        res = pad_columns(index.search(queries, k), k)
        return res.ids, res.distances, res.labels
    res = pad_columns(index.search(queries, k + 1), k + 1)
    is_self = res.ids == qids[:, None]
    # Stable sort puts the (at most one) self entry last, keeping the ranking.
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :k]
    take = lambda a: np.take_along_axis(a, keep, axis=1)  # noqa: E731
    return take(res.ids), take(res.distances), take(res.labels)


def _batches(n: int, depth: int):
    size = max(1, _MAX_CELLS // max(depth, 1))
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _check_ks(ks) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    ks = tuple(ks)
    if not ks:
        raise ValueError("`ks` must hold at least one cut-off k >= 1, got an empty sequence.")
    return tuple(inputs.check_k(k, "ks") for k in ks)
