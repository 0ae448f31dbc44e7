"""Config fields: conversion, the interval checks and their messages, command-line text."""

import math

import pytest

from tfcontrast import fields
from tfcontrast.fields import Bool, Choice, Field, Float, Floats, Int, Ints, Str


@pytest.mark.parametrize(
    "within, inside, outside, message",
    [
        ("[0, 1)", [0.0, 0.5, 0.999], [1.0, -0.1], "must lie in [0, 1), got"),
        ("(0, 1)", [0.01, 0.99], [0.0, 1.0], "must lie in (0, 1), got"),
        ("[0, 1]", [0.0, 1.0], [1.01, -1e-9], "must lie in [0, 1], got"),
        ("(0, inf)", [1e-12, 5.0], [0.0, -0.1], "must be > 0, got"),
        ("[0, inf)", [0.0, 3.0], [-1e-9], "must be >= 0, got"),
    ],
)
def test_intervals_accept_inside_and_name_the_interval_outside(within, inside, outside, message):
    field = Float(within=within)
    for v in inside:
        assert fields.convert(field, v) == (v, None)
    for v in outside:
        value, problem = fields.convert(field, v)
        assert problem == f"{message} {v!r}", problem


def test_a_bad_interval_is_refused():
    with pytest.raises(ValueError, match="within"):
        Float(within="0..1")


def test_types_are_strict_and_normalised():
    assert fields.convert(Float(), 2) == (2.0, None) and isinstance(fields.convert(Float(), 2)[0], float)
    assert fields.convert(Int(), True)[1] == "must be an int, got bool True"
    assert fields.convert(Int(), 1.5)[1] == "must be an int, got float 1.5"
    assert fields.convert(Float(), "0.1")[1] == "must be a number, got str '0.1'"
    assert fields.convert(Float(), math.nan)[1] == "must be a finite number, got nan"
    assert fields.convert(Bool(), 1)[1] == "must be a bool (True/False), got int 1"
    assert fields.convert(Str(), 3)[1] == "must be a string, got int 3"
    assert fields.convert(Ints(length=2), [8, 8]) == ((8, 8), None)
    assert fields.convert(Ints(length=2), (8,))[1] == "must hold 2 values, got (8,)"
    assert fields.convert(Floats(), ())[1] == "must hold at least one value"
    assert fields.convert(Ints(min=1), (1, 0))[1] == "must be >= 1, got 0 (in (1, 0))"
    assert fields.convert(Choice(("a", "b")), "c")[1] == "must be one of ('a', 'b'), got 'c'"


def test_optional_fields_take_none_and_others_do_not():
    assert fields.convert(Int(min=1, optional=True), None) == (None, None)
    assert fields.convert(Int(min=1), None)[1] == "must be an int, got NoneType None"


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        Field("complex")


@pytest.mark.parametrize(
    "field, current, text, want",
    [
        (Float(), 0.1, "3e-3", 3e-3),
        (Int(), 5, "7", 7),
        (Int(), 5, "1.5", 1.5),  # left for validation to name
        (Bool(), False, "True", True),
        (Bool(), True, "false", False),
        (Bool(), True, "0", False),
        (Str(), "a", "123", "123"),
        (Ints(), (1, 5), "(1, 2)", (1, 2)),
        (Ints(), (1, 5), "[3, 4]", (3, 4)),
        (Ints(), (1, 5), "7", (7,)),
        (Int(min=1, optional=True), None, "None", None),
        (Int(min=1, optional=True), None, "256", 256),
        (Float(), 0.1, "abc", "abc"),
        (None, 0.5, "0.25", 0.25),  # no schema: typed by the current value
        (None, "x", "0.25", "0.25"),
    ],
)
def test_command_line_text_is_typed_by_the_field(field, current, text, want):
    got = fields.parse_text(field, current, text)
    assert got == want and type(got) is type(want)
