"""``NearestNeighbors``: exact k-nearest-neighbour lookup as a Keras layer.

The reference embeddings, their ids and labels live in the layer as
non-trainable weights, so the lookup travels inside a ``.keras`` file or a
SavedModel and runs in the serving graph. A call is one matrix product and an
exact top-k over scores where larger is closer (for n >= 512 k references a
two-stage top-k over groups of 128, several times cheaper than one
``tf.math.top_k`` over all n; see ``NearestNeighbors._top_k``). Ties among
equal scores are broken arbitrarily:

=================  ===============================  =========================================
metric             score s(q, e)                    distance returned (package convention)
=================  ===============================  =========================================
``cosine``         <q/|q|, e/|e|>                   clip(1 - s, 0, 2)
``inner_product``  <q, e>                           -s
``euclidean``      2 <q, e> - ||e||^2               ||q - e||, recomputed directly
=================  ===============================  =========================================

so only the ``k`` winners pay for the distance transform (for euclidean the
``k`` distances are recomputed from the difference vectors and re-sorted,
because the expansion ||q||^2 - s loses precision near 0), and the distances
equal :func:`tfcontrast.distances.pairwise_distances` and
:class:`tfcontrast.index.Index` on the same pairs (up to float32 round-off).
Normalisation uses ``x / max(||x||, 1e-6)`` as everywhere in the package;
for ``cosine`` the stored embeddings are normalised once, at construction.

Edge cases (documented results, not errors, inside a graph):

* ``k`` larger than the number of references n is clamped to n: outputs are
  ``[batch, min(k, n)]`` (the rule of every index, see
  :mod:`tfcontrast.index.search_index`), so a huge ``k`` costs nothing.
* A query row holding NaN or inf, or whose norm exceeds 6.5e18 (its float32
  distances would overflow): eager calls raise ``ValueError``; inside a
  ``tf.function`` / SavedModel (where raising is not possible without a
  run-time assertion XLA cannot compile) that row comes back as padding
  (id -1, distance ``inf``, label -1).
* Unlabelled references have label -1.

Example:
    >>> import numpy as np
    >>> nn = NearestNeighbors(np.eye(3, dtype="float32"), labels=[5, 6, 7], k=2)
    >>> out = nn(np.array([[0.0, 1.0, 0.1]], "float32"))
    >>> out["ids"].numpy().tolist(), out["labels"].numpy().tolist()
    ([[1, 2]], [[6, 7]])
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfcontrast.index import inputs
from tfcontrast.index.metrics import METRIC_NAMES as METRICS
from tfcontrast.index.search_index import SearchResult
# References per group in the two-stage exact top-k (see `_top_k`).
_GROUP = 128


@keras.saving.register_keras_serializable(package="tfcontrast")
class NearestNeighbors(keras.layers.Layer):
    """Exact k-NN over fixed reference embeddings (see the module docstring).

    Args:
        embeddings: ``[n, dim]`` finite reference embeddings (n >= 1).
        labels: ``[n]`` integer labels >= -1 (-1 = unlabelled), default all -1.
        k: neighbours returned per query, an integer >= 1 (clamped to n).
        metric: ``"cosine"``, ``"inner_product"`` or ``"euclidean"``.
        ids: ``[n]`` unique integer ids >= 0 returned for each reference,
            default ``0..n-1``.
        **kwargs: Keras layer arguments (``name``...). The layer computes in
            float32 whatever the global dtype policy.

    Call:
        ``queries`` ``[batch, dim]`` -> ``{"ids": int64 [batch, w],
        "distances": float32 [batch, w], "labels": int64 [batch, w]}``,
        nearest first, with ``w = min(k, n)`` (:attr:`width`).

    Raises:
        ValueError: bad embeddings (shape, NaN/inf), labels, ids, ``k`` or
            metric; a query of the wrong dimension; NaN/inf queries (eager).
    """

    def __init__(self, embeddings, labels=None, k: int = 10, metric: str = "cosine", ids=None, **kwargs):
        kwargs["dtype"] = "float32"
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if metric not in METRICS:
            raise ValueError(f"`metric` must be one of {METRICS}, got {metric!r}.")
        self.k = inputs.check_k(k)
        self.metric = metric
        refs = inputs.as_vectors(embeddings, "embeddings")
        n, dim = refs.shape
        if n == 0:
            raise ValueError("`embeddings` must hold at least one reference, got 0 rows.")
        if metric == "cosine":
            refs = inputs.normalize_rows(refs)
        labels = np.full(n, -1, np.int64) if labels is None else inputs.as_labels(labels, "labels", n)
        ids = np.arange(n, dtype=np.int64) if ids is None else inputs.as_ids(ids, "ids", n)
        self.num_embeddings, self.dim = n, dim
        self.reference_embeddings = self._constant_weight("embeddings", refs, "float32")
        self.reference_ids = self._constant_weight("ids", ids, "int64")
        self.reference_labels = self._constant_weight("labels", labels, "int64")
        self.built = True

    @property
    def width(self) -> int:
        """Columns of every output: ``min(k, number of references)``."""
        return min(self.k, self.num_embeddings)

    @classmethod
    def from_index(cls, index, k: int = 10, **kwargs) -> "NearestNeighbors":
        """The live entries of any :class:`~tfcontrast.index.SearchIndex` with ``to_arrays`` as an exact in-graph layer.

        Ids, labels and metric are the index's; the search becomes exact
        whatever the index's backend (faiss hnsw / ivf, Milvus). The layer
        holds every vector: for millions of them, keep searching the index.

        Raises:
            TypeError: ``index`` cannot enumerate its vectors (no ``to_arrays``).
            ValueError: the index is empty.
        """
        if not callable(getattr(index, "to_arrays", None)) or not hasattr(index, "metric"):
            raise TypeError(
                f"`index` must be a SearchIndex with `to_arrays()` (Index, MilvusIndex), got {type(index).__name__}."
            )
        embeddings, ids, labels = index.to_arrays()
        if len(ids) == 0:
            raise ValueError("`index` is empty: NearestNeighbors needs at least one reference.")
        return cls(embeddings, labels=labels, k=k, metric=index.metric, ids=ids, **kwargs)

    def _constant_weight(self, name: str, value: np.ndarray, dtype: str):
        return self.add_weight(
            name=name,
            shape=value.shape,
            dtype=dtype,
            initializer=lambda shape, dtype=None: tf.constant(value),
            trainable=False,
        )

    def call(self, queries):
        return self._lookup(queries, self.width)

    def _lookup(self, queries, k: int) -> dict[str, tf.Tensor]:
        q = tf.cast(tf.convert_to_tensor(queries), tf.float32)
        if q.shape.rank != 2 or (q.shape[-1] is not None and q.shape[-1] != self.dim):
            raise ValueError(f"`queries` must have shape [batch, {self.dim}], got {q.shape}.")
        finite = tf.reduce_all(tf.math.is_finite(q), axis=1)
        # Finite rows whose squared norm overflows float32 distances are refused like NaN rows.
        in_range = tf.reduce_sum(tf.square(tf.where(finite[:, None], q, 0.0)), axis=1) <= inputs.MAX_SQUARED_NORM
        if tf.executing_eagerly() and not bool(tf.reduce_all(finite & in_range)):
            rows = np.flatnonzero(~finite.numpy())
            if len(rows):
                raise ValueError(f"`queries` holds NaN or inf in {len(rows)} row(s), first rows {rows[:5].tolist()}.")
            rows = np.flatnonzero(~in_range.numpy())
            raise ValueError(
                f"`queries` has {len(rows)} row(s) whose norm exceeds {inputs.MAX_NORM:.3g} (float32 distances "
                f"would overflow), first rows {rows[:5].tolist()}."
            )
        usable = finite & in_range
        q = tf.where(usable[:, None], q, tf.zeros_like(q))
        refs = tf.convert_to_tensor(self.reference_embeddings)
        if self.metric == "cosine":
            q = tf.math.l2_normalize(q, axis=1, epsilon=1e-12)
        top, positions = self._top_k(q, refs, min(k, self.num_embeddings))
        if self.metric == "cosine":
            distances = tf.clip_by_value(1.0 - top, 0.0, 2.0)
        elif self.metric == "inner_product":
            distances = -top
        else:
            # ||q - e|| of the k winners computed directly: the expansion
            # ||q||^2 - s loses ~1e-2 to cancellation near 0, through the sqrt.
            diff = tf.gather(refs, positions) - q[:, None, :]
            distances = tf.sqrt(tf.reduce_sum(tf.square(diff), axis=2))
            order = tf.argsort(distances, axis=1, stable=True)
            distances = tf.gather(distances, order, batch_dims=1)
            positions = tf.gather(positions, order, batch_dims=1)
        ids = tf.gather(self.reference_ids, positions)
        labels = tf.gather(self.reference_labels, positions)
        row_ok = usable[:, None]
        return {
            "ids": tf.where(row_ok, ids, tf.constant(-1, tf.int64)),
            "distances": tf.where(row_ok, distances, tf.constant(np.inf, tf.float32)),
            "labels": tf.where(row_ok, labels, tf.constant(-1, tf.int64)),
        }

    def _scores(self, q: tf.Tensor, refs: tf.Tensor) -> tf.Tensor:
        """``[batch, len(refs)]`` scores, larger is closer (module docstring)."""
        scores = tf.matmul(q, refs, transpose_b=True)
        if self.metric == "euclidean":
            scores = 2.0 * scores - tf.reduce_sum(tf.square(refs), axis=1)[None, :]
        return scores

    def _top_k(self, q: tf.Tensor, refs: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
        """Exact top-k scores and their positions, through group maxima when n is large.

        ``tf.math.top_k`` over a ``[batch, n]`` matrix costs more than the matrix
        product that made it. Instead, split the n scores of a row into groups
        of ``G`` (a reshape, no copy), keep each group's maximum (one
        vectorised pass), take the top-k groups by maximum and the top k
        among their ``k * G`` scores. Exact: every score above the k-th
        largest, v_k, lies in a group whose maximum is >= v_k, and at most k
        groups have such a maximum, so the k best groups hold the top k
        (with ties, values equal to v_k are taken from any of them). The last
        ``n mod G`` references are scored separately and join the candidates.
        """
        n = self.num_embeddings
        if n < 4 * k * _GROUP:
            return tf.math.top_k(self._scores(q, refs), k=k, sorted=True)
        n_main = n - n % _GROUP
        batch = tf.shape(q)[0]
        groups = tf.reshape(self._scores(q, refs[:n_main]), [batch, n_main // _GROUP, _GROUP])
        _, best = tf.math.top_k(tf.reduce_max(groups, axis=2), k=k, sorted=False)
        candidates = tf.reshape(tf.gather(groups, best, batch_dims=1), [batch, k * _GROUP])
        positions = tf.reshape(best[:, :, None] * _GROUP + tf.range(_GROUP)[None, None, :], [batch, k * _GROUP])
        if n_main < n:
            candidates = tf.concat([candidates, self._scores(q, refs[n_main:])], axis=1)
            tail = tf.range(n_main, n)[None, :] + tf.zeros_like(positions[:, :1])
            positions = tf.concat([positions, tail], axis=1)
        top, picked = tf.math.top_k(candidates, k=k, sorted=True)
        return top, tf.gather(positions, picked, batch_dims=1)

    def compute_output_spec(self, queries):
        batch = queries.shape[0]
        return {
            "ids": keras.KerasTensor((batch, self.width), dtype="int64"),
            "distances": keras.KerasTensor((batch, self.width), dtype="float32"),
            "labels": keras.KerasTensor((batch, self.width), dtype="int64"),
        }

    # ------------------------------------------------------ Index-like API

    def search(self, queries, k: int | None = None):
        """Eager search returning a :class:`tfcontrast.index.SearchResult` of NumPy arrays.

        ``k`` defaults to the layer's and is clamped to the number of
        references; the same conventions as :meth:`Index.search`.
        """
        k = self.k if k is None else inputs.check_k(k)
        q = inputs.as_vectors(queries, "queries", self.dim, allow_1d=True)
        out = self._lookup(q, k)
        return SearchResult(ids=out["ids"].numpy(), distances=out["distances"].numpy(), labels=out["labels"].numpy())

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, labels)`` of the references, as NumPy arrays."""
        return np.asarray(self.reference_ids.numpy()), np.asarray(self.reference_labels.numpy())

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(embeddings, ids, labels)`` of the references (normalised for cosine)."""
        return (np.asarray(self.reference_embeddings.numpy()), *self.entries())

    # ------------------------------------------------------- serialization

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("dtype", None)
        config.update({"k": self.k, "metric": self.metric, "num_embeddings": self.num_embeddings, "dim": self.dim})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "NearestNeighbors":
        """Rebuilds the layer with placeholder references; the saved weights then fill them."""
        config = dict(config)
        n, dim = config.pop("num_embeddings"), config.pop("dim")
        config.pop("dtype", None)
        placeholder = np.zeros((n, dim), np.float32)
        return cls(placeholder, ids=np.arange(n), **config)
