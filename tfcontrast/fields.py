"""Config fields: the type, default, one-line doc and value check of one config key.

Every key a run config may hold is described by a :class:`Field`: the shared
sections in :mod:`tfcontrast.config`, and the sections a method, a batch kind
or a loss adds in its registration (:mod:`tfcontrast.registry`). Write them with
the constructors below, e.g.::

    fields = {
        "projection_dim": Int(128, "projector output width", min=1),
        "temperature": Float(0.1, "softmax temperature", within="(0, inf)"),
        "tau_base": Float(doc="EMA rate at step 0", within="[0, 1)"),   # default: the constructor's
        "variant": Choice(("directpred", "directcopy"), doc="predictor rule"),
        "hidden_dim": Int(None, "hidden width; None = the encoder's", min=1, optional=True),
    }

A default left out (:data:`MISSING`) is read from the signature of the class the
registration builds, so a default is written once. The check messages are the
ones :func:`tfcontrast.config.validate` reports next to the key
(``config.model.tau_base: must lie in [0, 1), got 1.0``).
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

Check = Callable[[Any], "str | None"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""A field default not given: taken from the built class's constructor signature."""

KINDS = ("int", "float", "str", "bool", "ints", "floats")


@dataclass(frozen=True)
class Field:
    """One leaf of a config schema.

    Attributes:
        kind: ``"int"``, ``"float"``, ``"str"``, ``"bool"``, or ``"ints"`` / ``"floats"``
            (a non-empty tuple of numbers, of ``length`` values when given).
        default: the value a fresh config holds (:data:`MISSING`: the constructor's).
        doc: one line saying what the key does (shown by ``tfcontrast configs``).
        check: ``check(value)`` returns what is wrong with a value of the right type, or ``None``.
        length: the tuple length of ``"ints"`` / ``"floats"``.
        optional: ``None`` is a valid value too.
    """

    kind: str
    default: Any = MISSING
    doc: str = ""
    check: Check | None = None
    length: int | None = None
    optional: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}, got {self.kind!r}.")

    def with_default(self, default) -> "Field":
        return replace(self, default=default)


# ----------------------------------------------------------------- checks


def choice(choices: Sequence) -> Check:
    choices = tuple(choices)
    return lambda v: None if v in choices else f"must be one of {choices}, got {v!r}"


def at_least(low) -> Check:
    return lambda v: None if v >= low else f"must be >= {low}, got {v!r}"


def interval(text: str) -> Check:
    """A check from interval notation: ``"[0, 1)"``, ``"(0, 1]"``, ``"(0, inf)"``, ``"[0, inf)"``.

    Half-infinite intervals read as ``must be > 0`` / ``must be >= 0``; the others
    as ``must lie in [0, 1)``.
    """
    text = text.strip()
    if len(text) < 5 or text[0] not in "[(" or text[-1] not in "])" or "," not in text:
        raise ValueError(f"`within` must look like '[0, 1)' or '(0, inf)', got {text!r}.")
    low_text, high_text = (part.strip() for part in text[1:-1].split(","))
    low, high = float(low_text), float(high_text)
    low_closed, high_closed = text[0] == "[", text[-1] == "]"

    def inside(v) -> bool:
        above = v >= low if low_closed else v > low
        below = v <= high if high_closed else v < high
        return above and below

    if math.isinf(high):
        words = f"must be {'>=' if low_closed else '>'} {low_text}"
    else:
        words = f"must lie in {text}"
    return lambda v: None if inside(v) else f"{words}, got {v!r}"


def each(check: Check) -> Check:
    """Applies ``check`` to every element of a tuple."""
    return lambda values: next((f"{m} (in {values!r})" for m in map(check, values) if m), None)


def all_of(*checks: Check | None) -> Check | None:
    checks = [c for c in checks if c is not None]
    if not checks:
        return None
    return lambda v: next((m for m in (c(v) for c in checks) if m), None)


# ----------------------------------------------------------- constructors


