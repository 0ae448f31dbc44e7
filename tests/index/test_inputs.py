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


def test_normalize_rows_matches_the_distances_module_including_zero_and_huge_rows(rng):
    x = np.concatenate([rng.normal(size=(4, 5)), np.zeros((1, 5)), np.full((1, 5), 1e30)]).astype(np.float32)
    got = inputs.normalize_rows(x)
    np.testing.assert_allclose(got[:5], distances.l2_normalize(x[:5]).numpy(), rtol=1e-6, atol=1e-7)
    assert np.all(got[4] == 0.0)  # a zero vector stays zero (floor 1e-6), as in the package
    # 1e30^2 overflows float32: the norm is recomputed in float64, not turned into inf -> 0.
    np.testing.assert_allclose(got[5], np.full(5, 1 / np.sqrt(5)), rtol=1e-6)


def test_integer_vectors_accept_whole_floats_only():
    assert inputs.as_int_vector([1.0, 2.0], "ids", 2, minimum=0).tolist() == [1, 2]
    assert inputs.as_int_vector([[3], [4]], "ids", 2, minimum=0).tolist() == [3, 4]
    with pytest.raises(ValueError, match="non-integer"):
        inputs.as_int_vector([1.0, np.nan], "ids", 2, minimum=0)
    with pytest.raises(ValueError, match="dtype bool"):
        inputs.as_int_vector([True, False], "ids", 2, minimum=0)
