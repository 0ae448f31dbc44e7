"""``InputContract``: the shape, dtype and value range a model was trained on.

An embedding network answers every input it is given. Fed the raw 0-16
pixel values of the digits where it learned on values divided by 16, or
0-255 pixels where it learned on [0, 1], it still returns neighbours, all of
them wrong, and nothing says so. A contract records what the training inputs
looked like, travels with the run and the export, and checks (or prepares)
every query against it:

==========  ===========================================================  ==================
field       meaning                                                      digits
==========  ===========================================================  ==================
``shape``   one example's shape (``None`` = any size on that axis)        ``(8, 8, 1)``
``dtype``   the dtype the model reads                                    ``"float32"``
``range``   ``[low, high]``: every value the model reads lies inside      ``(0.0, 1.0)``
``scale``   model input = raw value / ``scale``; ``None`` when no raw     ``16.0``
            form is known (then only already-scaled inputs are accepted)
==========  ===========================================================  ==================

As JSON (:meth:`InputContract.to_json`)::

    {"format": "tfcontrast.input_contract", "version": 1, "shape": [8, 8, 1],
     "dtype": "float32", "range": [0.0, 1.0], "scale": 16.0}

Host arrays go through :meth:`InputContract.check` (refuse what the model was
not trained on, with a ``ValueError`` naming the expected range and the
scaling) or :meth:`InputContract.prepare` (scale raw values first: ``uint8``
arrays always count as raw when the contract has a ``scale``; other dtypes
only with ``raw=True``, because a float array cannot say whether it is
already scaled). An export (:func:`tfcontrast.export.export_saved_model`)
runs the same check inside its signatures.

This module imports NumPy only (no TensorFlow), so a command can check its
arguments before starting TensorFlow.

Example:
    >>> import numpy as np
    >>> contract = InputContract.from_data(np.random.rand(100, 8, 8, 1).astype("float32"), scale=16)
    >>> contract.range, contract.describe()
    ((0.0, 1.0), 'float32 inputs of shape [8, 8, 1] with values in [0, 1] (raw values divided by 16)')
    >>> raw_digits = np.full((2, 8, 8, 1), 16, np.uint8)
    >>> float(contract.prepare(raw_digits).max())             # uint8 = raw: divided by 16
    1.0
    >>> contract.check(raw_digits.astype("float32"))          # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: `x` holds values in [16, 16], outside [0, 1] ...
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Sequence

import numpy as np

FORMAT = "tfcontrast.input_contract"
VERSION = 1
DTYPES = (
    "float16", "bfloat16", "float32", "float64",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
)  # fmt: skip
# `from_data` snaps the observed range to the first of these that contains it.
STANDARD_RANGES = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0))
# Round-off allowed at the bounds, relative to the largest bound magnitude (at least 1).
RELATIVE_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class InputContract:
    """What the model's inputs looked like in training (see the module docstring).

    Args:
        shape: one example's shape, e.g. ``(8, 8, 1)``; ``None`` entries match any size.
        dtype: the dtype the model reads (``"float32"``...).
        range: ``(low, high)``, finite, ``low <= high``: the values accepted.
        scale: ``model input = raw / scale`` (16 for the digits, 255 for 8-bit
            images), or ``None`` when inputs have no known raw form. Floating
            dtypes only.

    Raises:
        ValueError: a field outside the above.
    """

    shape: tuple[int | None, ...]
    dtype: str = "float32"
    range: tuple[float, float] = (0.0, 1.0)
    scale: float | None = None

    def __post_init__(self):
        shape = _as_shape(self.shape)
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:
            raise ValueError(f"`dtype` must be one of {DTYPES}, got {self.dtype!r}.")
        value_range = _as_range(self.range)
        scale = self.scale
        if scale is not None:
            if not _is_number(scale) or not math.isfinite(scale) or scale <= 0:
                raise ValueError(f"`scale` must be a finite number > 0 or None, got {scale!r}.")
            if not _floating_name(self.dtype):
                raise ValueError(
                    f"`scale` needs a floating `dtype` (raw / scale is not an integer), got {self.dtype!r}."
                )
            scale = float(scale)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "range", value_range)
        object.__setattr__(self, "scale", scale)

    # ------------------------------------------------------------ building

    @classmethod
    def from_data(
        cls,
        x,
        *,
        scale: float | None = None,
        margin: float = 0.25,
        dtype: str | None = None,
    ) -> "InputContract":
        """The contract of training inputs ``x`` (``[n, *shape]``, already scaled as the model reads them).

        The observed ``[min, max]`` is snapped to the first standard range
        that contains it (``[0, 1]``, ``[-1, 1]``, ``[0, 255]``); other data
        (standardised features, embeddings) get ``[min - margin * span,
        max + margin * span]``, so held-out data slightly beyond the training
        extremes pass while a wrong scaling (x16, x255) is refused.

        Args:
            x: the training inputs, at least one example, finite.
            scale: how the raw data was scaled (``x = raw / scale``), if known.
            margin: widening of a non-standard range, as a fraction of its span (>= 0).
            dtype: the dtype the model reads; default ``x``'s.

        Raises:
            ValueError: ``x`` empty, without a batch axis, non-numeric or not finite; a bad ``margin``.
        """
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"`x` must be a batch [n >= 1, ...] of training inputs, got shape {x.shape}.")
        _check_numeric(x, "x")
        if not _is_number(margin) or not math.isfinite(margin) or margin < 0:
            raise ValueError(f"`margin` must be a finite number >= 0, got {margin!r}.")
        low, high = float(np.min(x)), float(np.max(x))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("`x` holds NaN or inf: the contract is inferred from finite training data only.")
        value_range = next(((a, b) for a, b in STANDARD_RANGES if a <= low and high <= b), None)
        if value_range is None:
            span = high - low if high > low else max(abs(low), 1.0)
            value_range = (low - margin * span, high + margin * span)
        return cls(shape=x.shape[1:], dtype=dtype or x.dtype.name, range=value_range, scale=scale)

    # ------------------------------------------------------------- reading

    @property
    def raw_range(self) -> tuple[float, float] | None:
        """``range * scale``: the raw values accepted by :meth:`prepare` with ``raw=True``."""
        if self.scale is None:
            return None
        return (self.range[0] * self.scale, self.range[1] * self.scale)

    def bounds(self) -> tuple[float, float]:
        """``range`` widened by float round-off (``RELATIVE_TOLERANCE``): what :meth:`check` accepts."""
        low, high = self.range
        tolerance = RELATIVE_TOLERANCE * max(1.0, abs(low), abs(high))
        return low - tolerance, high + tolerance

    def describe(self) -> str:
        """One line for messages, e.g. ``float32 inputs of shape [8, 8, 1] with values in [0, 1] (...)``."""
        shape = "[" + ", ".join("?" if s is None else str(s) for s in self.shape) + "]"
        text = f"{self.dtype} inputs of shape {shape} with values in {_interval(self.range)}"
        if self.scale is not None:
            text += f" (raw values divided by {self.scale:g})"
        return text

    def raw_hint(self) -> str:
        """How to feed raw values, or ``""`` without a ``scale`` (for messages)."""
        if self.scale is None:
            return ""
        return f"raw values in {_interval(self.raw_range)} must be divided by {self.scale:g} first"

    # ------------------------------------------------------------ checking

    def check(self, x, name: str = "x", raw_option: str = "prepare(x, raw=True)") -> np.ndarray:
        """``x`` unchanged if it is a batch the model was trained on; a clear error otherwise.

        Args:
            x: ``[batch, *shape]`` values as the model reads them (already scaled).
            name: the argument's name in messages.
            raw_option: how the caller's user asks for raw values to be scaled, in
                the out-of-range message (the ``tfcontrast lookup`` command: ``--raw``).

        Raises:
            TypeError: ``x`` is not numeric.
            ValueError: a wrong example shape, NaN/inf, or values outside
                :meth:`bounds` (the message names the expected range and the scaling).
        """
        x = np.asarray(x)
        _check_numeric(x, name)
        if x.ndim != len(self.shape) + 1 or not _shape_matches(x.shape[1:], self.shape):
            raise ValueError(
                f"`{name}` must be a batch [n, {', '.join('?' if s is None else str(s) for s in self.shape)}] "
                f"({self.describe()}), got shape {x.shape}."
            )
        if x.size == 0:
            return x
        if _is_floating(x) and not np.isfinite(x).all():
            rows = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
            raise ValueError(f"`{name}` holds NaN or inf in {len(rows)} example(s), first {rows[:5].tolist()}.")
        low, high = self.bounds()
        found_low, found_high = float(np.min(x)), float(np.max(x))
        if found_low < low or found_high > high:
            hint = self.raw_hint()
            raise ValueError(
                f"`{name}` holds values in [{found_low:g}, {found_high:g}], outside {_interval(self.range)}: the model "
                f"was trained on {self.describe()}."
                + (f" {hint[0].upper()}{hint[1:]} ({raw_option} does it)." if hint else "")
            )
        return x

    def prepare(self, x, raw: bool | None = None, name: str = "x", raw_option: str = "prepare(x, raw=True)") -> np.ndarray:
        """``x`` as the model reads it: ``[batch, *shape]`` of ``dtype``, scaled if raw, then checked.

        Args:
            x: a batch ``[n, *shape]`` or one example ``[*shape]``.
            raw: ``True``: ``x`` holds raw values, divided by ``scale``;
                ``False``: already scaled; ``None`` (default): raw if ``x`` is
                ``uint8`` and the contract has a ``scale`` (8-bit images), else scaled.
            name: the argument's name in messages.
            raw_option: as for :meth:`check`.

        Raises:
            TypeError: ``x`` is not numeric.
            ValueError: ``raw=True`` without a ``scale``; non-integer values for an
                integer ``dtype``; anything :meth:`check` refuses.
        """
        x = np.asarray(x)
        _check_numeric(x, name)
        if raw is None:
            raw = self.scale is not None and x.dtype == np.uint8
        if raw and self.scale is None:
            raise ValueError(f"`raw=True` needs a contract with a `scale`; this one has none ({self.describe()}).")
        if x.ndim == len(self.shape) and _shape_matches(x.shape, self.shape):
            x = x[None]
        if raw:
            x = x.astype(np.float64) / self.scale
        if not _floating_name(self.dtype) and _is_floating(x):
            if not np.array_equal(x, np.round(x)):  # NaN fails this too
                raise ValueError(f"`{name}` must hold whole numbers: the model reads {self.dtype}.")
        return self.check(x.astype(_numpy_dtype(self.dtype)), name, raw_option)

    # --------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready fields, with ``format`` and ``version``."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "range": list(self.range),
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, body: Any) -> "InputContract":
        """The contract of :meth:`to_dict`'s output.

        Raises:
            ValueError: not a tfcontrast input contract, an unknown version, a
                missing or unknown key, or a bad field.
        """
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError(f"not a tfcontrast input contract (no \"format\": {FORMAT!r}): {str(body)[:200]}")
        if body.get("version") != VERSION:
            raise ValueError(f"input contract version {body.get('version')!r} is not supported (this is {VERSION}).")
        fields = {"shape", "dtype", "range", "scale"}
        missing, unknown = fields - body.keys(), body.keys() - fields - {"format", "version"}
        if missing or unknown:
            raise ValueError(f"input contract: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}.")
        return cls(shape=body["shape"], dtype=body["dtype"], range=body["range"], scale=body["scale"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "InputContract":
        """The contract of :meth:`to_json`'s output (``ValueError`` on anything else)."""
        try:
            body = json.loads(text)
        except (TypeError, ValueError) as err:
            raise ValueError(f"input contract: not valid JSON ({err}).") from None
        return cls.from_dict(body)


