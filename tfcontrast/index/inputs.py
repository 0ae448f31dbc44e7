"""NumPy input checks for the index: vectors, ids, labels, k and ``data`` payloads.

Every public entry point of :mod:`tfcontrast.index` converts its arguments
here first, so bad input fails with a ``ValueError`` that names the argument
and what was seen, before anything is written into an index:

* vectors must be a real ``[n, dim]`` array of finite values (NaN or inf would
  silently poison every distance) whose norm is at most 6.5e18
  (``||x||^2 <= FLT_MAX / 8``), so that no distance overflows float32: a
  vector at 2e19 would otherwise come back as padding (distance inf) or at
  distance -inf;
* ids must be unique integers >= 0 (faiss reserves -1 for "no result");
* labels are integers >= -1, where -1 marks an unlabelled entry;
* ``k`` is an integer >= 1 (no upper bound: searches clamp it to the number of
  entries, see :mod:`tfcontrast.index.search_index`);
* a ``data`` entry is ``None``, a byte string, or a JSON-serialisable value.
"""

from __future__ import annotations

import base64
import json
import numbers
from typing import Any, Sequence

import numpy as np

# Largest accepted squared norm of a vector. With ||x||^2, ||y||^2 <= FLT_MAX / 8,
# every float32 quantity a search forms (||x||^2 + ||y||^2 - 2 <x, y>, <x, y>,
# sums of squares) stays below FLT_MAX, so every distance between accepted
# vectors is finite: ||x|| <= 6.52e18.
MAX_SQUARED_NORM = float(np.finfo(np.float32).max) / 8
MAX_NORM = MAX_SQUARED_NORM**0.5

# A ``data`` value that is a dict with exactly this key would be ambiguous with
# the encoding of byte strings in ``data.json`` (see persistence.py).
BYTES_MARKER = "$bytes"


def as_vectors(x, name: str, dim: int | None = None, *, allow_1d: bool = False) -> np.ndarray:
    """Returns ``x`` as a C-contiguous float32 ``[n, dim]`` array of finite values.

    Args:
        x: array-like (NumPy, list, ``tf.Tensor``).
        name: argument name used in error messages.
        dim: the required number of columns, or ``None`` to accept any.
        allow_1d: accept a single ``[dim]`` vector, returned as ``[1, dim]``.
    """
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged lists, tensors on odd devices
        raise ValueError(f"`{name}` must be a numeric [n, dim] array, could not convert it: {err}") from None
    if arr.dtype.name == "bfloat16":  # ml_dtypes (TensorFlow's .numpy()): not an np.number subtype
        arr = arr.astype(np.float32)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"`{name}` must be a numeric [n, dim] array, got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise ValueError(f"`{name}` must be real, got dtype {arr.dtype}.")
    if allow_1d and arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must have shape [n, dim], got shape {arr.shape}.")
    if arr.shape[1] == 0:
        raise ValueError(f"`{name}` must have at least one column, got shape {arr.shape}.")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"`{name}` must have dim {dim} (the index's), got shape {arr.shape}.")
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 range: inf, refused below
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        squared = np.einsum("ij,ij->i", arr, arr)
    too_large = ~(squared <= MAX_SQUARED_NORM)  # NaN compares False: caught too
    if too_large.any():
        rows = np.flatnonzero(too_large)
        nonfinite = rows[~np.isfinite(arr[rows]).all(axis=1)]
        if len(nonfinite):
            raise ValueError(
                f"`{name}` holds NaN or inf (or values beyond float32 range) in "
                f"{len(nonfinite)} row(s), first rows {nonfinite[:5].tolist()}."
            )
        raise ValueError(
            f"`{name}` has {len(rows)} row(s) whose norm is too large for float32 distances (||x|| must be "
            f"<= {MAX_NORM:.3g}, so that ||x||^2 and every distance stay finite), first rows {rows[:5].tolist()}; "
            "rescale the vectors."
        )
    return arr


