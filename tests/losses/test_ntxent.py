import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses

# ---------------------------------------------------------------- references
# From the definitions (SimCLR eq. 1; Khosla et al. 2020 eq. 2, L_out), with
# explicit loops in float64. They share nothing with the implementation.


def normalise(v):
    v = np.asarray(v, np.float64)
    return v / max(np.sqrt(sum(x * x for x in v)), 1e-6)


def cosine(u, v):
    return sum(x * y for x, y in zip(normalise(u), normalise(v)))


def reference_nt_xent(z_a, z_b, t):
    views = list(z_a) + list(z_b)
    n2 = len(views)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        denominator = sum(np.exp(cosine(views[i], views[k]) / t) for k in range(n2) if k != i)
        total += -np.log(np.exp(cosine(views[i], views[j]) / t) / denominator)
    return total / n2


def reference_supcon(labels, x, t):
    n = len(x)
    per_anchor = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(np.exp(cosine(x[i], x[k]) / t) for k in range(n) if k != i)
        terms = [np.log(np.exp(cosine(x[i], x[p]) / t) / denominator) for p in positives]
        per_anchor.append(-sum(terms) / len(positives))
    return float(np.mean(per_anchor)) if per_anchor else 0.0


# ------------------------------------------------------ against the references


@pytest.mark.parametrize("n, dim", [(1, 3), (4, 2), (10, 16), (25, 8)])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 2.0])
def test_nt_xent_matches_reference(n, dim, temperature, rng):
    z_a = rng.normal(size=(n, dim)).astype(np.float32)
    z_b = (z_a + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)
    got = float(losses.NTXentLoss(temperature)(z_a, z_b))
    np.testing.assert_allclose(got, reference_nt_xent(z_a, z_b, temperature), rtol=1e-5)


@pytest.mark.parametrize("n, dim, classes", [(2, 3, 1), (9, 4, 3), (20, 8, 4), (16, 5, 16)])
@pytest.mark.parametrize("temperature", [0.07, 0.1, 1.0])
def test_supcon_matches_reference(n, dim, classes, temperature, rng):
    labels = rng.integers(0, classes, size=n)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    got = float(losses.SupConLoss(temperature)(labels, x))
    # SupCon is a difference of logits of magnitude 1/t; where the exact loss
    # is 0 (every other key a positive) float32 can only get within a couple of
    # ulps of 1/t, hence the absolute tolerance next to rtol 1e-5.
    atol = 2 * np.spacing(np.float32(1 / temperature))
    np.testing.assert_allclose(got, reference_supcon(labels, x, temperature), rtol=1e-5, atol=atol)


def test_supcon_with_views_axis_equals_flattened_batch(rng):
    labels = np.array([0, 1, 0, 2])
    x = rng.normal(size=(4, 3, 6)).astype(np.float32)  # 3 views per example
    flat_labels = np.repeat(labels, 3)
    got = float(losses.supcon_loss(labels, x, 0.2))
    np.testing.assert_allclose(got, reference_supcon(flat_labels, x.reshape(12, 6), 0.2), rtol=1e-5)


# ----------------------------------------------------------- hand-derived cases


def test_nt_xent_hand_derived():
    # views e1, e2 (first) and e1, e2 (second), t = 1. For every view the
    # positive has cos 1 and the other two keys cos 0 (the other example) and 1
    # (... no: its own copy is the positive; the two others are e_other twice).
    # View e1 (row 0): keys k != 0 are e2 (0), e1 (1, positive), e2 (0):
    #   -log(e / (1 + e + 1)) = log(e + 2) - 1 for each of the 4 rows.
    z = [[1.0, 0.0], [0.0, 1.0]]
    assert float(losses.nt_xent_loss(z, z, temperature=1.0)) == pytest.approx(np.log(np.e + 2) - 1, rel=1e-6)


def test_supcon_hand_derived():
    # labels 0, 0, 1 with embeddings e1, e1, e2 and t = 1:
    #   anchors 0 and 1: one positive (cos 1), keys k != i have cos 1 and 0:
    #     -log(e / (e + 1)) = log(1 + 1/e);  anchor 2 has no positive: excluded.
    loss = losses.supcon_loss([0, 0, 1], [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], temperature=1.0)
    assert float(loss) == pytest.approx(np.log(1 + np.exp(-1)), rel=1e-6)


# ---------------------------------------------------------------- blocked form


