"""SavedModel export that TensorFlow's own tools run: ``embed``, ``lookup`` and the input contract.

``export_saved_model(encoder, path, index=None, k=None, contract=None)``
writes a TensorFlow SavedModel that ``saved_model_cli``, TF Serving, the
SavedModel C++ loader, ``tf.saved_model.load`` and the TFLite converter use
without tfcontrast (or Keras) installed. Its signatures, each with one input
``inputs`` (the encoder's input shape, any batch size):

===================  ==================================================  ==================
signature            outputs                                             when
===================  ==================================================  ==================
``serving_default``  = ``embed`` (what TF Serving calls by default)      always
``embed``            ``embeddings``: float32 ``[batch, dim]``            always
``lookup``           ``ids`` int64, ``distances`` float32, ``labels``    with ``index``
                     int64, each ``[batch, k]``, nearest first
``embed_raw``,       the same, for raw inputs (divided by the            with a ``contract``
``lookup_raw``       contract's ``scale`` inside the graph)               that has a ``scale``
===================  ==================================================  ==================

Embeddings are float32 whatever the encoder computes in (a mixed-precision
encoder's float16 outputs are cast). ``lookup`` follows the conventions of
:class:`tfcontrast.index.NearestNeighbors`, the layer that runs it: ``k`` is
fixed at export time; beyond the index size the columns are padding (id -1,
distance inf, label -1); a non-finite embedding gives a padding row.

**The index inside.** The lookup is a :class:`~tfcontrast.index.NearestNeighbors`
layer: one given with the same ``k`` is exported as is; any other search
index (``Index``, a ``SearchIndex`` backend, a layer with another ``k``) has
its live vectors, ids and labels read through ``index.to_arrays()`` into a
new layer. So **the exported lookup is always an exact search** (matrix
product + top-k), even for an hnsw / ivf / Milvus index, and the n x dim
float32 vectors are variables of the SavedModel: for millions of vectors,
serve the index itself beside an ``embed``-only export.

**The input contract** (:class:`tfcontrast.contract.InputContract`). With
``contract``, ``embed`` and ``lookup`` refuse a batch holding a value outside
the contract's range (or NaN): the call fails with ``InvalidArgumentError``
whose message names the expected range, the scaling and the signatures that
take raw values, e.g. raw 0-16 digits sent to a model trained on [0, 1]
(``saved_model_cli run`` prints it). ``embed_raw`` / ``lookup_raw`` divide
by ``scale`` first and then check. Where the assertion cannot run (TFLite has
no assertion op and drops it), the embeddings of an out-of-range example are
NaN and its lookup row is padding, so a wrong input is still never answered
with plausible neighbours. The contract is also written, as JSON, into the
export's marker file ``tfcontrast_export.json`` (:func:`read_marker`).

**Why Keras' export archive.** A Keras 3 model saved inside a plain
``tf.Module`` with ``tf.saved_model.save`` reaches its variables through
Keras' variable wrappers: ``tf.saved_model.load`` restores them through the
object graph, but the graph-mode restore of the SavedModel (``saved_model_cli
run``, TF Serving, the C++ loader) leaves them uninitialised ("Could not find
variable batch_normalization/moving_variance"). :class:`keras.export.ExportArchive`
tracks the ``tf.Variable`` objects that each endpoint captures, which every
loader restores.

**Where it is written.** The directory is written under a temporary name
and swapped into place, so an interrupted export leaves any previous one
intact. An export replaces only a new or empty path or an earlier export of
ours (it holds the marker file); any other existing folder is refused
(:mod:`tfcontrast.storage`).

Example:
    >>> export_saved_model(encoder, "/tmp/model", index=idx, k=5, contract=contract)  # doctest: +SKIP
    >>> loaded = tf.saved_model.load("/tmp/model")                                    # doctest: +SKIP
    >>> loaded.signatures["lookup"](inputs=images)["ids"]                             # doctest: +SKIP

    $ saved_model_cli run --dir /tmp/model --tag_set serve --signature_def lookup --inputs inputs=q.npy
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import storage
from tfcontrast.contract import InputContract
from tfcontrast.index.nearest_neighbors import NearestNeighbors
from tfcontrast.index.search_index import SearchIndex

MARKER = "tfcontrast_export.json"
MARKER_FORMAT = "tfcontrast.export"
MARKER_VERSION = 2
INPUT_KEY = "inputs"


def export_saved_model(
    encoder,
    path: str | os.PathLike,
    index: SearchIndex | NearestNeighbors | None = None,
    *,
    k: int | None = None,
    input_signature: tf.TensorSpec | None = None,
    contract: InputContract | None = None,
) -> str:
    """Writes a SavedModel with the signatures of the module docstring.

    Args:
        encoder: a Keras model (or layer) mapping inputs to ``[batch, dim]`` embeddings.
        path: the SavedModel directory: new, empty, or an earlier export (replaced atomically).
        index: a ``NearestNeighbors`` layer or any search index with
            ``to_arrays() -> (embeddings, ids, labels)`` and ``metric`` (an
            ``Index``...), of the encoder's output size; ``None`` exports no lookup.
        k: neighbours returned by ``lookup``. Default: the layer's ``k``, or
            10 for another index.
        input_signature: the ``tf.TensorSpec`` of one input batch. Default:
            the encoder's input shape and dtype with a ``None`` batch dimension
            (needed for models without a known input, e.g. unbuilt subclasses).
        contract: the input contract of the training data, checked by the
            signatures (module docstring); ``None``: inputs are not checked.

    Returns:
        The absolute path written.

    Raises:
        ValueError: no input signature can be found, the encoder does not
            return one ``[batch, dim]`` tensor, the index is empty, or its
            dimension differs from the encoder's; a contract whose shape or
            dtype differs from the input signature's.
        TypeError: ``contract`` is not an :class:`~tfcontrast.contract.InputContract`.
        tfcontrast.storage.RefusedPathError (a ``ValueError``): ``path`` is a
            folder that is not an earlier export, or the current, home or root
            directory.
    """
    spec = input_signature if input_signature is not None else input_spec(encoder)
    if not isinstance(spec, tf.TensorSpec):
        raise ValueError(f"`input_signature` must be a tf.TensorSpec, got {type(spec).__name__}.")
    spec = tf.TensorSpec(shape=[None, *spec.shape[1:]], dtype=spec.dtype, name=INPUT_KEY)
    out_dim = _output_dim(encoder, spec)
    layer = _lookup_layer(index, k)
    if layer is not None and layer.dim != out_dim:
        raise ValueError(f"`index` holds {layer.dim}-d embeddings but the encoder outputs {out_dim}-d ones.")
    _check_contract(contract, spec)
    archive, signatures = _archive(encoder, layer, spec, contract)
    marker = _marker(spec, out_dim, layer, contract, signatures)
    with storage.replace_directory(path, is_export, what="export") as tmp:
        archive.write_out(tmp, verbose=False)
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            json.dump(marker, f, indent=2, allow_nan=False)
    return storage.resolve_target(path)


def input_spec(model) -> tf.TensorSpec:
    """The ``tf.TensorSpec`` of one input batch of a Keras model with a known single input.

    Raises:
        ValueError: the model has no known input (unbuilt or subclassed) or several.
    """
    inputs = getattr(model, "inputs", None)
    if inputs is None:
        raise ValueError(
            "`encoder` has no known input (an unbuilt or subclassed model); pass "
            "`input_signature=tf.TensorSpec([None, ...], dtype)`."
        )
    if len(inputs) != 1:
        raise ValueError(f"`encoder` must take one input tensor, it takes {len(inputs)}.")
    return tf.TensorSpec(shape=inputs[0].shape, dtype=inputs[0].dtype)


def is_export(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` is a SavedModel written by :func:`export_saved_model` (it holds our marker)."""
    try:
        read_marker(directory)
    except (OSError, ValueError):
        return False
    return True


