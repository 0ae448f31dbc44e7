"""What every loss with class weights shares: labels, NaN, precision, strategies, gradients, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses
from tfcontrast.losses.class_weights import check_class_ids

FUNCTIONS = {
    "proxy_anchor": lambda y, e, w: losses.proxy_anchor_loss(y, e, w, 0.1, 8.0),
    "proxy_nca": lambda y, e, w: losses.proxy_nca_loss(y, e, w, 0.5),
    "arcface": lambda y, e, w: losses.arcface_loss(y, e, w, 0.5, 8.0),
    "cosface": lambda y, e, w: losses.cosface_loss(y, e, w, 0.35, 8.0),
}
CLASSES = {
    "proxy_anchor": lambda: losses.ProxyAnchorLoss(5, 4, margin=0.2, alpha=16.0),
    "proxy_nca": lambda: losses.ProxyNCALoss(5, 4, temperature=0.2),
    "arcface": lambda: losses.ArcFaceLoss(5, 4, margin=0.3, scale=16.0, easy_margin=True),
    "cosface": lambda: losses.CosFaceLoss(5, 4, margin=0.2, scale=16.0),
}
NAMES = list(FUNCTIONS)
LABELS = np.array([0, 1, 1, 3, 4, 0, 2, 4])


@pytest.fixture
def batch(rng):
    return LABELS, rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)


# ------------------------------------------------------------------ labels


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [-1, 5])
def test_ids_outside_the_classes_raise_eagerly_and_give_nan_when_compiled(name, bad, batch):
    labels, emb, weights = batch
    labels = labels.copy()
    labels[3] = bad
    with pytest.raises(ValueError, match=r"class ids in \[0, 5\).*\[" + str(bad) + r"\]"):
        FUNCTIONS[name](labels, emb, weights)
    with pytest.raises(ValueError, match=r"class ids in \[0, 5\)"):
        CLASSES[name]()(labels, emb)
    for jit in (False, True):
        compiled = tf.function(lambda y, e: FUNCTIONS[name](y, e, weights), jit_compile=jit)
        assert np.isnan(compiled(tf.constant(labels), emb).numpy())
        assert np.isfinite(compiled(tf.constant(LABELS), emb).numpy())


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_row_gives_nan_loss_but_no_nan_gradient_in_a_compiled_step(name, batch):
    labels, emb, weights = batch
    labels = labels.copy()
    labels[0] = 7
    var = tf.Variable(weights)

    @tf.function
    def step(y):
        with tf.GradientTape() as tape:
            value = FUNCTIONS[name](y, emb, var)
        return value, tape.gradient(value, var)

    value, grad = step(tf.constant(labels))
    assert np.isnan(value.numpy()) and np.all(np.isfinite(grad.numpy()))


def test_ids_are_compared_as_integers_beyond_float32_precision():
    # 2**24 + 1 rounds to 2**24 in float32: a float cast would accept id 2**24 + 1 with 2**24 + 1 classes
    # and select the wrong column with 2**24 + 2.
    big = 2**24 + 1
    with pytest.raises(ValueError, match=str(big)):
        check_class_ids(np.array([big], np.int64), big)
    from tfcontrast.losses.class_weights import class_targets

    targets, valid = class_targets(tf.constant([big], tf.int64), tf.zeros([1, big + 1]))
    assert bool(valid[0]) and tf.where(targets).numpy().tolist() == [[0, big]]
    with pytest.raises(ValueError, match=str(big)):
        class_targets(tf.constant([big], tf.int64), tf.zeros([1, big]))


@pytest.mark.parametrize("name", NAMES)
def test_labels_of_any_integer_dtype_or_whole_floats_give_the_same_loss(name, batch):
    labels, emb, weights = batch
    reference = FUNCTIONS[name](labels, emb, weights).numpy()
    for variant in (labels.astype(np.int32), labels.astype(np.uint8), labels[:, None], labels.astype(np.float64)):
        assert FUNCTIONS[name](variant, emb, weights).numpy() == reference
    with pytest.raises(ValueError, match="integer class ids"):
        FUNCTIONS[name](labels + 0.5, emb, weights)


@pytest.mark.parametrize("name", NAMES)
def test_nan_embedding_or_weight_gives_nan_loss(name, batch):
    labels, emb, weights = batch
    emb, weights = emb.copy(), weights.copy()
    emb[2, 1] = np.nan
    assert np.isnan(FUNCTIONS[name](labels, emb, batch[2]).numpy())
    weights[4, 0] = np.nan
    assert np.isnan(FUNCTIONS[name](labels, batch[1], weights).numpy())


@pytest.mark.parametrize("name", NAMES)
def test_shapes_are_checked(name, batch):
    labels, emb, weights = batch
    with pytest.raises(ValueError, match="embeddings.*class_weights"):
        FUNCTIONS[name](labels, emb[:, :3], weights)
    with pytest.raises(ValueError, match="labels"):
        FUNCTIONS[name](labels[:5], emb, weights)
    with pytest.raises(ValueError, match="embeddings"):
        CLASSES[name]()(labels, emb[:, :3])


# --------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_finite_differences_in_float64(name, rng):
    labels = np.array([0, 2, 2, 1])
    emb, weights = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    theoretical, numerical = tf.test.compute_gradient(lambda e, w: FUNCTIONS[name](labels, e, w), [emb, weights], delta=1e-6)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------- precision


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_policies_compute_in_float32(policy, name, batch):
    labels, emb, _ = batch
    half = tf.float16 if policy == "mixed_float16" else tf.bfloat16
    keras.mixed_precision.set_global_policy(policy)
    try:
        head = CLASSES[name]()
        emb_half = tf.Variable(tf.cast(emb, half))
        with tf.GradientTape() as tape:
            value = head(labels, emb_half)
        grad = tape.gradient(value, [emb_half, head.class_weights])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert head.compute_dtype == "float32" and head.class_weights.dtype == "float32"
    assert value.dtype == tf.float32 and grad[1].dtype == tf.float32
    assert np.all(np.isfinite(grad[0].numpy())) and np.all(np.isfinite(grad[1].numpy()))
    # The same numbers in float32 give the same loss: nothing was computed in half precision.
    same_values = FUNCTIONS_OF[name](head)(labels, tf.cast(emb_half, tf.float32), head.class_weights)
    np.testing.assert_allclose(value.numpy(), same_values.numpy(), rtol=1e-6)
    # And the float32 loss of the unrounded embeddings differs only by the rounding of the inputs.
    unrounded = FUNCTIONS_OF[name](head)(labels, emb, head.class_weights)
    np.testing.assert_allclose(value.numpy(), unrounded.numpy(), rtol=0.03 if half == tf.bfloat16 else 3e-3)


FUNCTIONS_OF = {
    "proxy_anchor": lambda h: lambda y, e, w: losses.proxy_anchor_loss(y, e, w, h.margin, h.alpha),
    "proxy_nca": lambda h: lambda y, e, w: losses.proxy_nca_loss(y, e, w, h.temperature),
    "arcface": lambda h: lambda y, e, w: losses.arcface_loss(y, e, w, h.margin, h.scale, h.easy_margin),
    "cosface": lambda h: lambda y, e, w: losses.cosface_loss(y, e, w, h.margin, h.scale),
}


# -------------------------------------------------------------- strategies


@pytest.mark.parametrize("name", NAMES)
def test_two_replicas_give_the_global_loss_and_gradients(name, two_replicas, batch):
    labels, emb, weights = batch
    single_w = tf.Variable(weights)
    emb_t = tf.constant(emb)
    with tf.GradientTape() as tape:
        tape.watch(emb_t)
        single = FUNCTIONS[name](labels, emb_t, single_w)
    single_ge, single_gw = tape.gradient(single, [emb_t, single_w])

    with two_replicas.scope():
        mirrored_w = tf.Variable(weights)
    # Replica 0 gets 5 rows, replica 1 gets 3: counts differ, the global statistics must not.
    parts = two_replicas.experimental_distribute_values_from_function(
        lambda ctx: (LABELS[:5], emb[:5]) if ctx.replica_id_in_sync_group == 0 else (LABELS[5:], emb[5:])
    )

    @tf.function
    def step(part):
        y, e = part
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = FUNCTIONS[name](y, e, mirrored_w)
        return (value,) + tuple(tape.gradient(value, [e, mirrored_w]))

    values, grads_e, grads_w = (two_replicas.experimental_local_results(r) for r in two_replicas.run(step, (parts,)))
    np.testing.assert_allclose(sum(v.numpy() for v in values), single.numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.concatenate([g.numpy() for g in grads_e]), single_ge.numpy(), rtol=1e-4, atol=1e-6)
    # The optimizer sums the replicas' class-weight gradients: that sum is the global gradient.
    np.testing.assert_allclose(sum(g.numpy() for g in grads_w), single_gw.numpy(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------ construction, config


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_keeps_arguments_and_shape(name):
    head = CLASSES[name]()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    assert type(restored) is type(head) and restored.get_config() == head.get_config()
    assert restored.class_weights.shape == (5, 4) and restored.weight_bytes == 5 * 4 * 4
    restored.class_weights.assign(head.class_weights)
    emb = np.linspace(-1, 1, 32).reshape(8, 4).astype(np.float32)
    assert float(restored(LABELS, emb)) == float(head(LABELS, emb))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 4.0}, "num_classes"),
        ({"num_classes": True}, "num_classes"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"dtype": "mixed_float16"}, "float32"),
    ],
)
def test_bad_construction_is_named(name, kwargs, match):
    cls = type(CLASSES[name]())
    args = {"num_classes": 5, "embedding_dim": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        cls(**args)


# ------------------------------------------------------- width set later


@pytest.mark.parametrize("name", NAMES)
def test_a_head_without_embedding_dim_takes_the_width_of_its_first_embeddings(name, batch):
    labels, emb, _ = batch
    keras.utils.set_random_seed(3)
    eager = CLASSES[name]()
    config = {k: v for k, v in eager.get_config().items() if k not in ("embedding_dim", "name")}
    keras.utils.set_random_seed(3)
    late = type(eager)(**{**config, "embedding_dim": None})
    assert not late.built and late.embedding_dim is None and late.weight_bytes == 0
    assert late.get_config()["embedding_dim"] is None
    value = float(late(labels, emb))  # builds W [5, 4] from the embeddings
    assert late.built and late.embedding_dim == 4 and late.class_weights.shape == (5, 4)
    # the same initializer draws the same matrix, so the loss is the one of a head built with the width
    np.testing.assert_array_equal(late.class_weights.numpy(), eager.class_weights.numpy())
    assert value == pytest.approx(float(eager(labels, emb)), rel=1e-6)
    assert late.get_config()["embedding_dim"] == 4  # saved built: a loaded head gets its weights at once
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(late))
    assert restored.built and restored.class_weights.shape == (5, 4)


@pytest.mark.parametrize("name", NAMES)
def test_a_head_without_embedding_dim_refuses_embeddings_of_unknown_width(name):
    head = type(CLASSES[name]())(5)
    spec = tf.TensorSpec([None, None], tf.float32)
    with pytest.raises(ValueError, match="embeddings \\[batch, dim\\] of a known width"):
        tf.function(lambda e: head(LABELS[:2], e), input_signature=[spec]).get_concrete_function()
    assert not head.built
