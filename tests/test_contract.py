"""tfcontrast.contract.InputContract: inference from training data, JSON, check and prepare (issue 12 §3)."""

import json

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tfcontrast import data
from tfcontrast.contract import InputContract


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


@pytest.fixture(scope="module")
def contract(digits):
    return InputContract.from_data(digits.x_train, scale=16)


def test_the_digits_contract(contract):
    assert contract == InputContract(shape=(8, 8, 1), dtype="float32", range=(0.0, 1.0), scale=16.0)
    assert contract.raw_range == (0.0, 16.0)
    assert contract.describe() == "float32 inputs of shape [8, 8, 1] with values in [0, 1] (raw values divided by 16)"
    assert json.loads(contract.to_json()) == {
        "format": "tfcontrast.input_contract", "version": 1, "shape": [8, 8, 1], "dtype": "float32",
        "range": [0.0, 1.0], "scale": 16.0,
    }  # fmt: skip
    assert InputContract.from_json(contract.to_json()) == contract
    assert InputContract.from_dict(contract.to_dict()) == contract


@pytest.mark.parametrize(
    "x, dtype, expected",
    [
        (np.array([[0.2], [0.7]], np.float32), "float32", (0.0, 1.0)),
        (np.array([[-0.7], [0.9]], np.float32), "float32", (-1.0, 1.0)),
        (np.array([[0], [200]], np.uint8), "uint8", (0.0, 255.0)),
        (np.array([[-2.0], [3.0]]), "float64", (-2.0 - 1.25, 3.0 + 1.25)),  # span 5, margin 0.25
        (np.array([[-5.0], [-5.0]], np.float32), "float32", (-5.0 - 1.25, -5.0 + 1.25)),  # one value: span |-5|
        (np.array([[300], [1000]], np.int32), "int32", (300 - 175.0, 1000 + 175.0)),
    ],
)
def test_from_data_snaps_to_standard_ranges_or_widens(x, dtype, expected):
    contract = InputContract.from_data(x)
    assert contract.range == pytest.approx(expected) and contract.dtype == dtype and contract.shape == (1,)
    assert contract.scale is None and contract.raw_range is None


def test_check_accepts_the_training_range_and_refuses_raw_digits(contract, digits):
    x = digits.x_test[:4]
    assert contract.check(x) is x
    contract.check(np.ones((1, 8, 8, 1), np.float32) * (1 + 5e-7))  # round-off at the bound
    contract.check(np.zeros((0, 8, 8, 1), np.float32))
    raw = x * 16.0
    with pytest.raises(ValueError, match=r"`query` holds values in \[0, 16\], outside \[0, 1\]") as err:
        contract.check(raw, name="query")
    message = str(err.value)
    assert "raw values divided by 16" in message and "prepare(x, raw=True)" in message
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        contract.check(x - 0.01)


def test_check_refuses_nan_shapes_and_non_numbers(contract):
    x = np.zeros((3, 8, 8, 1), np.float32)
    x[1, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"`x` holds NaN or inf in 1 example\(s\), first \[1\]"):
        contract.check(x)
    with pytest.raises(ValueError, match=r"must be a batch \[n, 8, 8, 1\].*got shape \(3, 8, 8\)"):
        contract.check(np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="got shape"):
        contract.check(np.zeros((8, 8, 1)))  # one example without its batch axis: prepare adds it
    for bad in (np.array([["a"]]), np.zeros((1, 8, 8, 1), bool)):
        with pytest.raises(TypeError, match="`x` must hold real numbers"):
            contract.check(bad)


def test_prepare_scales_raw_values(contract, digits):
    raw = np.round(digits.x_test[:5] * 16).astype(np.uint8)
    want = raw.astype(np.float32) / 16
    prepared = contract.prepare(raw)  # uint8 counts as raw
    assert prepared.dtype == np.float32 and prepared.shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(prepared, want)
    np.testing.assert_array_equal(contract.prepare(raw.astype(np.float64), raw=True), want)
    np.testing.assert_array_equal(contract.prepare(raw[0]), want[:1])  # one example gains a batch axis
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):  # floats are taken as already scaled
        contract.prepare(raw.astype(np.float32))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):  # raw=False overrides the uint8 rule
        contract.prepare(raw, raw=False)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):  # raw but beyond 16
        contract.prepare(np.full((1, 8, 8, 1), 17, np.uint8))


