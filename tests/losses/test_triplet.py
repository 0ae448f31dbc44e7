import itertools

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses

METRICS = ["euclidean", "sqeuclidean", "cosine", "inner_product"]
TFA_METRICS = {"L2": "euclidean", "squared-L2": "sqeuclidean", "angular": "cosine"}


# ---------------------------------------------------------------- references
# Written from the definitions (FaceNet semi-hard; Hermans et al. batch-hard /
# batch-all; TensorFlow Addons' documented algorithm) with explicit loops in
# float64. They share nothing with the implementation.


def distance(u, v, metric):
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    if metric == "inner_product":
        return -float(u @ v)
    if metric == "cosine":
        nu, nv = max(np.linalg.norm(u), 1e-6), max(np.linalg.norm(v), 1e-6)
        return max(1.0 - float(u @ v) / (nu * nv), 0.0)
    sq = float(((u - v) ** 2).sum())
    return sq if metric == "sqeuclidean" else np.sqrt(sq)


def distance_matrix(x, metric):
    n = len(x)
    return [[0.0 if i == j else distance(x[i], x[j], metric) for j in range(n)] for i in range(n)]


def margin_loss(d_ap, d_an, margin, soft):
    return np.log1p(np.exp(d_ap - d_an)) if soft else max(d_ap - d_an + margin, 0.0)


def has_positive_and_negative(labels):
    n = len(labels)
    pos = any(labels[i] == labels[j] for i in range(n) for j in range(n) if i != j)
    neg = any(labels[i] != labels[j] for i in range(n) for j in range(n))
    return pos and neg


def reference_semi_hard(labels, x, margin, metric, soft=False):
    if not has_positive_and_negative(labels):
        return 0.0
    d = distance_matrix(x, metric)
    total, count = 0.0, 0
    for a in range(len(x)):
        negatives = [d[a][k] for k in range(len(x)) if labels[k] != labels[a]]
        for p in range(len(x)):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [dn for dn in negatives if dn > d[a][p]]
            d_an = min(farther) if farther else max(negatives)
            total += margin_loss(d[a][p], d_an, margin, soft)
            count += 1
    return total / count


def reference_hard(labels, x, margin, metric, soft=False):
    d = distance_matrix(x, metric)
    total, count = 0.0, 0
    for a in range(len(x)):
        pos = [d[a][p] for p in range(len(x)) if p != a and labels[p] == labels[a]]
        neg = [d[a][k] for k in range(len(x)) if labels[k] != labels[a]]
        if pos and neg:
            total += margin_loss(max(pos), min(neg), margin, soft)
            count += 1
    return total / count if count else 0.0


def reference_tfa_hard(labels, x, margin, metric, soft=False):
    """TFA: mean over all anchors; an anchor without positives uses its row minimum (0)."""
    if not has_positive_and_negative(labels):
        return 0.0
    d = distance_matrix(x, metric)
    total = 0.0
    for a in range(len(x)):
        pos = [d[a][p] for p in range(len(x)) if p != a and labels[p] == labels[a]]
        neg = [d[a][k] for k in range(len(x)) if labels[k] != labels[a]]
        total += margin_loss(max(pos) if pos else min(d[a]), min(neg), margin, soft)
    return total / len(x)


def reference_all(labels, x, margin, metric, soft=False):
    d = distance_matrix(x, metric)
    counted = []
    for a, p, n in itertools.product(range(len(x)), repeat=3):
        if p != a and labels[p] == labels[a] and labels[n] != labels[a]:
            value = margin_loss(d[a][p], d[a][n], margin, soft)
            if value > 0:
                counted.append(value)
    return float(np.mean(counted)) if counted else 0.0


REFERENCES = {"semi-hard": reference_semi_hard, "hard": reference_hard, "all": reference_all}


def random_batch(rng, n, dim, classes):
    labels = rng.integers(0, classes, size=n)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return labels, x


# ------------------------------------------------------ against the references


