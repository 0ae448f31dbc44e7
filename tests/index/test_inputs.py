import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import distances
from tfcontrast.index import inputs


def test_vectors_are_float32_contiguous_from_any_array_like():
    for x in ([[1, 2], [3, 4]], np.array([[1.0, 2.0], [3.0, 4.0]])[:, ::1].T, tf.constant([[1.0, 2.0]])):
        out = inputs.as_vectors(x, "x")
        assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"] and out.ndim == 2
    assert inputs.as_vectors([1.0, 2.0], "x", allow_1d=True).shape == (1, 2)
    with pytest.raises(ValueError, match=r"`x` must have shape \[n, dim\]"):
        inputs.as_vectors([1.0, 2.0], "x")
    with pytest.raises(ValueError, match="numeric"):
        inputs.as_vectors([["a", "b"]], "x")
    with pytest.raises(ValueError, match="real"):
        inputs.as_vectors(np.ones((1, 2), np.complex64), "x")


def test_normalize_rows_matches_the_distances_module_including_zero_and_the_largest_rows(rng):
    largest = np.full((1, 5), inputs.MAX_NORM / np.sqrt(5) * 0.999)
    x = inputs.as_vectors(np.concatenate([rng.normal(size=(4, 5)), np.zeros((1, 5)), largest]), "x")
    got = inputs.normalize_rows(x)
    np.testing.assert_allclose(got[:5], distances.l2_normalize(x[:5]).numpy(), rtol=1e-6, atol=1e-7)
    assert np.all(got[4] == 0.0)  # a zero vector stays zero (floor 1e-6), as in the package
    np.testing.assert_allclose(got[5], np.full(5, 1 / np.sqrt(5)), rtol=1e-6)


def test_vectors_beyond_the_float32_distance_range_are_refused():
    # ||x|| = 6.6e18 > MAX_NORM: ||x||^2 is finite in float32 but 8 ||x||^2 is not.
    for value, match in ((6.6e18, "norm is too large"), (1e30, "norm is too large"), (1e39, "NaN or inf")):
        x = np.ones((3, 1))
        x[2, 0] = value
        with pytest.raises(ValueError, match=rf"`x` .*{match}.*first rows \[2\]"):
            inputs.as_vectors(x, "x")
    assert inputs.as_vectors([[6.5e18]], "x")[0, 0] == np.float32(6.5e18)


def test_integer_vectors_accept_whole_floats_only():
    assert inputs.as_int_vector([1.0, 2.0], "ids", 2, minimum=0).tolist() == [1, 2]
    assert inputs.as_int_vector([[3], [4]], "ids", 2, minimum=0).tolist() == [3, 4]
    with pytest.raises(ValueError, match="non-integer"):
        inputs.as_int_vector([1.0, np.nan], "ids", 2, minimum=0)
    with pytest.raises(ValueError, match="dtype bool"):
        inputs.as_int_vector([True, False], "ids", 2, minimum=0)