@pytest.mark.parametrize("block_size", [1, 3, 7, 64])
def test_blocked_nt_xent_equals_dense_in_value_and_gradient(block_size, rng):
    z_a = tf.Variable(rng.normal(size=(7, 5)).astype(np.float32))
    z_b = tf.Variable(rng.normal(size=(7, 5)).astype(np.float32))

    def value_and_grads(block):
        with tf.GradientTape() as tape:
            value = losses.nt_xent_loss(z_a, z_b, 0.2, block_size=block)
        return value, tape.gradient(value, [z_a, z_b])

    dense, dense_grads = value_and_grads(None)
    blocked, blocked_grads = value_and_grads(block_size)
    np.testing.assert_allclose(float(blocked), float(dense), rtol=1e-6)
    for got, want in zip(blocked_grads, dense_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)


def test_hand_written_gradient_matches_autodiff_of_the_definition(rng):
    # Autodiff of a direct formula (log_softmax with the diagonal removed) is an
    # independent check of the custom gradient in masked_logsumexp.
    z_a = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))
    z_b = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))

    def direct(z_a, z_b, t=0.3):
        z = tf.math.l2_normalize(tf.concat([z_a, z_b], 0), axis=1)
        logits = tf.matmul(z, z, transpose_b=True) / t - 1e9 * tf.eye(12)
        positive = tf.concat([tf.range(6, 12), tf.range(0, 6)], 0)
        return -tf.reduce_mean(tf.gather(tf.nn.log_softmax(logits), positive, batch_dims=1))

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z_a, z_b])
        ours = losses.nt_xent_loss(z_a, z_b, 0.3)
        theirs = direct(z_a, z_b)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-5)
    for v in (z_a, z_b):
        np.testing.assert_allclose(tape.gradient(ours, v).numpy(), tape.gradient(theirs, v).numpy(), rtol=1e-4, atol=1e-6)


# -------------------------------------------------------------- distribution


@pytest.mark.parametrize("name", ["nt_xent", "nt_xent_blocked", "supcon"])
def test_two_replicas_equal_one_device_on_the_global_batch(two_replicas, name, rng):
    batch, dim = 8, 5
    x_a = rng.normal(size=(batch, dim)).astype(np.float32)
    x_b = rng.normal(size=(batch, dim)).astype(np.float32)
    labels = np.array([0, 1, 0, 2, 1, 3, 2, 4])  # label 4 and 3 have no positive
    with two_replicas.scope():
        w = tf.Variable(rng.normal(size=(dim, 6)).astype(np.float32))

    def loss_and_grad(labels, x_a, x_b):
        with tf.GradientTape() as tape:
            if name == "supcon":
                value = losses.supcon_loss(labels, tf.stack([x_a @ w, x_b @ w], axis=1), 0.1)
            else:
                block = 3 if name == "nt_xent_blocked" else None
                value = losses.nt_xent_loss(x_a @ w, x_b @ w, 0.1, block_size=block)
        return value, tape.gradient(value, w)

    want_value, want_grad = loss_and_grad(tf.constant(labels), tf.constant(x_a), tf.constant(x_b))

    def local_slice(ctx):
        rows = slice(4 * ctx.replica_id_in_sync_group, 4 * ctx.replica_id_in_sync_group + 4)
        return labels[rows], x_a[rows], x_b[rows]

    per_replica = two_replicas.experimental_distribute_values_from_function(local_slice)
    values, grads = two_replicas.run(tf.function(loss_and_grad), args=per_replica)
    np.testing.assert_allclose(float(two_replicas.reduce("SUM", values, axis=None)), float(want_value), rtol=1e-5)
    got_grad = two_replicas.reduce("SUM", grads, axis=None).numpy()
    np.testing.assert_allclose(got_grad, want_grad.numpy(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------- robustness and dtypes


def test_supcon_without_positives_is_zero_with_zero_gradient(rng):
    x = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        value = losses.supcon_loss([0, 1, 2, 3], x)
    assert float(value) == 0.0
    assert np.all(tape.gradient(value, x).numpy() == 0.0)


def test_single_example_batches_are_finite():
    x = tf.Variable([[1.0, 2.0]])
    with tf.GradientTape(persistent=True) as tape:
        supcon = losses.supcon_loss([0], x)
        ntxent = losses.nt_xent_loss(x, 2.0 * x)  # only the positive in the denominator
    assert float(supcon) == 0.0 and float(ntxent) == pytest.approx(0.0, abs=1e-6)
    for value in (supcon, ntxent):
        assert np.all(np.isfinite(tape.gradient(value, x).numpy()))


@pytest.mark.parametrize("fill", [0.0, 3.0], ids=["zero", "identical"])
@pytest.mark.parametrize("name", ["nt_xent", "supcon"])
def test_zero_or_identical_embeddings_have_finite_gradients(fill, name):
    x = tf.Variable(tf.fill([4, 3], fill))
    with tf.GradientTape() as tape:
        if name == "supcon":
            value = losses.supcon_loss([0, 0, 1, 1], x)
        else:
            value = losses.nt_xent_loss(x, x + 0.0)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(tape.gradient(value, x).numpy()))


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_inputs_give_finite_float32(dtype, rng):
    z = tf.cast(rng.normal(size=(8, 16)) * 100, dtype)
    for value in (losses.nt_xent_loss(z, z[::-1], 0.05), losses.supcon_loss(np.arange(8) % 3, z, 0.05)):
        assert value.dtype == tf.float32 and np.isfinite(float(value))


@pytest.mark.parametrize("block_size", [None, 4])
def test_nt_xent_compiles_under_xla(block_size, rng):
    z_a = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))
    z_b = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))

    def value_and_grad(z_a, z_b):
        with tf.GradientTape() as tape:
            tape.watch(z_a)
            value = losses.nt_xent_loss(z_a, z_b, 0.1, block_size)
        return value, tape.gradient(value, z_a)

    want = value_and_grad(z_a, z_b)
    got = tf.function(value_and_grad, jit_compile=True)(z_a, z_b)
    np.testing.assert_allclose(float(got[0]), float(want[0]), rtol=1e-5)
    np.testing.assert_allclose(got[1].numpy(), want[1].numpy(), rtol=1e-4, atol=1e-6)