@pytest.mark.parametrize("mining", ["semi-hard", "hard", "all"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("n, dim, classes, margin", [(6, 3, 2, 0.5), (12, 8, 3, 1.0), (17, 4, 5, 0.2)])
def test_triplet_loss_matches_reference(mining, metric, n, dim, classes, margin, rng):
    labels, x = random_batch(rng, n, dim, classes)
    got = float(losses.triplet_loss(labels, x, margin=margin, mining=mining, distance=metric))
    want = REFERENCES[mining](labels, x, margin, metric)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mining", ["semi-hard", "hard", "all"])
def test_soft_margin_matches_reference(mining, rng):
    labels, x = random_batch(rng, 10, 4, 3)
    got = float(losses.triplet_loss(labels, x, margin=0.7, mining=mining, soft=True))
    want = REFERENCES[mining](labels, x, 0.7, "euclidean", soft=True)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("distance_metric", list(TFA_METRICS))
@pytest.mark.parametrize("n, classes, margin", [(8, 2, 1.0), (15, 4, 0.3)])
def test_tfa_semi_hard_matches_tfa_algorithm(distance_metric, n, classes, margin, rng):
    labels, x = random_batch(rng, n, 5, classes)
    loss = losses.TripletSemiHardLoss(margin=margin, distance_metric=distance_metric)
    want = reference_semi_hard(labels, x, margin, TFA_METRICS[distance_metric])
    np.testing.assert_allclose(float(loss(labels[:, None], x)), want, rtol=1e-5)


@pytest.mark.parametrize("distance_metric", list(TFA_METRICS))
@pytest.mark.parametrize("soft", [False, True])
def test_tfa_hard_matches_tfa_algorithm_including_anchors_without_positives(distance_metric, soft, rng):
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 4])  # classes 2, 3, 4 have no positive
    x = rng.normal(size=(8, 5)).astype(np.float32)
    loss = losses.TripletHardLoss(margin=0.4, soft=soft, distance_metric=distance_metric)
    want = reference_tfa_hard(labels, x, 0.4, TFA_METRICS[distance_metric], soft)
    np.testing.assert_allclose(float(loss(labels, x)), want, rtol=1e-5)
    # The package's own batch-hard counts only anchors that have a positive.
    ours = losses.triplet_loss(labels, x, 0.4, "hard", TFA_METRICS[distance_metric], soft)
    np.testing.assert_allclose(float(ours), reference_hard(labels, x, 0.4, TFA_METRICS[distance_metric], soft), rtol=1e-5)
    assert abs(float(ours) - want) > 1e-3


# ----------------------------------------------------------- hand-derived cases
# 1-D points x = 0, 1, 1.5, 4 with labels 0, 0, 1, 1, Euclidean, margin 1.
# Distances: d01 = 1, d02 = 1.5, d03 = 4, d12 = 0.5, d13 = 3, d23 = 2.5.
HAND_LABELS = [0, 0, 1, 1]
HAND_X = [[0.0], [1.0], [1.5], [4.0]]


def test_semi_hard_hand_derived():
    # (0,1): d_ap=1, negatives {1.5, 4}, closest farther 1.5 -> 1 - 1.5 + 1 = 0.5
    # (1,0): d_ap=1, negatives {0.5, 3}, closest farther 3   -> max(-1, 0) = 0
    # (2,3): d_ap=2.5, negatives {1.5, 0.5}, none farther -> farthest 1.5 -> 2
    # (3,2): d_ap=2.5, negatives {4, 3}, closest farther 3 -> 0.5
    # mean over the 4 positive pairs: 3 / 4
    assert float(losses.triplet_loss(HAND_LABELS, HAND_X, 1.0, "semi-hard")) == pytest.approx(0.75)
    assert float(losses.TripletSemiHardLoss()(HAND_LABELS, HAND_X)) == pytest.approx(0.75)


def test_hard_hand_derived():
    # anchor 0: max pos 1, min neg 1.5 -> 0.5;  anchor 1: 1, 0.5 -> 1.5
    # anchor 2: 2.5, 0.5 -> 3;                  anchor 3: 2.5, 3 -> 0.5     mean 5.5 / 4
    assert float(losses.triplet_loss(HAND_LABELS, HAND_X, 1.0, "hard")) == pytest.approx(1.375)
    assert float(losses.TripletHardLoss()(HAND_LABELS, HAND_X)) == pytest.approx(1.375)