def Int(default: Any = MISSING, doc: str = "", *, min: int | None = None, check: Check | None = None,
        optional: bool = False) -> Field:
    """An int (``bool`` is refused), at least ``min`` when given."""
    return Field("int", default, doc, all_of(at_least(min) if min is not None else None, check), optional=optional)


def Float(default: Any = MISSING, doc: str = "", *, within: str | None = None, check: Check | None = None,
          optional: bool = False) -> Field:
    """A finite number (ints are accepted and become floats), inside the interval ``within`` when given."""
    return Field("float", default, doc, all_of(interval(within) if within else None, check), optional=optional)


def Bool(default: Any = MISSING, doc: str = "") -> Field:
    return Field("bool", default, doc)


def Str(default: Any = MISSING, doc: str = "", *, check: Check | None = None, optional: bool = False) -> Field:
    return Field("str", default, doc, check, optional=optional)


def Choice(choices: Sequence[str], default: Any = MISSING, doc: str = "") -> Field:
    """One string of ``choices``."""
    return Field("str", default, doc, choice(choices))


def Ints(default: Any = MISSING, doc: str = "", *, min: int | None = None, length: int | None = None,
         check: Check | None = None) -> Field:
    """A non-empty tuple of ints, each at least ``min`` when given."""
    return Field("ints", default, doc, all_of(each(at_least(min)) if min is not None else None, check), length)


def Floats(default: Any = MISSING, doc: str = "", *, length: int | None = None, check: Check | None = None) -> Field:
    return Field("floats", default, doc, check, length)


# ------------------------------------------------------------- conversion

_KIND_NAMES = {"int": "an int", "float": "a number", "str": "a string", "bool": "a bool (True/False)"}


def convert(field: Field, value) -> tuple[Any, str | None]:
    """``(normalised value, None)``, or ``(value, what is wrong)``; then :attr:`Field.check` applies.

    Normalised: ints become floats where floats are expected, lists become tuples.
    """
    if value is None and field.optional:
        return None, None
    value, message = _convert(field.kind, field.length, value)
    if message is None and field.check is not None:
        message = field.check(value)
    return value, message


def _convert(kind: str, length: int | None, value) -> tuple[Any, str | None]:
    if kind in ("ints", "floats"):
        element = kind[:-1]
        if not isinstance(value, (tuple, list)):
            return value, f"must be a tuple of {element}s, got {value!r}"
        if length is not None and len(value) != length:
            return value, f"must hold {length} values, got {value!r}"
        if not value:
            return value, "must hold at least one value"
        converted = []
        for v in value:
            c, message = _convert(element, None, v)
            if message:
                return value, f"must be a tuple of {element}s, got {value!r}"
            converted.append(c)
        return tuple(converted), None
    wrong = f"must be {_KIND_NAMES[kind]}, got {type(value).__name__} {value!r}"
    if kind == "bool":
        return (value, None) if isinstance(value, bool) else (value, wrong)
    if kind == "str":
        return (value, None) if isinstance(value, str) else (value, wrong)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value, wrong
    if kind == "int":
        return (int(value), None) if isinstance(value, int) else (value, wrong)
    if not math.isfinite(value):
        return value, f"must be a finite number, got {value!r}"
    return float(value), None


def parse_text(field: Field | None, current, text: str) -> Any:
    """A command-line value (``--config.key=TEXT``) as a Python value.

    Typed by ``field`` when the schema knows the key, else by the ``current``
    value: bools from ``true/false/1/0`` (any case), numbers from their text,
    tuples from ``(1, 2)`` or ``1,2``, ``None`` from ``None``; strings as
    written. Text that does not parse is returned as is, so that validation
    names the key and the type it wanted.
    """
    kind = field.kind if field is not None else _kind_of(current)
    if text == "None" and (field is None or field.optional or current is None):
        return None
    if kind == "str" or kind is None and not _literal(text):
        return text
    if kind == "bool":
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if kind in ("ints", "floats") and isinstance(value, (int, float)):
        value = (value,)
    if isinstance(value, list):
        value = tuple(value)
    return value


def _kind_of(value) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (tuple, list)):
        return "floats" if any(isinstance(v, float) for v in value) else "ints"
    return None


def _literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return True
