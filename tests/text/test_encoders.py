import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.models import encoders
from tfcontrast.text import text_cnn, text_transformer

BUILDERS = {
    "transformer": lambda **kw: text_transformer(40, 10, dim=16, depth=2, heads=4, **kw),
    "cnn": lambda **kw: text_cnn(40, 10, dim=16, embedding_dim=8, filters=6, **kw),
}


def test_exposed_from_models_encoders():
    assert encoders.text_transformer is text_transformer and encoders.text_cnn is text_cnn


@pytest.mark.parametrize("name", list(BUILDERS))
def test_padding_is_masked_out(name):
    """Changing what padding positions hold (the padding id's embedding, their positions) changes nothing."""
    keras.utils.set_random_seed(0)
    model = BUILDERS[name](dropout=0.0)
    ids = np.array([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]], np.int32)
    before = model(ids).numpy()
    tokens = model.get_layer("tokens")
    table = tokens.embeddings.numpy()
    table[0] = 10.0 * np.random.default_rng(0).normal(size=table.shape[1])
    tokens.embeddings.assign(table)
    if name == "transformer":
        positions = model.get_layer("positions").positions
        shift = np.random.default_rng(1).normal(size=positions.shape).astype("float32")
        shift[:3] = 0.0
        positions.assign(positions.numpy() + shift)
    after = model(ids).numpy()
    np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(after[1], before[1], atol=1e-3) or name == "cnn"  # real tokens at those positions do move


def test_transformer_embedding_ignores_token_order_only_through_positions():
    keras.utils.set_random_seed(1)
    model = BUILDERS["transformer"](dropout=0.0)
    a = model(np.array([[5, 6, 7] + [0] * 7], np.int32)).numpy()
    b = model(np.array([[7, 6, 5] + [0] * 7], np.int32)).numpy()
    assert not np.allclose(a, b, atol=1e-4)  # learned positions make order matter


@pytest.mark.parametrize("name", list(BUILDERS))
def test_dropout_is_active_in_training_only_and_the_model_compiles_with_xla(name):
    keras.utils.set_random_seed(0)
    model = BUILDERS[name](dropout=0.3)
    ids = np.array([[5, 6, 7, 8, 0, 0, 0, 0, 0, 0]] * 2, np.int32)
    train = tf.function(lambda x: model(x, training=True), jit_compile=True)(ids).numpy()
    assert not np.allclose(train[0], train[1])  # two rows, two dropout masks
    inference = model(ids, training=False).numpy()
    np.testing.assert_allclose(inference[0], inference[1], rtol=1e-6)
    assert model.output_shape == (None, 16)


def test_empty_text_embeds_to_zeros_before_normalisation_in_the_cnn():
    model = BUILDERS["cnn"](dropout=0.0)
    out = model.get_layer("max_pool_3")(tf.ones([1, 10, 6]), tf.zeros([1, 10], tf.bool))
    assert np.all(out.numpy() == 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"dim": 10, "heads": 4}, "multiple of `heads`"), ({"dropout": 1.0}, "dropout"), ({"depth": -1}, "depth")],
)
def test_bad_transformer_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        text_transformer(40, 10, **kwargs)


def test_bad_cnn_arguments():
    with pytest.raises(ValueError, match="kernel_sizes"):
        text_cnn(40, 10, kernel_sizes=())
    with pytest.raises(ValueError, match="vocab_size"):
        text_cnn(1, 10)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_mixed_precision_outputs_are_finite(name):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = BUILDERS[name]()
        out = model(np.array([[5, 6, 0, 0, 0, 0, 0, 0, 0, 0]], np.int32), training=True)
        assert out.dtype == "float16" and np.all(np.isfinite(out.numpy()))
    finally:
        keras.mixed_precision.set_global_policy("float32")