def test_all_hand_derived():
    # positive triplets (a, p, n): (0,1,2) 0.5, (1,0,2) 1.5, (2,3,0) 2, (2,3,1) 3, (3,2,1) 0.5
    # the other three are <= 0; mean over the five positive ones: 7.5 / 5
    assert float(losses.triplet_loss(HAND_LABELS, HAND_X, 1.0, "all")) == pytest.approx(1.5)


def test_docstring_example_value():
    # Euclidean, margin 1: anchors give 1, 1 - sqrt(2) + 1, 2 - 1 + 1 and 0; mean 0.8964
    emb = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]]
    want = (1 + (2 - np.sqrt(2)) + 2 + 0) / 4
    assert float(losses.triplet_loss([0, 0, 1, 1], emb, mining="hard")) == pytest.approx(want, rel=1e-6)


# ------------------------------------------------------------ degenerate batches


@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [5, 5, 5, 5]], ids=["no-positive", "no-negative"])
@pytest.mark.parametrize(
    "loss",
    [
        losses.TripletLoss(mining="semi-hard"),
        losses.TripletLoss(mining="hard"),
        losses.TripletLoss(mining="all"),
        losses.TripletLoss(mining="hard", soft=True),
        losses.TripletSemiHardLoss(),
        losses.TripletHardLoss(),
    ],
    ids=["semi-hard", "hard", "all", "hard-soft", "tfa-semi-hard", "tfa-hard"],
)
def test_batch_without_positive_or_negative_gives_zero_and_zero_gradient(labels, loss, rng):
    x = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        value = loss(labels, x)
    grad = tape.gradient(value, x)
    assert float(value) == 0.0
    assert grad is None or np.all(grad.numpy() == 0.0)


@pytest.mark.parametrize("mining", ["semi-hard", "hard", "all"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("fill", [0.0, 1.0], ids=["zero", "identical"])
def test_identical_or_zero_embeddings_have_finite_gradients(mining, metric, fill):
    x = tf.Variable(tf.fill([6, 4], fill))
    with tf.GradientTape() as tape:
        value = losses.triplet_loss([0, 0, 1, 1, 2, 2], x, 1.0, mining, metric)
    grad = tape.gradient(value, x).numpy()
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))


# ---------------------------------------------------------------- gradients


def test_hard_mining_gradient_hand_derived():
    # 1-D points 0, 1, 3, 3.5, labels 0, 0, 1, 1, Euclidean, margin 1.2:
    #   anchor 0: 1 - 3 + 1.2 < 0;    anchor 1: d10 - d12 + 1.2 = 1 - 2 + 1.2 = 0.2
    #   anchor 2: 0.5 - 2 + 1.2 < 0;  anchor 3: 0.5 - 2.5 + 1.2 < 0
    # loss = (|x1 - x0| - |x1 - x2| + 1.2) / 4 = 0.05, so the gradient is
    # d/dx0 = -1/4, d/dx1 = (1 + 1)/4, d/dx2 = -1/4 and exactly 0 for x3.
    x = tf.Variable([[0.0], [1.0], [3.0], [3.5]])
    with tf.GradientTape() as tape:
        value = losses.triplet_loss([0, 0, 1, 1], x, margin=1.2, mining="hard")
    assert float(value) == pytest.approx(0.05)
    np.testing.assert_allclose(tape.gradient(value, x).numpy()[:, 0], [-0.25, 0.5, -0.25, 0.0], atol=1e-7)


# ----------------------------------------------------- precision and compilation


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("mining", ["semi-hard", "hard", "all"])
def test_half_precision_inputs_give_finite_float32(dtype, mining, rng):
    labels, x = random_batch(rng, 12, 6, 3)
    value = losses.triplet_loss(labels, tf.cast(x * 50, dtype), mining=mining)
    assert value.dtype == tf.float32 and np.isfinite(float(value))


@pytest.mark.parametrize(
    "loss",
    [losses.TripletLoss(mining="semi-hard"), losses.TripletLoss(mining="all", distance="cosine"), losses.TripletHardLoss(soft=True)],
    ids=["semi-hard", "all", "tfa-hard"],
)
def test_compiles_under_xla(loss, rng):
    labels, x = random_batch(rng, 10, 4, 3)

    def value_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(labels, x)
        return value, tape.gradient(value, x)

    compiled = tf.function(value_and_grad, jit_compile=True)
    want_value, want_grad = value_and_grad(tf.constant(x))
    got_value, got_grad = compiled(tf.constant(x))
    np.testing.assert_allclose(float(got_value), float(want_value), rtol=1e-5)
    np.testing.assert_allclose(got_grad.numpy(), want_grad.numpy(), rtol=1e-4, atol=1e-6)


