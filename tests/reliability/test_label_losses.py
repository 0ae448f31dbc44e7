"""Issue 11, label losses and the supervised models: every case here failed before the fix.

S8/S11 labels >= 2**24 merged; S10/S12 non-integer float labels truncated in
graph mode only; S6/S13 NaN hidden behind a finite loss; S7/S14 pair labels
other than 0/1 trained on; an empty semi-hard batch gave an unclear error.
"""

import hypothesis
import hypothesis.strategies as st
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcontrast as tfc
from tfcontrast import losses

LABEL_LOSSES = {
    "triplet-hard": lambda: losses.TripletLoss(mining="hard"),
    "triplet-semi-hard": lambda: losses.TripletLoss(mining="semi-hard"),
    "triplet-all": lambda: losses.TripletLoss(mining="all"),
    "tfa-semi-hard": losses.TripletSemiHardLoss,
    "tfa-hard": losses.TripletHardLoss,
    "supcon": losses.SupConLoss,
    "multisimilarity": lambda: losses.MultiSimilarityLoss(distance="l2", epsilon=1.0),
    "circle": losses.CircleLoss,
    "pn": losses.PNLoss,
    "soft-nn": losses.SoftNearestNeighborLoss,
    "lifted": losses.LiftedStructLoss,
    "xbm": lambda: losses.XBM(losses.TripletLoss(mining="hard"), memory_size=16),
}
# Three classes of two; in float32 the first two ids are one number (2**24 + 1 rounds to 2**24).
SMALL = np.array([0, 0, 1, 1, 2, 2], np.int64)
BIG = np.array([2**24, 2**24, 2**24 + 1, 2**24 + 1, 2**40 + 1, 2**40 + 1], np.int64)


def embeddings(rng, n=6, dim=4):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def mlp(seed=0):
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(32, activation="relu", kernel_initializer=init)(inputs)
    return keras.Model(inputs, keras.layers.Dense(16, kernel_initializer=init)(h))


@pytest.fixture(scope="module")
def digits():
    split = tfc.data.load_digits()
    return split.x_train[:96].reshape(-1, 64), split.y_train[:96]


# ------------------------------------------------------------- S8 / S11


@pytest.mark.parametrize("name", list(LABEL_LOSSES))
def test_s8_int64_labels_above_2_pow_24_reach_the_mining_exactly(name, rng):
    """Three classes: the class must give the loss of labels 0, 1, 2, not that of float32-merged ids."""
    x = embeddings(rng)
    small = LABEL_LOSSES[name]()(tf.constant(SMALL), x)
    big = LABEL_LOSSES[name]()(tf.constant(BIG), x)
    assert float(small) > 0.0
    assert float(big) == pytest.approx(float(small), rel=1e-6)


def test_s8_the_issue_reproduction():
    e = tf.constant([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]])
    labels = tf.constant([2**24, 2**24 + 1, 2**25, 2**25 + 1], tf.int64)
    assert float(losses.TripletLoss(mining="hard")(labels, e)) == 0.0 == float(losses.triplet_loss(labels, e, mining="hard"))


def test_s11_embedding_model_fits_int64_ids_like_small_ids(digits):
    """The same run with labels y and y + 2**40 (int64 product ids) gives the same losses."""
    x, y = digits

    def run(labels):
        keras.utils.set_random_seed(0)
        model = tfc.models.EmbeddingModel(mlp(), embedding_dim=8)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=losses.TripletLoss(margin=0.2, mining="hard"))
        return model.fit(x, labels, batch_size=48, epochs=2, shuffle=False, verbose=0).history["loss"]

    small = run(y.astype(np.int64))
    assert run(y.astype(np.int64) + 2**40) == pytest.approx(small, rel=1e-6)


def test_s11_float_labels_that_float32_cannot_hold_are_refused_at_fit(digits):
    x, y = digits
    model = tfc.models.EmbeddingModel(mlp(), embedding_dim=8)
    model.compile(optimizer="sgd", loss=losses.TripletLoss())
    with pytest.raises(ValueError, match="2\\*\\*24.*integers"):
        model.fit(x, (y + 2**24 + 1).astype(np.float64), batch_size=48, epochs=1, verbose=0)