def as_int_vector(x, name: str, n: int | None, *, minimum: int) -> np.ndarray:
    """Returns ``x`` as a 1-D int64 array (``[n, 1]`` is flattened), every value >= ``minimum``.

    Floating input is accepted only when it holds whole numbers.
    """
    arr = np.asarray(x)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of integers, got shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"`{name}` has {arr.shape[0]} entries but there are {n} vectors; they must match.")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"`{name}` must hold integers, got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.floating):
        if not (np.isfinite(arr).all() and np.array_equal(arr, np.round(arr))):
            raise ValueError(f"`{name}` must hold integers, got non-integer values.")
    out = arr.astype(np.int64)
    if out.min() < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {int(out.min())}.")
    return out


def as_ids(x, name: str, n: int | None) -> np.ndarray:
    """Unique int64 ids >= 0 (-1 means "no result" in search output)."""
    ids = as_int_vector(x, name, n, minimum=0)
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        dup = uniq[counts > 1]
        raise ValueError(f"`{name}` holds duplicate ids: {dup[:10].tolist()}.")
    return ids


def as_labels(x, name: str, n: int) -> np.ndarray:
    """int64 labels >= -1 (-1 marks an unlabelled entry)."""
    return as_int_vector(x, name, n, minimum=-1)


def as_entries(embeddings, labels, ids, data) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list | None]:
    """The checked arguments of ``SearchIndex.add``: ``(vectors, labels (default -1), ids or None, data or None)``."""
    x = as_vectors(embeddings, "embeddings")
    n = x.shape[0]
    labels = np.full(n, -1, np.int64) if labels is None else as_labels(labels, "labels", n)
    ids = None if ids is None else as_ids(ids, "ids", n)
    return x, labels, ids, as_data(data, n)


def check_k(k, name: str = "k") -> int:
    """Raises ``ValueError`` unless ``k`` is an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {k!r}.")
    return int(k)


def as_data(data, n: int, name: str = "data") -> list[Any] | None:
    """Checks ``data``: ``None`` or a sequence of ``n`` entries, each ``None``,
    ``bytes`` or a JSON-serialisable value (no NaN / inf floats)."""
    if data is None:
        return None
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, (Sequence, np.ndarray)):
        raise ValueError(f"`{name}` must be a list with one entry per vector, got {type(data).__name__}.")
    data = list(data)
    if len(data) != n:
        raise ValueError(f"`{name}` has {len(data)} entries but there are {n} vectors; they must match.")
    for i, value in enumerate(data):
        if value is None or isinstance(value, bytes):
            continue
        if isinstance(value, dict) and set(value) == {BYTES_MARKER}:
            raise ValueError(f"`{name}[{i}]` is a dict with the single key {BYTES_MARKER!r}, reserved for byte strings.")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"`{name}[{i}]` must be bytes or JSON-serialisable (no NaN/inf), got "
                f"{type(value).__name__}: {err}"
            ) from None
    return data


def encode_payload(value: Any) -> Any:
    """A checked payload as a JSON value: byte strings become ``{"$bytes": base64}``."""
    if isinstance(value, bytes):
        return {BYTES_MARKER: base64.b64encode(value).decode("ascii")}
    return value


def decode_payload(value: Any) -> Any:
    """The inverse of :func:`encode_payload`.

    Raises:
        ValueError: an invalid base64 byte string.
    """
    if isinstance(value, dict) and set(value) == {BYTES_MARKER}:
        try:
            return base64.b64decode(value[BYTES_MARKER], validate=True)
        except (TypeError, ValueError) as err:
            raise ValueError(f"invalid base64 byte string: {err}") from None
    return value


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """``x / max(||x||, 1e-6)`` row-wise, the same floor as ``tfcontrast.distances.l2_normalize``.

    ``x`` comes from :func:`as_vectors`, so its float32 squared norms are finite.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float32))
    return np.ascontiguousarray(x / np.maximum(norms, np.float32(1e-6))[:, None], dtype=np.float32)