# -------------------------------------------------------------- distribution


@pytest.mark.parametrize("mining", ["semi-hard", "hard", "all"])
def test_two_replicas_mine_the_global_batch(two_replicas, mining, rng):
    labels, x = random_batch(rng, 12, 4, 3)
    with two_replicas.scope():
        w = tf.Variable(rng.normal(size=(4, 4)).astype(np.float32))

    def loss_and_grad(labels, x):
        with tf.GradientTape() as tape:
            value = losses.triplet_loss(labels, x @ w, margin=0.5, mining=mining)
        return value, tape.gradient(value, w)

    want_value, want_grad = loss_and_grad(tf.constant(labels), tf.constant(x))
    halves = two_replicas.experimental_distribute_values_from_function(
        lambda ctx: (labels[6 * ctx.replica_id_in_sync_group:][:6], x[6 * ctx.replica_id_in_sync_group:][:6])
    )
    values, grads = two_replicas.run(tf.function(loss_and_grad), args=halves)
    got_value = two_replicas.reduce("SUM", values, axis=None)
    got_grad = two_replicas.reduce("SUM", grads, axis=None)
    np.testing.assert_allclose(float(got_value), float(want_value), rtol=1e-5)
    np.testing.assert_allclose(got_grad.numpy(), want_grad.numpy(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------- properties


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**16), mining=st.sampled_from(["semi-hard", "hard", "all"]))
def test_invariant_to_batch_permutation(seed, mining):
    rng = np.random.default_rng(seed)
    labels, x = random_batch(rng, 9, 3, 3)
    perm = rng.permutation(9)
    a = float(losses.triplet_loss(labels, x, 0.5, mining))
    b = float(losses.triplet_loss(labels[perm], x[perm], 0.5, mining))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-3, 1e3),
    mining=st.sampled_from(["semi-hard", "hard", "all"]),
)
def test_cosine_distance_is_invariant_to_embedding_scale(seed, scale, mining):
    rng = np.random.default_rng(seed)
    labels, x = random_batch(rng, 9, 3, 3)
    a = float(losses.triplet_loss(labels, x, 0.3, mining, "cosine"))
    b = float(losses.triplet_loss(labels, x * np.float32(scale), 0.3, mining, "cosine"))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**16),
    magnitude=st.sampled_from([1e-30, 1e-6, 1.0, 1e6, 1e15]),
    mining=st.sampled_from(["semi-hard", "hard", "all"]),
    metric=st.sampled_from(METRICS),
)
def test_finite_under_extreme_inputs(seed, magnitude, mining, metric):
    rng = np.random.default_rng(seed)
    labels, x = random_batch(rng, 8, 3, 3)
    x = tf.Variable((x * magnitude).astype(np.float32))
    with tf.GradientTape() as tape:
        value = losses.triplet_loss(labels, x, 1.0, mining, metric)
    grad = tape.gradient(value, x)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(grad.numpy()))


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.TripletLoss(margin=-0.1), "margin"),
        (lambda: losses.TripletLoss(mining="easy"), "mining.*'easy'"),
        (lambda: losses.TripletLoss(distance="manhattan"), "distance"),
        (lambda: losses.TripletSemiHardLoss(distance_metric="cosine"), "distance_metric"),
        (lambda: losses.TripletHardLoss(margin=float("nan")), "margin"),
        (lambda: losses.triplet_loss([0, 1], np.ones((2, 3, 1))), r"embeddings.*rank 2.*\(2, 3, 1\)"),
        (lambda: losses.triplet_loss([0, 1, 1], np.ones((2, 3))), r"labels.*3 entries.*2 rows"),
        (lambda: losses.triplet_loss(np.ones((2, 2)), np.ones((2, 3))), r"labels.*shape \(2, 2\)"),
        (lambda: losses.triplet_loss([0.5, 1.0], np.ones((2, 3))), "integer class ids"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