# ------------------------------------------------------------- S10 / S12


@pytest.mark.parametrize("name", list(LABEL_LOSSES))
def test_s10_non_integer_float_labels_are_refused_in_every_mode(name, rng):
    labels = tf.constant([0.2, 0.7, 0.2, 0.7, 1.0, 1.0])
    x = tf.constant(embeddings(rng))
    with pytest.raises(ValueError, match="integer class ids"):
        LABEL_LOSSES[name]()(labels, x)
    loss = LABEL_LOSSES[name]()
    with pytest.raises(tf.errors.InvalidArgumentError, match="integer class ids"):
        tf.function(lambda a, b: loss(a, b))(labels, x)
    # XLA compiles assertions out: the loss is NaN there, never a value computed on truncated labels
    loss = LABEL_LOSSES[name]()
    assert np.isnan(float(tf.function(lambda a, b: loss(a, b), jit_compile=True)(labels, x)))


def test_s12_embedding_model_fit_on_a_dataset_refuses_non_integer_labels(digits):
    x, _ = digits
    labels = np.tile([0.2, 0.7], len(x) // 2).astype(np.float32)
    model = tfc.models.EmbeddingModel(mlp(), embedding_dim=8)
    model.compile(optimizer="sgd", loss=losses.TripletLoss())
    data = tf.data.Dataset.from_tensor_slices((x, labels)).batch(48)
    with pytest.raises(tf.errors.InvalidArgumentError, match="integer class ids"):
        model.fit(data, epochs=1, verbose=0)


def test_s10_whole_float_labels_still_work_and_equal_integer_labels(rng):
    x = embeddings(rng)
    f = tf.function(lambda a, b: losses.triplet_loss(a, b, mining="hard"))
    assert float(f(tf.constant([0.0, 0.0, 1.0, 1.0, 2.0, 2.0]), x)) == pytest.approx(
        float(losses.triplet_loss([0, 0, 1, 1, 2, 2], x, mining="hard"))
    )


# ------------------------------------------------------------- S6 / S13


@pytest.mark.parametrize("name", list(LABEL_LOSSES))
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_s6_a_non_finite_embedding_gives_a_nan_loss(name, bad, rng):
    x = embeddings(rng)
    x[2, 1] = bad
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert np.isnan(float(LABEL_LOSSES[name]()(labels, x)))
    loss = LABEL_LOSSES[name]()
    assert np.isnan(float(tf.function(lambda a, b: loss(a, b))(labels, x)))


def test_s6_the_issue_reproduction(rng):
    x = tf.Variable(embeddings(rng))
    x[2].assign([np.nan, 0.0, 0.0, 0.0])
    with tf.GradientTape() as tape:
        value = losses.TripletLoss(mining="all")([0, 0, 1, 1, 2, 2], x)
    assert np.isnan(float(value))  # was 0.9157 over NaN gradients


@pytest.mark.parametrize("name", ["npairs", "npairs-multilabel", "contrastive"])
def test_s6_non_finite_predictions_of_the_other_losses_give_nan(name):
    s = np.eye(4, dtype=np.float32) * 3
    s[1, 2] = np.nan
    if name == "npairs":
        value = losses.NpairsLoss()([0, 1, 2, 3], s)
    elif name == "npairs-multilabel":
        value = losses.NpairsMultilabelLoss()(np.eye(4), s)
    else:
        value = losses.ContrastiveLoss()([1.0, 0.0], [0.5, np.nan])
    assert np.isnan(float(value))


def test_s13_a_nan_pixel_shows_as_a_nan_loss_and_terminate_on_nan_stops(digits):
    """A ReLU hides the NaN from the embeddings; the weights turn NaN: the loss must say so."""
    x, y = digits
    x = x.copy()
    x[3, 5] = np.nan
    model = tfc.models.EmbeddingModel(mlp(), embedding_dim=8)
    model.compile(optimizer="adam", loss=losses.TripletLoss(margin=0.2))
    history = model.fit(x, y, batch_size=48, epochs=3, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()])
    assert np.isnan(history.history["loss"][0])
    assert len(history.history["loss"]) == 1  # stopped