def read_marker(directory: str | os.PathLike) -> dict[str, Any]:
    """The marker of an export: its signatures, input, lookup and ``input_contract`` (a dict or ``None``).

    ``InputContract.from_dict(read_marker(path)["input_contract"])`` gives the contract back.

    Raises:
        FileNotFoundError: no marker (not an export of ours).
        ValueError: the marker is not a regular file of ours (``UnsafeFileError``), not JSON, or not ours.
    """
    text = storage.read_regular_file(os.path.join(os.fspath(directory), MARKER), max_size=1 << 20)
    marker = json.loads(text)
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        raise ValueError(f"{os.fspath(directory)!r}: {MARKER} is not a tfcontrast export marker.")
    return marker


# ------------------------------------------------------------------- graph


class _Serving:
    """The endpoint functions: contract check -> encoder -> float32 embeddings -> lookup."""

    def __init__(self, encoder, layer: NearestNeighbors | None, contract: InputContract | None, dtype: tf.DType):
        self.encoder, self.layer, self.contract, self.dtype = encoder, layer, contract, dtype
        self.raw_names = ["embed_raw", "lookup_raw"] if layer is not None else ["embed_raw"]

    def embeddings(self, inputs: tf.Tensor, raw: bool) -> tf.Tensor:
        if self.contract is None:
            return tf.cast(self.encoder(inputs, training=False), tf.float32)
        x = tf.cast(tf.cast(inputs, tf.float32) / self.contract.scale, self.dtype) if raw else inputs
        in_range = self._assert_in_range(inputs, x, raw)
        embeddings = tf.cast(self.encoder(x, training=False), tf.float32)
        # Where the assertion does not run (TFLite drops it), a refused example embeds as NaN.
        return tf.where(in_range[:, None], embeddings, tf.constant(np.nan, tf.float32))

    def _assert_in_range(self, inputs: tf.Tensor, x: tf.Tensor, raw: bool) -> tf.Tensor:
        """``[batch]`` bool: every value of the example inside the contract's bounds; asserts all are."""
        low, high = self.contract.bounds()
        if not x.dtype.is_floating:
            low, high = np.ceil(low), np.floor(high)
        x32 = tf.cast(x, tf.float32) if x.dtype.is_floating else x
        ok = tf.logical_and(x32 >= tf.cast(low, x32.dtype), x32 <= tf.cast(high, x32.dtype))  # NaN: False
        in_range = tf.reduce_all(tf.reshape(ok, [tf.shape(x)[0], -1]), axis=1)
        tf.debugging.Assert(
            tf.reduce_all(in_range),
            [
                _refusal(self.contract, raw, self.raw_names),
                "Received values from", tf.reduce_min(inputs), "to", tf.reduce_max(inputs),
            ],  # fmt: skip
            summarize=1,
        )
        return in_range

    def embed(self, inputs):
        return {"embeddings": self.embeddings(inputs, raw=False)}

    def embed_raw(self, inputs):
        return {"embeddings": self.embeddings(inputs, raw=True)}

    def lookup(self, inputs):
        return self.layer(self.embeddings(inputs, raw=False))

    def lookup_raw(self, inputs):
        return self.layer(self.embeddings(inputs, raw=True))