def test_supcon_compiles_under_xla(rng):
    labels = tf.constant([0, 1, 0, 1, 2])
    x = tf.constant(rng.normal(size=(5, 4)).astype(np.float32))
    compiled = tf.function(lambda l, x: losses.supcon_loss(l, x, 0.1), jit_compile=True)
    np.testing.assert_allclose(float(compiled(labels, x)), float(losses.supcon_loss(labels, x, 0.1)), rtol=1e-5)


# ------------------------------------------------------------------- properties


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**16))
def test_invariant_to_batch_permutation(seed):
    rng = np.random.default_rng(seed)
    z_a, z_b = rng.normal(size=(2, 7, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=7)
    perm = rng.permutation(7)
    np.testing.assert_allclose(
        float(losses.nt_xent_loss(z_a, z_b, 0.2)), float(losses.nt_xent_loss(z_a[perm], z_b[perm], 0.2)), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(losses.supcon_loss(labels, z_a, 0.2)), float(losses.supcon_loss(labels[perm], z_a[perm], 0.2)), rtol=1e-5
    )


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**16), scale_a=st.floats(1e-4, 1e4), scale_b=st.floats(1e-4, 1e4))
def test_invariant_to_embedding_scale(seed, scale_a, scale_b):
    rng = np.random.default_rng(seed)
    z_a, z_b = rng.normal(size=(2, 6, 4)).astype(np.float32)
    labels = rng.integers(0, 2, size=6)
    base = float(losses.nt_xent_loss(z_a, z_b, 0.5))
    scaled = float(losses.nt_xent_loss(z_a * np.float32(scale_a), z_b * np.float32(scale_b), 0.5))
    np.testing.assert_allclose(scaled, base, rtol=1e-4)
    np.testing.assert_allclose(
        float(losses.supcon_loss(labels, z_a * np.float32(scale_a), 0.5)),
        float(losses.supcon_loss(labels, z_a, 0.5)),
        rtol=1e-4,
    )


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**16),
    magnitude=st.sampled_from([1e-30, 1e-8, 1.0, 1e8, 1e30]),
    temperature=st.sampled_from([1e-3, 0.1, 10.0]),
)
def test_finite_under_extreme_inputs(seed, magnitude, temperature):
    rng = np.random.default_rng(seed)
    z = tf.Variable((rng.normal(size=(6, 3)) * magnitude).astype(np.float32))
    with tf.GradientTape() as tape:
        value = losses.nt_xent_loss(z, z[::-1], temperature) + losses.supcon_loss([0, 0, 1, 1, 2, 2], z, temperature)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(tape.gradient(value, z).numpy()))


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.NTXentLoss(temperature=0.0), "temperature"),
        (lambda: losses.SupConLoss(temperature=-1.0), "temperature"),
        (lambda: losses.NTXentLoss(block_size=0), "block_size"),
        (lambda: losses.nt_xent_loss(np.ones((3, 4)), np.ones((2, 4))), r"`z_a` and `z_b`.*\(3, 4\).*\(2, 4\)"),
        (lambda: losses.nt_xent_loss(np.ones((3, 4)), np.ones((3, 5))), r"`z_a` and `z_b`"),
        (lambda: losses.nt_xent_loss(np.ones(4), np.ones(4)), r"`z_a`.*rank 2"),
        (lambda: losses.supcon_loss([0, 1], np.ones((3, 4))), r"labels.*2 entries.*3 rows"),
        (lambda: losses.supcon_loss([0, 1], np.ones(2)), r"embeddings.*rank 2 or 3"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