# ------------------------------------------------------------- S7 / S14


def test_s7_contrastive_pair_labels_must_be_0_or_1():
    with pytest.raises(ValueError, match="0 or 1"):
        losses.ContrastiveLoss()([2.0, 0.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="0 or 1"):
        losses.contrastive_loss([1.0, -1.0], [0.5, 0.5])
    loss = losses.ContrastiveLoss()
    with pytest.raises(tf.errors.InvalidArgumentError, match="0 or 1"):
        tf.function(lambda a, b: loss(a, b))(tf.constant([2.0, 0.0]), tf.constant([0.5, 0.5]))
    xla = tf.function(lambda a, b: loss(a, b), jit_compile=True)
    assert np.isnan(float(xla(tf.constant([2.0, 0.0]), tf.constant([0.5, 0.5]))))
    assert float(xla(tf.constant([1.0, 0.0]), tf.constant([0.5, 0.5]))) == pytest.approx(0.25)


def test_s14_siamese_fit_refuses_pair_labels_other_than_0_and_1(digits):
    x, _ = digits
    model = tfc.models.SiameseNetwork(mlp())
    model.compile(optimizer="sgd", loss=losses.ContrastiveLoss())
    y = np.full(len(x), 2.0, np.float32)
    with pytest.raises(ValueError, match="0 \\(dissimilar\\) or 1"):
        model.fit((x, x[::-1]), y, batch_size=48, epochs=1, verbose=0)
    data = tf.data.Dataset.from_tensor_slices(((x, x[::-1]), y)).batch(48)
    with pytest.raises(tf.errors.InvalidArgumentError, match="0 or 1"):
        model.fit(data, epochs=1, verbose=0)


# ------------------------------------------------------------- empty batch


@pytest.mark.parametrize("name", list(LABEL_LOSSES))
def test_an_empty_batch_gives_zero_and_a_zero_gradient_not_an_unclear_error(name):
    """Was: ``Requires delta != 0 [Op:Range]`` from the gradient of tf.sort (semi-hard mining)."""
    labels = tf.zeros([0], tf.int64)
    loss = LABEL_LOSSES[name]()

    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = loss(labels, e)
        return value, tape.gradient(value, e)

    for call in (value_and_grad, tf.function(value_and_grad)):
        value, grad = call(tf.zeros([0, 16]))
        assert float(value) == 0.0 and grad.shape == (0, 16)


# ------------------------------------------------------------- property


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(
    name=st.sampled_from(list(LABEL_LOSSES)),
    n=st.integers(0, 9),
    dim=st.integers(1, 5),
    classes=st.integers(1, 4),
    dtype=st.sampled_from(["float16", "bfloat16", "float32", "float64"]),
    magnitude=st.sampled_from([1e-20, 1e-3, 1.0, 1e3]),
    poison=st.sampled_from([None, np.nan, np.inf, -np.inf]),
    offset=st.sampled_from([0, 2**24, 2**40]),
    seed=st.integers(0, 2**16),
)
def test_any_label_loss_is_finite_with_finite_gradients_or_nan_exactly_when_an_input_is_not_finite(
    name, n, dim, classes, dtype, magnitude, poison, offset, seed
):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) * magnitude
    if poison is not None and n:
        x[rng.integers(n), rng.integers(dim)] = poison
    labels = rng.integers(0, classes, n).astype(np.int64)
    var = tf.Variable(tf.cast(x, dtype))
    with tf.GradientTape() as tape:
        value = LABEL_LOSSES[name]()(labels + offset, var)
    assert value.dtype in (tf.float32, tf.float64)
    if poison is not None and n:
        assert np.isnan(float(value))
        return
    grad = tape.gradient(value, var)
    assert np.isfinite(float(value))
    assert grad is None or np.all(np.isfinite(tf.cast(grad, tf.float32).numpy()))
    # labels are compared exactly: shifting every id by a large offset changes nothing
    assert float(LABEL_LOSSES[name]()(labels, var)) == pytest.approx(float(value), rel=1e-6, abs=1e-7)