def test_prepare_without_a_scale_or_into_an_integer_dtype():
    plain = InputContract((2,), "float32", (-1.0, 1.0))
    np.testing.assert_array_equal(plain.prepare(np.array([[0, 1]], np.uint8)), [[0.0, 1.0]])  # no scale: not raw
    with pytest.raises(ValueError, match="`raw=True` needs a contract with a `scale`"):
        plain.prepare(np.zeros((1, 2)), raw=True)
    tokens = InputContract((3,), "int32", (0, 99))
    out = tokens.prepare(np.array([[1.0, 2.0, 99.0]]))
    assert out.dtype == np.int32 and out.tolist() == [[1, 2, 99]]
    with pytest.raises(ValueError, match="must hold whole numbers"):
        tokens.prepare(np.array([[1.5, 2.0, 3.0]]))
    with pytest.raises(ValueError, match=r"outside \[0, 99\]"):
        tokens.prepare(np.array([[1, 2, 100]]))


def test_shapes_with_free_axes():
    contract = InputContract((None, 3), "float32", (0.0, 1.0))
    contract.check(np.zeros((2, 7, 3)))
    contract.check(np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match=r"\[n, \?, 3\]"):
        contract.check(np.zeros((2, 7, 4)))
    assert InputContract.from_json(contract.to_json()) == contract


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(shape=(8, 0)), "`shape`"),
        (dict(shape="8x8"), "`shape`"),
        (dict(shape=(8, True)), "`shape`"),
        (dict(shape=(8,), dtype="str"), "`dtype`"),
        (dict(shape=(8,), range=(1.0, 0.0)), "`range`"),
        (dict(shape=(8,), range=(0.0, float("nan"))), "`range`"),
        (dict(shape=(8,), range=(0.0,)), "`range`"),
        (dict(shape=(8,), scale=0), "`scale`"),
        (dict(shape=(8,), scale=float("inf")), "`scale`"),
        (dict(shape=(8,), scale=True), "`scale`"),
        (dict(shape=(8,), dtype="uint8", range=(0, 255), scale=255), "floating `dtype`"),
    ],
)
def test_bad_fields_are_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        InputContract(**fields)


def test_bad_json_and_bad_training_data_are_refused(contract):
    body = contract.to_dict()
    for bad, match in [
        ({**body, "format": "x"}, "not a tfcontrast input contract"),
        ([1, 2], "not a tfcontrast input contract"),
        ({**body, "version": 2}, "version 2 is not supported"),
        ({k: v for k, v in body.items() if k != "scale"}, r"missing keys \['scale'\]"),
        ({**body, "mean": 0.5}, r"unknown keys \['mean'\]"),
        ({**body, "range": [0, "1"]}, "`range`"),
    ]:
        with pytest.raises(ValueError, match=match):
            InputContract.from_dict(bad)
    with pytest.raises(ValueError, match="not valid JSON"):
        InputContract.from_json("{")
    for x in (np.zeros(5), np.zeros((0, 3)), np.array([[0.0, np.inf]])):
        with pytest.raises(ValueError, match="`x`"):
            InputContract.from_data(x)
    with pytest.raises(ValueError, match="`margin`"):
        InputContract.from_data(np.zeros((2, 2)), margin=-1)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4),
        elements=st.floats(-300, 300, width=32) | st.sampled_from([np.nan, np.inf, -np.inf]),
    ),
    low=st.floats(-10, 10),
    width=st.floats(0, 20),
)
def test_check_accepts_exactly_the_finite_batches_inside_the_bounds(x, low, width):
    contract = InputContract(x.shape[1:], "float64", (low, low + width))
    lo, hi = contract.bounds()
    inside = all(np.isfinite(v) and lo <= v <= hi for v in x.ravel().tolist())  # explicit loop reference
    if inside:
        assert contract.check(x) is x
    else:
        with pytest.raises(ValueError, match="`x` holds"):
            contract.check(x)
