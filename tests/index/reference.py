"""Independent brute-force k-NN written from the definitions with explicit loops (float64)."""

import math

from tests.test_distances import reference_distance as distance  # the package's loop reference


def knn(refs, ids, labels, queries, k, metric):
    """Per query: k (id, distance, label) nearest first, padded with (-1, inf, -1)."""
    out = []
    for q in queries:
        ranked = sorted((distance(q, r, metric), i, lab) for r, i, lab in zip(refs, ids, labels))[:k]
        ranked = [(i, d, lab) for d, i, lab in ranked]
        ranked += [(-1, math.inf, -1)] * (k - len(ranked))
        out.append(ranked)
    return out


def split(result):
    """(ids, distances, labels) lists of lists from `knn` output."""
    return (
        [[i for i, _, _ in row] for row in result],
        [[d for _, d, _ in row] for row in result],
        [[lab for _, _, lab in row] for row in result],
    )
