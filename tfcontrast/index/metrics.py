"""The metric table of every index: names, distance conventions, and how a backend's score becomes a distance.

Every index of :mod:`tfcontrast.index` (the faiss :class:`~tfcontrast.index.Index`,
:class:`~tfcontrast.index.MilvusIndex`, the in-graph
:class:`~tfcontrast.index.NearestNeighbors`) returns distances in the package
convention of :mod:`tfcontrast.distances`, **smaller is closer**, on the same
pairs up to float32 round-off. Search engines return a *score* instead (faiss
and Milvus alike: a similarity for cosine and inner product, the squared
distance for L2); :meth:`Metric.distances` converts it:

=================  ========================  ===========================  =======================
metric             distance d(q, x)          score s a backend returns    d from s
=================  ========================  ===========================  =======================
``cosine``         1 - cos(q, x), in [0, 2]  cos(q, x)                    clip(1 - s, 0, 2)
``inner_product``  -<q, x>                   <q, x>                       -s
``euclidean``      ||q - x|| (not squared)   ||q - x||^2                  sqrt(max(s, 0))
=================  ========================  ===========================  =======================

For ``cosine`` the vectors are L2-normalised as ``x / max(||x||, 1e-6)``
(:func:`tfcontrast.index.inputs.normalize_rows`, the floor of
:func:`tfcontrast.distances.l2_normalize`), so a zero vector is at distance 1
from everything.

Example:
    >>> import numpy as np
    >>> get_metric("euclidean").distances(np.array([[9.0, 16.0]], np.float32)).tolist()
    [[3.0, 4.0]]
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Metric:
    """One row of the metric table (module docstring).

    Attributes:
        name: the metric's name in tfcontrast.
        distance: the distance, as a formula.
        normalizes: rows are L2-normalised before they are stored or searched.
        squared_l2: the backend's score is the squared L2 distance (else a
            similarity: inner product of the, possibly normalised, rows).
    """

    name: str
    distance: str
    normalizes: bool
    squared_l2: bool
    _from_score: Callable[[np.ndarray], np.ndarray] = dataclasses.field(repr=False, compare=False)

    def distances(self, scores: np.ndarray) -> np.ndarray:
        """Package distances (float32) from the scores a backend returned."""
        return self._from_score(np.asarray(scores, np.float32)).astype(np.float32, copy=False)


METRICS: dict[str, Metric] = {
    "cosine": Metric("cosine", "1 - cos(q, x)", True, False, lambda s: np.clip(np.float32(1.0) - s, 0.0, 2.0)),
    "inner_product": Metric("inner_product", "-<q, x>", False, False, np.negative),
    "euclidean": Metric("euclidean", "||q - x||", False, True, lambda s: np.sqrt(np.maximum(s, np.float32(0.0)))),
}
METRIC_NAMES = tuple(METRICS)


def get_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str) or name not in METRICS:
        raise ValueError(f"`metric` must be one of {METRIC_NAMES}, got {name!r}.")
    return METRICS[name]
