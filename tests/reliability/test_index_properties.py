"""Issue 11 property test: for any shape, dtype, NaN/inf placement, magnitude and k, an index either
refuses the input with a ValueError/TypeError naming the argument, or answers finitely and correctly
(checked against a float64 NumPy brute force).

Every faiss backend runs (hnsw / ivf with parameters that make them exact at these sizes), and
MilvusIndex (Milvus Lite, one collection per metric, entries removed after each example).
"""

import itertools
import re

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfcontrast.index import Index, MilvusIndex, inputs

METRICS = ("cosine", "inner_product", "euclidean")
BACKENDS = {"exact": {}, "hnsw": {"M": 8, "ef_construction": 64, "ef_search": 64}, "ivf": {"nlist": 2, "nprobe": 2}}
BFLOAT16 = tf.bfloat16.as_numpy_dtype
DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_, BFLOAT16]
MAGNITUDES = [0.0, 1e-40, 1e-6, 1.0, 3.0, 1e4, 1e18, 6e18, 1e19, 1e30, 1e300]


@st.composite
def arrays(draw, rows, dim):
    """An array of a random dtype whose values mix ordinary numbers, huge / tiny magnitudes, NaN and inf."""
    dtype = draw(st.sampled_from(DTYPES))
    values = draw(
        hnp.arrays(
            np.float64,
            (rows, dim),
            elements=st.one_of(
                st.floats(-5, 5),
                st.sampled_from(MAGNITUDES).map(float),
                st.sampled_from(MAGNITUDES).map(lambda m: -m),
                st.sampled_from([np.nan, np.inf, -np.inf]),
            ),
        )
    )
    # Mostly finite, ordinary values: rarer oddities are enough to find the edges.
    mask = draw(hnp.arrays(np.bool_, (rows, dim), elements=st.booleans()))
    values = np.where(mask, values, np.round(np.clip(np.nan_to_num(values), -5, 5)))
    with np.errstate(all="ignore"):
        if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
            return np.clip(np.nan_to_num(values, posinf=100, neginf=-100), -100, 100).astype(dtype)
        return values.astype(dtype)


def valid(x) -> str:
    """'yes' / 'no' / 'either' by the documented rule (finite float32 values, ||x||^2 <= FLT_MAX / 8)."""
    with np.errstate(all="ignore"):
        as32 = np.asarray(x).astype(np.float32).astype(np.float64)
        squared = (as32**2).sum(axis=1)
    if not np.isfinite(as32).all() or (squared > inputs.MAX_SQUARED_NORM * 1.01).any():
        return "no"
    return "yes" if (squared <= inputs.MAX_SQUARED_NORM * 0.99).all() else "either"


def reference_distances(x, q, metric):
    x64, q64 = (np.asarray(a).astype(np.float32).astype(np.float64) for a in (x, q))
    if metric == "cosine":
        xn = x64 / np.maximum(np.linalg.norm(x64, axis=1, keepdims=True), 1e-6)
        qn = q64 / np.maximum(np.linalg.norm(q64, axis=1, keepdims=True), 1e-6)
        return np.clip(1 - qn @ xn.T, 0, 2), 1e-5
    scale = max(np.abs(x64).max(initial=0), np.abs(q64).max(initial=0), 1.0) * np.sqrt(x64.shape[1])
    if metric == "inner_product":
        return -(q64 @ x64.T), 1e-5 * scale**2
    return np.sqrt(((q64[:, None] - x64[None]) ** 2).sum(-1)), 1e-5 * scale


def check_refusal(err, names):
    assert isinstance(err, (ValueError, TypeError)), repr(err)
    assert re.search("|".join(f"`{n}" for n in names), str(err)), str(err)


def check_index(idx, x, q, k, metric, ids):
    """The property, for any SearchIndex ``idx`` (empty, or holding only earlier valid entries)."""
    before = len(idx)
    try:
        idx.add(x, ids=ids)
        added = True
    except Exception as err:  # noqa: BLE001
        check_refusal(err, ["embeddings"])
        assert valid(x) != "yes" or (isinstance(idx, Index) and idx.backend == "ivf" and len(x) < 2), str(err)
        assert len(idx) == before  # nothing was added
        added = False
    if added:
        assert valid(x) != "no"
    try:
        res = idx.search(q, k=k)
    except Exception as err:  # noqa: BLE001
        check_refusal(err, ["queries", "k"])
        assert valid(q) != "yes" or not (isinstance(k, int) and not isinstance(k, bool) and k >= 1) or (
            idx.dim is not None and q.shape[1] != idx.dim
        ), str(err)
        return
    assert valid(q) != "no" and isinstance(k, int) and k >= 1
    n = len(idx)
    assert res.ids.shape == res.distances.shape == res.labels.shape == (len(q), min(k, n))
    if not added or n == 0:
        return
    truth, tol = reference_distances(x, q, metric)
    assert np.isfinite(res.distances).all() and np.all(np.diff(res.distances, axis=1) >= -tol)
    position = {int(i): p for p, i in enumerate(ids)}
    for row in range(len(q)):
        got = [truth[row, position[int(i)]] for i in res.ids[row]]
        np.testing.assert_allclose(res.distances[row], got, atol=tol, rtol=1e-4)  # each entry's own distance
        np.testing.assert_allclose(np.sort(got), np.sort(truth[row])[: res.ids.shape[1]], atol=tol, rtol=1e-4)


problem = st.tuples(
    st.integers(1, 5),  # dim
    st.integers(0, 12),  # entries
    st.integers(0, 4),  # queries
    st.one_of(st.integers(1, 15), st.sampled_from([0, -1, 10**9, 2**62, 1.5, True, "3"])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problem, metric=st.sampled_from(METRICS), backend=st.sampled_from(sorted(BACKENDS)), data=st.data())
def test_faiss_index_refuses_clearly_or_answers_correctly(problem, metric, backend, data):
    dim, n, nq, k = problem
    x = data.draw(arrays(n, dim), "embeddings")
    q = data.draw(arrays(nq, data.draw(st.sampled_from([dim, dim, dim + 1]), "query dim")), "queries")
    check_index(Index(metric, backend, **BACKENDS[backend]), x, q, k, metric, np.arange(n) * 7 + 3)


@pytest.fixture(scope="module")
def milvus_collections(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("props") / "props.db")
    return {metric: MilvusIndex(db, f"props_{metric}", metric, "FLAT", dim=3) for metric in METRICS}


_ids = itertools.count(0, 100)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(problem=problem, metric=st.sampled_from(METRICS), data=st.data())
def test_milvus_index_refuses_clearly_or_answers_correctly(milvus_collections, problem, metric, data):
    _, n, nq, k = problem
    x = data.draw(arrays(n, 3), "embeddings")
    q = data.draw(arrays(nq, data.draw(st.sampled_from([3, 3, 4]), "query dim")), "queries")
    idx = milvus_collections[metric]
    ids = np.arange(n) + next(_ids)
    try:
        check_index(idx, x, q, k, metric, ids)
    finally:
        present = idx.entries()[0]
        if len(present):
            idx.remove(present)
