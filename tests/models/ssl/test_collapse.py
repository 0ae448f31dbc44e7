import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.models.ssl import collapse


def reference_projection_std(z):
    z = np.asarray(z, np.float64)
    rows = [r / max(np.sqrt(sum(v * v for v in r)), 1e-6) for r in z]
    n, d = len(rows), len(rows[0])
    stds = []
    for j in range(d):
        column = [r[j] for r in rows]
        mean = sum(column) / n
        stds.append(np.sqrt(sum((c - mean) ** 2 for c in column) / n))
    return sum(stds) / d


def reference_effective_rank(h):
    h = np.asarray(h, np.float64)
    sigma = np.linalg.svd(h - h.mean(axis=0), compute_uv=False)
    p = sigma / sigma.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def test_projection_std_matches_reference(rng):
    z = rng.normal(size=(50, 8)).astype(np.float32)
    assert float(collapse.projection_std(z)) == pytest.approx(reference_projection_std(z), rel=1e-5)


def test_projection_std_hand_values():
    # all rows equal: every dimension constant -> 0 (collapse)
    assert float(collapse.projection_std(np.tile([[3.0, 4.0]], (5, 1)))) == pytest.approx(0.0, abs=1e-6)
    # rows e1 and e2 (normalised already): each dimension is 0/1 half the time -> std 0.5
    assert float(collapse.projection_std([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.5)


def test_projection_std_of_random_directions_is_about_one_over_sqrt_d(rng):
    z = rng.normal(size=(4000, 64)).astype(np.float32)
    assert float(collapse.projection_std(z)) == pytest.approx(1 / 8, rel=0.05)


def test_effective_rank_matches_reference_and_hand_values(rng):
    h = rng.normal(size=(40, 6)).astype(np.float32) * np.array([5, 3, 1, 1, 0.1, 0.01], np.float32)
    assert float(collapse.effective_rank(h)) == pytest.approx(reference_effective_rank(h), rel=1e-3)
    # variance along one direction only: effective rank 1
    line = np.outer(rng.normal(size=30), [1.0, 2.0, 3.0]).astype(np.float32)
    assert float(collapse.effective_rank(line)) == pytest.approx(1.0, abs=1e-2)
    # k equal orthogonal directions (+-1 on k axes, balanced): effective rank k
    signs = np.array([[1, 1, 0, 0], [-1, 1, 0, 0], [1, -1, 0, 0], [-1, -1, 0, 0]], np.float32)
    assert float(collapse.effective_rank(signs)) == pytest.approx(2.0, rel=1e-4)


def test_global_over_two_replicas(two_replicas, rng):
    z = rng.normal(size=(16, 5)).astype(np.float32)
    halves = two_replicas.experimental_distribute_values_from_function(
        lambda ctx: z[8 * ctx.replica_id_in_sync_group:][:8]
    )
    stds, ranks = two_replicas.run(
        tf.function(lambda x: (collapse.projection_std(x), collapse.effective_rank(x))), args=(halves,)
    )
    for std, rank in zip(two_replicas.experimental_local_results(stds), two_replicas.experimental_local_results(ranks)):
        assert float(std) == pytest.approx(reference_projection_std(z), rel=1e-5)
        assert float(rank) == pytest.approx(reference_effective_rank(z), rel=1e-3)


def test_assignment_entropy_hand_values_and_over_two_replicas(two_replicas):
    k = 4
    even = np.eye(k, dtype=np.float32)[np.arange(12) % k] * 0.7 + 0.05  # argmax cycles over the 4 prototypes
    assert float(collapse.assignment_entropy(even)) == pytest.approx(np.log(k), rel=1e-6)
    one = np.tile(np.array([[0.1, 0.6, 0.2, 0.1]], np.float32), (12, 1))
    assert float(collapse.assignment_entropy(one)) == pytest.approx(0.0, abs=1e-7)
    halves = np.eye(k, dtype=np.float32)[[0] * 9 + [1] * 3]
    want = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert float(collapse.assignment_entropy(halves)) == pytest.approx(want, rel=1e-6)
    # the first replica holds only prototype 0, the second only prototype 1: the global usage is 1/2, 1/2
    split = np.eye(k, dtype=np.float32)[[0] * 6 + [1] * 6]
    dataset = two_replicas.experimental_distribute_dataset(tf.data.Dataset.from_tensors(split).unbatch().batch(12))
    result = two_replicas.run(tf.function(collapse.assignment_entropy), args=(next(iter(dataset)),))
    for value in two_replicas.experimental_local_results(result):
        assert float(value) == pytest.approx(np.log(2), rel=1e-6)
