"""The frozen-encoder probe: embedding in inference mode and the logistic-regression accuracy."""

import keras
import numpy as np
import pytest

from tfcontrast.probe import embed, fit_linear_probe, inference_graph, linear_probe_accuracy


def blobs(rng, n_per_class, centres, scale=0.3):
    """Gaussian blobs around the given centres: ([n, d] features, [n] labels)."""
    centres = np.asarray(centres, dtype=np.float64)
    x = np.concatenate([c + scale * rng.normal(size=(n_per_class, len(c))) for c in centres])
    y = np.repeat(np.arange(len(centres)), n_per_class)
    return x, y


def test_separable_classes_are_all_recovered(rng):
    centres = 4.0 * np.eye(5)  # 5 classes, pairwise distance 5.7 >> noise 0.3
    x_train, y_train = blobs(rng, 40, centres)
    x_test, y_test = blobs(rng, 20, centres)
    assert linear_probe_accuracy(x_train, y_train, x_test, y_test) == 1.0
    # The same features with the test labels rotated by one class: every prediction is now wrong.
    assert linear_probe_accuracy(x_train, y_train, x_test, (y_test + 1) % 5) == 0.0


def test_hand_derived_threshold_on_one_feature():
    # Class 0 at x <= 1, class 1 at x >= 3: the logistic boundary of this symmetric
    # problem lies at the midpoint 2, so 1.9 -> 0 and 2.1 -> 1; the test labels make
    # exactly 3 of the 4 right.
    x_train = np.array([[0.0], [1.0], [3.0], [4.0]])
    y_train = np.array([0, 0, 1, 1])
    x_test = np.array([[1.9], [2.1], [10.0], [-5.0]])
    assert linear_probe_accuracy(x_train, y_train, x_test, np.array([0, 1, 1, 1])) == 0.75


def test_standardisation_rescues_a_tiny_scale_feature(rng):
    # The label lives in a feature of scale 1e-4 next to three unit-scale noise features.
    # Without standardisation, C=1 L2-regularised weights would need to be ~1e4 and the
    # probe would sit near chance; standardised, the feature separates the classes.
    n = 200
    y = np.arange(n) % 2
    signal = (2 * y - 1 + 0.1 * rng.normal(size=n)) * 1e-4
    x = np.column_stack([signal, rng.normal(size=(n, 3))])
    assert linear_probe_accuracy(x[:100], y[:100], x[100:], y[100:]) == 1.0
    from sklearn.linear_model import LogisticRegression

    raw = LogisticRegression(C=1.0, max_iter=1000).fit(x[:100], y[:100]).score(x[100:], y[100:])
    assert raw < 0.8  # the unstandardised probe fails: the test checks something real


def test_is_deterministic(rng):
    x, y = blobs(rng, 30, rng.normal(size=(4, 8)), scale=1.0)  # overlapping: accuracy strictly in (0, 1)
    first = linear_probe_accuracy(x[::2], y[::2], x[1::2], y[1::2])
    assert 0.0 < first < 1.0
    assert all(linear_probe_accuracy(x[::2], y[::2], x[1::2], y[1::2]) == first for _ in range(3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(train_labels=np.zeros(10, int)), "at least two classes"),
        (dict(test_embeddings=np.zeros((4, 3))), "same width"),
        (dict(test_labels=np.zeros(3, int)), "test_labels"),
        (dict(train_embeddings=np.full((10, 2), np.nan)), "non-finite"),
        (dict(train_labels=np.linspace(0, 1, 10)), "integer class ids"),
        (dict(C=0.0), "`C`"),
        (dict(max_iter=0), "`max_iter`"),
    ],
)
def test_bad_input_raises(kwargs, message):
    args = dict(
        train_embeddings=np.arange(20.0).reshape(10, 2),
        train_labels=np.arange(10) % 2,
        test_embeddings=np.zeros((4, 2)),
        test_labels=np.zeros(4, int),
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        linear_probe_accuracy(**args)


def test_embed_uses_inference_mode_and_any_batch_size(rng):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(5)(inputs)
    h = keras.layers.BatchNormalization()(h)
    encoder = keras.Model(inputs, h)
    bn = encoder.layers[-1]
    bn.moving_mean.assign(np.full(5, 3.0, np.float32))  # moving statistics far from any batch's
    bn.moving_variance.assign(np.full(5, 4.0, np.float32))
    x = rng.normal(size=(7, 6)).astype("float32")
    expected = encoder(x, training=False).numpy()
    for batch_size in (1, 3, 7, 100):
        np.testing.assert_allclose(embed(encoder, x, batch_size=batch_size), expected, rtol=1e-5, atol=1e-6)
    # Training mode (batch statistics) would give something else: inference mode is what was checked.
    assert not np.allclose(encoder(x, training=True).numpy(), expected, atol=1e-2)
    assert embed(encoder, x.astype("float64")).dtype == np.float32
    with pytest.raises(ValueError, match="batch_size"):
        embed(encoder, x, batch_size=0)
    with pytest.raises(ValueError, match="images"):
        embed(encoder, x[:0])


def test_one_fit_scores_several_query_sets_as_separate_fits_do(rng):
    centres = 1.5 * np.eye(4)  # overlapping blobs: accuracies strictly between 0 and 1
    x, y = blobs(rng, 50, centres, scale=0.8)
    queries = {"a": (x[1::2], y[1::2]), "b": (x[1::2][::-1] + 0.3, y[1::2][::-1])}
    fitted = fit_linear_probe(x[::2], y[::2])
    for q, qy in queries.values():
        separate = linear_probe_accuracy(x[::2], y[::2], q, qy)
        assert fitted.accuracy(q, qy) == separate
        assert 0.0 < separate < 1.0
    with pytest.raises(ValueError, match="same width"):
        fitted.accuracy(x[:, :3], y)
    with pytest.raises(ValueError, match="two classes"):
        fit_linear_probe(x[:10], np.zeros(10, int))


def test_inference_graph_embeds_as_the_eager_encoder_does(rng):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 1))
    h = keras.layers.Conv2D(3, 3)(inputs)
    h = keras.layers.BatchNormalization()(h)
    encoder = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h))
    encoder.layers[2].moving_mean.assign(np.full(3, 2.0, np.float32))  # inference mode differs from training
    x = rng.normal(size=(9, 4, 4, 1)).astype("float32")
    graph = inference_graph(encoder)
    expected = encoder(x, training=False).numpy()
    for batch_size in (2, 9):  # one trace serves every batch size, the last batch partial included
        np.testing.assert_allclose(embed(graph, x, batch_size=batch_size), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="training=False"):
        graph(x, training=True)
    with pytest.raises(ValueError, match="input_shape"):
        inference_graph(keras.layers.Dense(2))
