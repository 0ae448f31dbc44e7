"""The multi-view base (tfcontrast/models/ssl/base.py): views of a batch, one encoder pass per
resolution, and the projection-loss methods (Barlow Twins, VICReg) trained on exactly their loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses
from tfcontrast.models import BarlowTwins, SwAV, VICReg
from tfcontrast.models.encoders import any_resolution, digits_cnn
from tfcontrast.models.ssl import collapse

B = 16


def images(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((B, size, size, 1), dtype=np.float32)


def encoder(flexible: bool = False) -> keras.Model:
    keras.utils.set_random_seed(0)
    net = digits_cnn((8, 8, 1), features=16, width=4)
    return any_resolution(net) if flexible else net


# ------------------------------------------------------ Barlow Twins and VICReg

PROJECTION_METHODS = {
    "barlow_twins": (BarlowTwins, {"lambda_": 0.02}, lambda: losses.BarlowTwinsLoss(lambda_=0.02)),
    "vicreg": (VICReg, {"sim_weight": 2.0, "var_weight": 3.0, "cov_weight": 0.5},
               lambda: losses.VICRegLoss(sim_weight=2.0, var_weight=3.0, cov_weight=0.5)),
}


@pytest.mark.parametrize("name", PROJECTION_METHODS)
def test_the_step_minimises_the_methods_loss_of_the_two_projections(name):
    """The loss a train step logs is the loss function on the projector's outputs of both views
    (BatchNorm statistics over both views: one pass), with the method's own weights."""
    cls, kwargs, loss_fn = PROJECTION_METHODS[name]
    model = cls(encoder(), projection_dim=8, hidden_dim=12, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # nothing moves: the step's inputs can be recomputed
    view_1, view_2 = images(8, 1), images(8, 2)
    logs = model.train_on_batch((view_1, view_2), return_dict=True)
    z = model.projector(model.encoder(tf.concat([view_1, view_2], 0), training=True), training=True)
    want = float(loss_fn()(z[:B], z[B:]))
    assert logs["loss"] == pytest.approx(want, rel=1e-5)
    # the projections' effective rank beside proj_std and erank: what shows dimensional collapse here
    assert logs["proj_erank"] == pytest.approx(float(collapse.effective_rank(z)), rel=1e-4)
    assert {k: model.get_config()[k] for k in kwargs} == kwargs


@pytest.mark.parametrize("name", PROJECTION_METHODS)
def test_the_projector_is_the_papers_three_layers(name):
    cls, kwargs, _ = PROJECTION_METHODS[name]
    model = cls(encoder(), projection_dim=8, hidden_dim=12, **kwargs)
    kinds = [type(layer).__name__ for layer in model.projector.layers if layer.weights]
    dense = [layer.units for layer in model.projector.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [12, 12, 8]
    assert kinds == ["Dense", "BatchNormalization", "Dense", "BatchNormalization", "Dense"]


def test_two_view_methods_refuse_multi_crop_batches():
    model = BarlowTwins(encoder(True), projection_dim=8, hidden_dim=12)
    with pytest.raises(ValueError, match="two views per image, got 4"):
        model.multi_view_loss((images(8, 0), images(8, 1), images(5, 2), images(5, 3)), training=False)


# ------------------------------------------------------------ views and encode


@pytest.fixture(scope="module")
def swav():
    return SwAV(encoder(True), projection_dim=8, hidden_dim=12, num_prototypes=4)


def test_a_batch_of_views_is_its_leading_image_tensors(swav):
    large, small, labels = images(8, 0), images(5, 1), np.arange(B)
    assert len(swav.views((large, large, small, small))) == 4
    assert len(swav.views((large, large, labels))) == 2
    assert len(swav.views(((large, large, small), labels))) == 3


def test_views_of_two_sizes_are_encoded_one_pass_per_size_in_their_own_order(swav):
    """Interleaved sizes come back in view order; in inference mode each row is the encoder of its image."""
    views = (images(8, 0), images(5, 1), images(8, 2), images(5, 3))
    got = swav.encode(views, training=False).numpy()
    want = np.concatenate([swav.encoder(v, training=False).numpy() for v in views])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_views_of_two_sizes_need_a_resolution_free_encoder():
    model = BarlowTwins(encoder(False), projection_dim=8, hidden_dim=12)
    with pytest.raises(ValueError, match="any_resolution"):
        model.encode((images(8, 0), images(5, 1)), training=False)