def _refusal(contract: InputContract, raw: bool, raw_names: list[str]) -> str:
    """The assertion message of a refused batch: what was expected and how to comply."""
    if raw:
        return (
            f"raw inputs must be finite values in [{contract.raw_range[0]:g}, {contract.raw_range[1]:g}] "
            f"(divided by {contract.scale:g} they give the training range [{contract.range[0]:g}, "
            f"{contract.range[1]:g}]): the model was trained on {contract.describe()}."
        )
    message = (
        f"inputs must be finite values in [{contract.range[0]:g}, {contract.range[1]:g}]: the model was trained "
        f"on {contract.describe()}."
    )
    if contract.scale is not None:
        hint = contract.raw_hint()
        message += f" {hint[0].upper()}{hint[1:]}, or sent to the signature(s) {' / '.join(raw_names)}."
    return message


def _archive(encoder, layer, spec: tf.TensorSpec, contract: InputContract | None):
    """The :class:`keras.export.ExportArchive` with every endpoint; ``(archive, signature names)``."""
    serving = _Serving(encoder, layer, contract, spec.dtype)
    endpoints = {"embed": serving.embed}
    if layer is not None:
        endpoints["lookup"] = serving.lookup
    if contract is not None and contract.scale is not None:
        endpoints.update({name: getattr(serving, name) for name in serving.raw_names})
    archive = keras.export.ExportArchive()
    raw_spec = tf.TensorSpec(spec.shape, tf.float32, name=INPUT_KEY)
    for name, fn in endpoints.items():  # the first, embed, also becomes serving_default
        endpoint = archive.add_endpoint(name, fn, input_signature=[raw_spec if name.endswith("_raw") else spec])
        endpoint.get_concrete_function()  # traced now: builds an unbuilt (subclassed) encoder
    for tracked in (encoder, layer):
        if isinstance(tracked, keras.layers.Layer):
            archive.track(tracked)  # also carries lookup tables (StringLookup...) the encoder may hold
    return archive, ["serving_default", *endpoints]


# ------------------------------------------------------------------ checks


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
    if isinstance(index, NearestNeighbors) and (k is None or k == index.k):
        return index
    if not callable(getattr(index, "to_arrays", None)) or not hasattr(index, "metric"):
        raise ValueError(
            "`index` must be a search index with `to_arrays()` and `metric` (a tfcontrast Index, "
            f"NearestNeighbors...), got {type(index).__name__}."
        )
    if k is None:
        k = index.k if isinstance(index, NearestNeighbors) else 10
    return NearestNeighbors.from_index(index, k=k)


def _check_contract(contract: InputContract | None, spec: tf.TensorSpec) -> None:
    if contract is None:
        return
    if not isinstance(contract, InputContract):
        raise TypeError(f"`contract` must be a tfcontrast.contract.InputContract, got {type(contract).__name__}.")
    example = spec.shape[1:]
    matches = example.rank == len(contract.shape) and all(
        c is None or s is None or s == c for s, c in zip(example.as_list(), contract.shape)
    )
    if not matches or contract.dtype != spec.dtype.name:
        raise ValueError(
            f"`contract` describes {contract.describe()} but the encoder reads {spec.dtype.name} inputs of "
            f"shape {example.as_list()}."
        )


def _marker(spec, out_dim, layer, contract, signatures) -> dict[str, Any]:
    from tfcontrast.version import __version__

    return {
        "format": MARKER_FORMAT,
        "format_version": MARKER_VERSION,
        "tfcontrast_version": __version__,
        "signatures": signatures,
        "input": {"key": INPUT_KEY, "shape": spec.shape.as_list(), "dtype": spec.dtype.name},
        "embedding_dim": out_dim,
        "lookup": None if layer is None else {"k": layer.k, "metric": layer.metric, "size": layer.num_embeddings},
        "input_contract": None if contract is None else contract.to_dict(),
    }
