"""Argument and tensor checks shared by the package.

Bad input must fail with a ``ValueError`` that names the argument and what was
seen, before any computation produces a NaN or a silently wrong answer. The
checks here use static shapes only, so they run once at trace time and cost
nothing inside a compiled step.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

HALF_DTYPES = (tf.float16, tf.bfloat16)


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


def as_labels(labels, batch_size: int | None, name: str = "labels") -> tf.Tensor:
    """Returns integer class labels of shape ``[batch]`` from ``[batch]`` or ``[batch, 1]``.

    Floating labels are accepted only when they hold whole numbers; that check
    needs values, so it runs eagerly only (in a graph the values are cast).
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
    if labels.dtype.is_floating:
        if tf.executing_eagerly() and not bool(tf.reduce_all(tf.equal(labels, tf.round(labels)))):
            raise ValueError(f"`{name}` must be integer class ids, got non-integer values.")
        labels = tf.cast(labels, tf.int64)
    elif not labels.dtype.is_integer:
        raise ValueError(f"`{name}` must be integer class ids, got dtype {labels.dtype.name}.")
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
