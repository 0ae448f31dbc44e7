"""SimCLR's projector depth: SimCLRv2's 3-layer head as an option, the 2-layer default unchanged."""

import keras
import numpy as np
import pytest

from tfcontrast.models import SimCLR

from .conftest import fixed_views, mlp_encoder


def kinds(model):
    return [type(layer).__name__ for layer in model.projector.layers]


def test_three_layer_head_is_two_hidden_blocks_then_a_linear_layer():
    model = SimCLR(mlp_encoder(features=12), projection_dim=8, hidden_dim=16, head_layers=3)
    assert kinds(model) == ["Dense", "BatchNormalization", "ReLU"] * 2 + ["Dense"]
    widths = [layer.units for layer in model.projector.layers if isinstance(layer, keras.layers.Dense)]
    assert widths == [16, 16, 8]
    assert model.projector.output_shape == (None, 8)
    assert SimCLR(mlp_encoder(), projection_dim=8, head_layers=1).projector.layers[0].units == 8


def test_default_is_the_two_layer_head_with_unchanged_seeded_weights(digits_flat):
    """head_layers=2 (the default) builds the same projector from the same seed, and trains the same."""
    results = []
    for kwargs in ({}, {"head_layers": 2}):
        keras.utils.set_random_seed(4)
        model = SimCLR(mlp_encoder(seed=4), projection_dim=8, **kwargs)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        loss = model.train_on_batch(*fixed_views(digits_flat[:32]), return_dict=True)["loss"]
        results.append((kinds(model), loss, model.get_weights()))
    assert results[0][0] == ["Dense", "BatchNormalization", "ReLU", "Dense"] == results[1][0]
    assert results[0][1] == results[1][1]
    for a, b in zip(results[0][2], results[1][2]):
        np.testing.assert_array_equal(a, b)


def test_head_layers_round_trips_through_the_config():
    model = SimCLR(mlp_encoder(), projection_dim=8, head_layers=3)
    clone = SimCLR.from_config(model.get_config())
    assert clone.head_layers == 3 and kinds(clone) == kinds(model)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3"])
def test_bad_head_layers(bad):
    with pytest.raises(ValueError, match="head_layers"):
        SimCLR(mlp_encoder(), projection_dim=8, head_layers=bad)