# ------------------------------------------------------------------ helpers


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _as_shape(shape) -> tuple[int | None, ...]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, np.ndarray)):
        raise ValueError(f"`shape` must be a sequence of sizes >= 1 or None, got {shape!r}.")
    out = []
    for size in shape:
        if size is not None and (not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1):
            raise ValueError(f"`shape` must be a sequence of sizes >= 1 or None, got {shape!r}.")
        out.append(None if size is None else int(size))
    return tuple(out)


def _as_range(value_range) -> tuple[float, float]:
    sequence = isinstance(value_range, (Sequence, np.ndarray)) and not isinstance(value_range, (str, bytes))
    if not sequence or len(value_range) != 2:
        raise ValueError(f"`range` must be (low, high), got {value_range!r}.")
    low, high = value_range
    if not (_is_number(low) and _is_number(high) and math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"`range` must be two finite numbers with low <= high, got {value_range!r}.")
    return float(low), float(high)


def _floating_name(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


def _is_floating(x: np.ndarray) -> bool:
    return x.dtype.kind == "f" or x.dtype.name == "bfloat16"


def _check_numeric(x: np.ndarray, name: str) -> None:
    if x.dtype.kind not in "iu" and not _is_floating(x):
        raise TypeError(f"`{name}` must hold real numbers, got dtype {x.dtype}.")


def _shape_matches(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))


def _numpy_dtype(name: str):
    if name == "bfloat16":  # NumPy has no bfloat16; ml_dtypes (a TensorFlow dependency) does
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(name)


def _interval(value_range) -> str:
    return f"[{value_range[0]:g}, {value_range[1]:g}]"
