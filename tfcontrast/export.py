"""SavedModel export: an ``embed`` signature and, with an index, a ``lookup`` signature.

``export_saved_model(encoder, path, index=None)`` writes a TensorFlow
SavedModel that serving stacks (TF Serving, ``tf.saved_model.load``) use
without tfcontrast or Keras installed:

* ``embed``: ``inputs`` (the encoder's input shape, any batch size) ->
  ``{"embeddings": float32 [batch, dim]}``.
* ``lookup`` (only with ``index``): ``inputs`` ->
  ``{"ids": int64 [batch, k], "distances": float32 [batch, k],
  "labels": int64 [batch, k]}``, nearest first, with ``k`` fixed at export
  time and the conventions of :class:`tfcontrast.index.NearestNeighbors`
  (padding id -1 / distance inf / label -1; a non-finite embedding yields a
  padding row).

The lookup runs in the graph: a :class:`~tfcontrast.index.NearestNeighbors`
is exported as is; a faiss :class:`~tfcontrast.index.Index` has its live
vectors, ids and labels copied into one, so **the exported lookup is always
an exact search** (matrix product + top_k), even for an hnsw / ivf index. Its
cost and size grow with the index (n x dim float32 in the SavedModel): for
millions of vectors, serve the faiss index beside an ``embed``-only export.

The directory is written to a temporary name and swapped into place, so an
interrupted export leaves any previous one intact. An export replaces only a
new or empty path or an earlier export of ours (it holds the marker file
``tfcontrast_export.json``); any other existing folder is refused
(:mod:`tfcontrast.storage`).

Example:
    >>> export_saved_model(encoder, "/tmp/model", index=idx, k=5)  # doctest: +SKIP
    >>> loaded = tf.saved_model.load("/tmp/model")                  # doctest: +SKIP
    >>> loaded.signatures["lookup"](inputs=images)["ids"]           # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from tfcontrast.index.nearest_neighbors import NearestNeighbors
from tfcontrast.index.search_index import SearchIndex
from tfcontrast import storage


class _ServingModule(tf.Module):
    """Holds the encoder and the lookup layer so their variables are saved."""

    def __init__(self, encoder, lookup_layer: NearestNeighbors | None, spec: tf.TensorSpec):
        super().__init__(name="tfcontrast_serving")
        self.encoder = encoder
        self.lookup_layer = lookup_layer
        self.embed = tf.function(self._embed, input_signature=[spec])
        if lookup_layer is not None:
            self.lookup = tf.function(self._lookup, input_signature=[spec])

    def _embeddings(self, inputs):
        return tf.cast(self.encoder(inputs, training=False), tf.float32)

    def _embed(self, inputs):
        return {"embeddings": self._embeddings(inputs)}

    def _lookup(self, inputs):
        return self.lookup_layer(self._embeddings(inputs))


def export_saved_model(
    encoder,
    path: str | os.PathLike,
    index: SearchIndex | NearestNeighbors | None = None,
    *,
    k: int | None = None,
    input_signature: tf.TensorSpec | None = None,
) -> str:
    """Writes a SavedModel with signatures ``embed`` and (with ``index``) ``lookup``.

    Args:
        encoder: a Keras model (or layer) mapping inputs to ``[batch, dim]`` embeddings.
        path: the SavedModel directory: new, empty, or an earlier export (replaced atomically).
        index: an ``Index`` or a ``NearestNeighbors`` layer whose dimension is
            the encoder's output size; ``None`` exports ``embed`` only.
        k: neighbours returned by ``lookup``. Default: the layer's ``k``, or
            10 for an ``Index``. For a layer, a different ``k`` makes a copy.
        input_signature: the ``tf.TensorSpec`` of one input batch. Default:
            the encoder's input shape and dtype with a ``None`` batch dimension
            (needed for models without a known input, e.g. unbuilt subclasses).

    Returns:
        The absolute path written.

    Raises:
        ValueError: no input signature can be found, the encoder does not
            return one ``[batch, dim]`` tensor, the index is empty, or its
            dimension differs from the encoder's.
        tfcontrast.storage.RefusedPathError (a ``ValueError``): ``path`` is a
            folder that is not an earlier export, or the current, home or root
            directory.
    """
    spec = input_signature if input_signature is not None else _input_spec(encoder)
    if not isinstance(spec, tf.TensorSpec):
        raise ValueError(f"`input_signature` must be a tf.TensorSpec, got {type(spec).__name__}.")
    spec = tf.TensorSpec(shape=[None, *spec.shape[1:]], dtype=spec.dtype, name="inputs")
    out_dim = _output_dim(encoder, spec)
    layer = _lookup_layer(index, k)
    if layer is not None and layer.dim != out_dim:
        raise ValueError(f"`index` holds {layer.dim}-d embeddings but the encoder outputs {out_dim}-d ones.")
    module = _ServingModule(encoder, layer, spec)
    signatures = {"embed": module.embed.get_concrete_function()}
    if layer is not None:
        signatures["lookup"] = module.lookup.get_concrete_function()
    with storage.replace_directory(path, is_export, what="export") as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
        _write_marker(tmp)
    return storage.resolve_target(path)


MARKER = "tfcontrast_export.json"
MARKER_FORMAT = "tfcontrast.export"


def is_export(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` is a SavedModel written by :func:`export_saved_model` (it holds our marker)."""
    try:
        marker = json.loads(storage.read_regular_file(os.path.join(directory, MARKER), max_size=1 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT


def _write_marker(directory: str) -> None:
    from tfcontrast.version import __version__

    body = {"format": MARKER_FORMAT, "format_version": 1, "tfcontrast_version": __version__}
    with open(os.path.join(directory, MARKER), "w", encoding="utf-8") as f:
        json.dump(body, f, indent=2)


def _input_spec(encoder) -> tf.TensorSpec:
    inputs = getattr(encoder, "inputs", None)
    if inputs is None:
        raise ValueError(
            "`encoder` has no known input (an unbuilt or subclassed model); pass "
            "`input_signature=tf.TensorSpec([None, ...], dtype)`."
        )
    if len(inputs) != 1:
        raise ValueError(f"`encoder` must take one input tensor, it takes {len(inputs)}.")
    return tf.TensorSpec(shape=inputs[0].shape, dtype=inputs[0].dtype)


def _output_dim(encoder, spec: tf.TensorSpec) -> int:
    """The encoder's embedding size, checking it returns one [batch, dim] tensor."""
    symbolic = keras.KerasTensor(tuple(spec.shape), dtype=spec.dtype.name)
    try:
        out = encoder.compute_output_spec(symbolic) if hasattr(encoder, "compute_output_spec") else None
    except Exception:  # noqa: BLE001 - fall back to a traced call below
        out = None
    if out is None:
        out = tf.function(lambda x: encoder(x, training=False)).get_concrete_function(spec).structured_outputs
    if not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[-1] is None:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"`encoder` must return one [batch, dim] tensor with a known dim, got {shape}.")
    return int(out.shape[-1])


def _lookup_layer(index, k: int | None) -> NearestNeighbors | None:
    if index is None:
        if k is not None:
            raise ValueError("`k` is only used with an `index`.")
        return None
    if isinstance(index, NearestNeighbors):
        if k is None or k == index.k:
            return index
        embeddings, ids, labels = index.to_arrays()
        return NearestNeighbors(embeddings, labels=labels, k=k, metric=index.metric, ids=ids)
    if callable(getattr(index, "to_arrays", None)):  # any SearchIndex that can enumerate its vectors
        return NearestNeighbors.from_index(index, k=10 if k is None else k)
    raise ValueError(f"`index` must be a tfcontrast SearchIndex with to_arrays() or NearestNeighbors, got {type(index).__name__}.")
