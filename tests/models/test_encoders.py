"""The ready-made encoders: shapes, parameter counts, fused BatchNorm and bad arguments."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.models import BatchNormalization, encoders


def test_resnet18_has_eleven_million_parameters_and_keeps_a_4x4_map_on_32x32():
    model = encoders.resnet18((32, 32, 3))
    # He et al. 2016: 11.2M parameters without the classifier.
    assert model.count_params() == pytest.approx(11.18e6, rel=0.01)
    assert model.output_shape == (None, 512)
    last_conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    assert tuple(last_conv.output.shape[1:3]) == (4, 4)  # CIFAR stem: 32 -> 32 -> 16 -> 8 -> 4


def test_imagenet_stem_downsamples_by_four_before_the_first_stage():
    model = encoders.resnet18((64, 64, 3), stem="imagenet")
    last_conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    assert tuple(last_conv.output.shape[1:3]) == (2, 2)  # 64 / 4 / 8


def test_digits_cnn_and_mlp_output_features():
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype("float32")
    assert encoders.digits_cnn(features=24)(x).shape == (3, 24)
    assert encoders.mlp_encoder((8, 8, 1), widths=(16, 5))(x).shape == (3, 5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: encoders.resnet18((32, 32)), "input_shape"),
        (lambda: encoders.resnet18(stem="tiny"), "stem"),
        (lambda: encoders.digits_cnn(features=0), "features"),
        (lambda: encoders.mlp_encoder((64,), widths=()), "widths"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("build", [lambda: encoders.digits_cnn(), lambda: encoders.resnet18((16, 16, 3))],
                         ids=["digits_cnn", "resnet18"])
def test_conv_batch_norms_are_synchronized_and_fused_on_one_replica(build):
    model = build()
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(type(layer) is BatchNormalization and layer.synchronized for layer in norms)
    step = tf.function(lambda x: model(x, training=True))
    graph = step.get_concrete_function(tf.TensorSpec((2, *model.input_shape[1:]))).graph
    fused = [op for op in graph.get_operations() if op.type == "FusedBatchNormV3"]
    assert len(fused) == len(norms)


def test_any_resolution_keeps_the_weights_and_takes_other_sizes():
    keras.utils.set_random_seed(0)
    encoder = encoders.digits_cnn((8, 8, 1), features=16, width=4)
    flexible = encoders.any_resolution(encoder)
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(flexible(x, training=False).numpy(), encoder(x, training=False).numpy(), rtol=1e-6, atol=1e-6)
    assert flexible(np.zeros((3, 5, 5, 1), np.float32)).shape == (3, 16)
    assert encoders.any_resolution(flexible) is flexible
    with pytest.raises(ValueError, match="another size"):
        encoders.any_resolution(encoders.mlp_encoder((8, 8, 1), (16,)))
    with pytest.raises(ValueError, match="images"):
        encoders.any_resolution(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
