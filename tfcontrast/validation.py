"""Argument and tensor checks shared by the package.

Bad input must fail with a ``ValueError`` that names the argument and what was
seen, before any computation produces a NaN or a silently wrong answer. Shape
checks use static shapes only, so they run once at trace time and cost nothing
inside a compiled step. Value checks (labels that must be whole numbers, pair
labels that must be 0 or 1) raise eagerly; in a graph they cost one reduction
and become an assertion plus a flag (see :func:`require`). ``host_*`` checks
run on NumPy arrays, once per ``fit`` call.
"""

from __future__ import annotations

from typing import Iterable, Sequence, Union

import numpy as np
import tensorflow as tf

HALF_DTYPES = (tf.float16, tf.bfloat16)

# A check's outcome: True when nothing is left to check, else a boolean scalar tensor (graph mode).
Flag = Union[bool, tf.Tensor]


def to_float(x, name: str) -> tf.Tensor:
    """Converts ``x`` to a floating tensor; float16/bfloat16 are upcast to float32.

    float64 stays float64 (useful for exact references); integers become float32.
    """
    x = tf.convert_to_tensor(x)
    if x.dtype in HALF_DTYPES or x.dtype.is_integer or x.dtype == tf.bool:
        return tf.cast(x, tf.float32)
    if not x.dtype.is_floating:
        raise ValueError(f"`{name}` must be a real floating tensor, got dtype {x.dtype.name}.")
    return x


def check_rank(x: tf.Tensor, ranks: int | Sequence[int], name: str) -> None:
    """Raises ``ValueError`` unless ``x`` has one of ``ranks`` (static rank)."""
    allowed = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if x.shape.rank is None:
        raise ValueError(f"`{name}` must have a known rank in {allowed}, got an unknown shape.")
    if x.shape.rank not in allowed:
        wanted = " or ".join(str(r) for r in allowed)
        raise ValueError(f"`{name}` must have rank {wanted}, got shape {x.shape}.")


def check_same_dim(a: tf.Tensor, b: tf.Tensor, axis: int, names: tuple[str, str]) -> None:
    """Raises ``ValueError`` when the static sizes of ``a`` and ``b`` on ``axis`` differ."""
    da, db = a.shape[axis], b.shape[axis]
    if da is not None and db is not None and da != db:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must agree on axis {axis}, "
            f"got shapes {a.shape} and {b.shape}."
        )


def class_labels(labels, batch_size: int | None, name: str = "labels") -> tuple[tf.Tensor, Flag]:
    """Exact ``int64`` class ids ``[batch]`` from ``[batch]`` or ``[batch, 1]``, and whether they are valid.

    Integer labels of any width are kept exact (an ``int64`` product id of
    2**40 stays itself; Keras would have cast it to float32). Floating labels
    must hold finite whole numbers; the check needs values:

    * eagerly it raises ``ValueError`` at once;
    * in a graph (``tf.function``, ``model.fit``) a ``tf.debugging.Assert``
      raises ``InvalidArgumentError`` with the same message, and the returned
      flag is a boolean tensor: the losses give NaN when it is false, which is
      what remains where assertions are compiled out (``jit_compile=True``).

    Returns:
        ``(labels, ok)``: ``ok`` is ``True`` (nothing to check) or a boolean scalar tensor.
    """
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[1] == 1:
        labels = tf.reshape(labels, [-1])
    if labels.shape.rank != 1:
        raise ValueError(
            f"`{name}` must be integer class ids of shape [batch] or [batch, 1], "
            f"got shape {labels.shape}."
        )
    if batch_size is not None and labels.shape[0] is not None and labels.shape[0] != batch_size:
        raise ValueError(
            f"`{name}` has {labels.shape[0]} entries but the embeddings hold "
            f"{batch_size} rows; they must match."
        )
    if labels.dtype.is_integer:
        return tf.cast(labels, tf.int64), True
    if not labels.dtype.is_floating:
        raise ValueError(f"`{name}` must be integer class ids, got dtype {labels.dtype.name}.")
    whole = tf.math.is_finite(labels) & tf.equal(labels, tf.round(labels)) & (tf.abs(labels) < 2.0**63)
    ok = require(
        tf.reduce_all(whole),
        f"`{name}` must be integer class ids (whole, finite numbers); got non-integer or non-finite values.",
    )
    return tf.cast(tf.where(whole, labels, tf.zeros_like(labels)), tf.int64), ok


def as_labels(labels, batch_size: int | None, name: str = "labels") -> tf.Tensor:
    """The exact ``int64`` class ids of :func:`class_labels` (its checks included), without the flag."""
    return class_labels(labels, batch_size, name)[0]


def binary_labels(labels, name: str) -> tuple[tf.Tensor, Flag]:
    """``labels`` as float32 with the check that every value is 0 or 1 (pair labels, multi-hot rows).

    Same rule as :func:`class_labels`: ``ValueError`` eagerly, an assertion in
    a graph, and a flag that makes the loss NaN where assertions are compiled out.
    """
    labels = tf.convert_to_tensor(labels)
    if not (labels.dtype.is_floating or labels.dtype.is_integer or labels.dtype == tf.bool):
        raise ValueError(f"`{name}` must hold 0 or 1, got dtype {labels.dtype.name}.")
    labels = tf.cast(labels, tf.float32)
    ok = require(
        tf.reduce_all(tf.equal(labels, 0.0) | tf.equal(labels, 1.0)),
        f"`{name}` must hold only 0 or 1 (1 = similar / member, 0 = not); got other values.",
    )
    return labels, ok


def require(condition: tf.Tensor, message: str) -> Flag:
    """A value check that works in every mode: ``ValueError`` eagerly, an assertion plus a flag in a graph.

    Eagerly returns ``True`` or raises ``ValueError(message)``. In a graph it
    adds ``tf.debugging.Assert(condition, [message])`` (an
    ``InvalidArgumentError`` when the graph runs) and returns ``condition``,
    for the caller to turn its result into NaN: XLA compiles assertions out,
    so under ``jit_compile=True`` the NaN is what the user sees.
    """
    if tf.executing_eagerly():
        if not bool(condition):
            raise ValueError(message)
        return True
    tf.debugging.Assert(condition, [message])
    return condition


def both(a: Flag, b: Flag) -> Flag:
    """Logical and of two flags that are ``True`` or boolean tensors."""
    if a is True:
        return b
    if b is True:
        return a
    return tf.logical_and(a, b)


def all_finite(structure) -> Flag:
    """Whether every floating tensor in ``structure`` (a tensor or a nest of them) is finite.

    One cheap reduction per floating leaf; ``True`` when there is none (integer token ids).
    """
    flags = [
        tf.reduce_all(tf.math.is_finite(leaf))
        for leaf in (tf.convert_to_tensor(x) for x in tf.nest.flatten(structure))
        if leaf.dtype.is_floating
    ]
    if not flags:
        return True
    return flags[0] if len(flags) == 1 else tf.reduce_all(tf.stack(flags))


def host_class_ids(labels, n: int, name: str = "labels", float_limit: float | None = 2**24) -> np.ndarray:
    """Checks host-side labels (NumPy) once per call: ``[n]`` or ``[n, 1]`` whole numbers; returns ``[n]``.

    Integer dtypes of any width pass unchanged. Floating labels must be finite
    whole numbers, of magnitude <= ``float_limit`` when it is given: the
    default 2**24 is for labels that Keras will feed as float32 (``fit`` on
    floating arrays), whose whole numbers are exact only up to 2**24 (larger
    ids such as 16777217 would merge with their neighbours).

    Raises:
        ValueError: another shape or length, non-integer or too large floats, a non-numeric dtype.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"`{name}` must be integer class ids of shape [{n}] (one per example), got shape {labels.shape}.")
    if np.issubdtype(labels.dtype, np.floating):
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if np.any(bad):
            raise ValueError(f"`{name}` must be integer class ids, got non-integer values such as {labels[bad][:3]}.")
        if float_limit is not None and len(labels) and np.max(np.abs(labels)) > float_limit:
            raise ValueError(
                f"`{name}` holds floats up to {np.max(np.abs(labels)):.0f}; floats above 2**24 = 16777216 are not exact "
                "in float32 (neighbouring ids would merge): pass the labels as integers (e.g. int64)."
            )
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`{name}` must be integer class ids, got dtype {labels.dtype}.")
    return labels


def host_binary_labels(labels, name: str = "y") -> np.ndarray:
    """Checks host-side pair labels once per call: every value 0 or 1; returns them as an array."""
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
        raise ValueError(f"`{name}` must hold pair labels 0 or 1, got dtype {labels.dtype}.")
    bad = (labels != 0) & (labels != 1)
    if np.any(bad):
        raise ValueError(f"`{name}` must hold pair labels 0 (dissimilar) or 1 (similar), got values such as {labels[bad][:3]}.")
    return labels


def check_choice(value: str, choices: Iterable[str], name: str) -> str:
    """Raises ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")
    return value


def check_positive(value: float, name: str) -> float:
    """Raises ``ValueError`` unless ``value`` is a finite number > 0."""
    if not _is_finite_number(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    return float(value)


def check_finite(value: float, name: str) -> float:
    """Raises ``ValueError`` unless ``value`` is a finite number."""
    if not _is_finite_number(value):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}.")
    return float(value)


def check_non_negative(value: float, name: str) -> float:
    """Raises ``ValueError`` unless ``value`` is a finite number >= 0."""
    if not _is_finite_number(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return float(value)


def check_fraction(value: float, name: str, *, inclusive_high: bool = False) -> float:
    """Raises ``ValueError`` unless ``0 <= value < 1`` (or ``<= 1`` if ``inclusive_high``)."""
    ok_high = value <= 1 if inclusive_high else value < 1
    if not _is_finite_number(value) or value < 0 or not ok_high:
        bound = "]" if inclusive_high else ")"
        raise ValueError(f"`{name}` must lie in [0, 1{bound}, got {value!r}.")
    return float(value)


def check_int(value, name: str, minimum: int) -> int:
    """Raises ``ValueError`` unless ``value`` is an int (not a bool) >= ``minimum``; returns it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def _is_finite_number(value) -> bool:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return v == v and v not in (float("inf"), float("-inf")) and not isinstance(value, bool)


def as_paired_rows(a, b, names: tuple[str, str]) -> tuple[tf.Tensor, tf.Tensor]:
    """Two ``[n, dim]`` tensors of one shape (e.g. two views of a batch), as floats (see :func:`to_float`).

    Raises ``ValueError`` naming the argument when a rank is not 2 or the
    static shapes differ; both come back in the first one's float dtype.
    """
    a, b = to_float(a, names[0]), to_float(b, names[1])
    check_rank(a, 2, names[0])
    check_rank(b, 2, names[1])
    for axis in (0, 1):
        check_same_dim(a, b, axis, names)
    return a, tf.cast(b, a.dtype)
