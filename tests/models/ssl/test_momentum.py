import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.models import BYOL, DirectPred
from tfcontrast.models.ssl.momentum import MomentumModel

from .conftest import bn_encoder, fixed_views, mlp_encoder


def floating(weights):
    return [w for w in weights if "float" in str(w.dtype)]


def online_and_target(model):
    online = floating(model.encoder.weights) + floating(model.projector.weights)
    target = floating(model.target_encoder.weights) + floating(model.target_projector.weights)
    assert len(online) == len(target) and len(target) > 0
    return online, target


@pytest.mark.parametrize("cls", [BYOL, DirectPred])
def test_target_equals_tau_old_target_plus_one_minus_tau_new_online(cls, digits_flat):
    v1, v2 = fixed_views(digits_flat[:32])
    model = cls(bn_encoder(), projection_dim=8, hidden_dim=16, tau_base=0.9, total_steps=10)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    for _ in range(3):  # step k = 3, and target != online
        model.train_on_batch(v1, v2)
    online, target = online_and_target(model)
    old_target = [t.numpy() for t in target]
    model.train_on_batch(v1, v2)

    tau = 1 - (1 - 0.9) * (math.cos(math.pi * 3 / 10) + 1) / 2  # the tau of step k = 3
    differing = 0
    for o, t, old in zip(online, target, old_target):
        np.testing.assert_allclose(t.numpy(), tau * old + (1 - tau) * o.numpy(), rtol=1e-5, atol=1e-6, err_msg=t.path)
        if not np.array_equal(old, o.numpy()):
            differing += 1
            assert not np.array_equal(t.numpy(), old), t.path
    assert differing == len(target)
    statistics = [t for t, o in zip(target, online) if not o.trainable]
    assert len(statistics) >= 4 and any("moving_mean" in t.path for t in statistics)
    assert int(model.step) == 4


def test_target_receives_no_gradient(digits_flat):
    model = BYOL(bn_encoder(), projection_dim=8, hidden_dim=16)
    target_ids = {id(v) for v in model.target_encoder.weights + model.target_projector.weights}
    assert not target_ids & {id(v) for v in model.trainable_variables}
    v1, v2 = fixed_views(digits_flat[:16])
    with tf.GradientTape() as tape:
        loss, _, _ = model.two_view_loss(tf.constant(v1), tf.constant(v2), training=True)
    grads = tape.gradient(loss, model.target_encoder.weights + model.target_projector.weights)
    assert all(g is None for g in grads)


def test_target_batchnorm_normalises_with_batch_statistics_in_training(digits_flat):
    """The frozen target runs BatchNorm in training mode (batch statistics), as in BYOL.

    Keras runs a non-trainable BatchNorm in inference mode; before the fix the
    target normalised with its (initial) moving statistics and drifted.
    """
    model = BYOL(bn_encoder(), projection_dim=8, hidden_dim=16)
    x = digits_flat[:32]
    # At initialisation the target is a copy of the online encoder, so in training mode they agree.
    np.testing.assert_allclose(
        model.target_encoder(x, training=True), model.encoder(x, training=True), rtol=1e-5, atol=1e-5
    )
    # Inference mode (moving statistics at their initial 0 / 1) gives something else on this batch.
    assert not np.allclose(model.target_encoder(x, training=False), model.encoder(x, training=True), atol=1e-2)


def test_tau_follows_the_cosine_schedule():
    model = BYOL(mlp_encoder(), projection_dim=4, hidden_dim=8, tau_base=0.96, total_steps=100)
    for k, want in [(0, 0.96), (50, 0.98), (100, 1.0), (25, 1 - 0.04 * (math.cos(math.pi / 4) + 1) / 2)]:
        model.step.assign(k)
        assert float(model.tau()) == pytest.approx(want, rel=1e-6)


def test_fit_plans_epochs_times_steps(digits_flat):
    model = BYOL(mlp_encoder(), projection_dim=4, hidden_dim=8)
    model.compile(optimizer="sgd")
    model.fit(fixed_views(digits_flat[:64]), batch_size=16, epochs=3, verbose=0)  # 4 steps per epoch
    assert int(model.total_steps) == 12 and int(model.step) == 12


def test_unknown_length_without_total_steps_fails_before_training(digits_flat):
    model = BYOL(mlp_encoder(), projection_dim=4, hidden_dim=8)
    model.compile(optimizer="sgd")
    endless = tf.data.Dataset.from_tensor_slices(fixed_views(digits_flat[:32])).batch(8).repeat()
    with pytest.raises(ValueError, match="planned number of steps"):
        model.fit(endless, epochs=1, verbose=0)
    assert int(model.step) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(tau_base=1.0), "tau_base"), (dict(tau_base=-0.1), "tau_base"), (dict(total_steps=0), "total_steps")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BYOL(mlp_encoder(), projection_dim=4, hidden_dim=8, **kwargs)


class Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if self.model.step.numpy() == 6:  # inside the second epoch
            raise RuntimeError("simulated crash")


def test_backup_and_restore_resumes_to_the_same_weights(digits_flat, tmp_path):
    dataset = tf.data.Dataset.from_tensor_slices(fixed_views(digits_flat[:64])).batch(16)

    def fresh():
        keras.utils.set_random_seed(1)
        model = DirectPred(bn_encoder(), projection_dim=8, hidden_dim=16, tau_base=0.9)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model

    straight = fresh()
    straight.fit(dataset, epochs=3, verbose=0)

    resumed = fresh()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        resumed.fit(dataset, epochs=3, verbose=0, callbacks=[backup, Interrupt()])
    resumed = fresh()  # a new process would build the model anew
    resumed.fit(dataset, epochs=3, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])

    assert int(resumed.step) == int(straight.step) == 12
    for a, b in zip(resumed.weights, straight.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    np.testing.assert_allclose(resumed.correlation.numpy(), straight.correlation.numpy(), rtol=1e-5)
    assert np.abs(straight.correlation.numpy()).sum() > 0


# ------------------------------------------------ the base beyond BYOL


class Forgetful(BYOL):
    """Overrides the post-update hook and forgets super(): the EMA would never run."""

    def after_update(self, projections, state):
        pass


def test_a_hook_that_skips_the_ema_fails_when_the_step_is_traced(digits_flat):
    model = Forgetful(mlp_encoder(), projection_dim=4, hidden_dim=8, total_steps=4)
    model.compile(optimizer="sgd")
    with pytest.raises(TypeError, match=r"Forgetful.after_update did not call super\(\).after_update"):
        model.train_on_batch(*fixed_views(digits_flat[:16]))
    assert int(model.step) == 0


class QueueContrast(MomentumModel):
    """A MoCo-shaped method: no predictor, an InfoNCE loss against the EMA keys and a FIFO queue of past keys.

    The keys reach ``after_update`` as the extra output of ``two_view_loss``.
    """

    def __init__(self, encoder, queue_size=8, **kwargs):
        super().__init__(encoder, projector=keras.layers.Dense(4, name="projector"), predictor=None, **kwargs)
        self.queue = self.add_weight(shape=(queue_size, 4), initializer="zeros", trainable=False, name="queue")
        self.seen_keys = []

    def two_view_loss(self, view_1, view_2, training):
        representations = self.encode_views(view_1, view_2, training)
        projections = self.projector(representations, training=training)
        q = tf.math.l2_normalize(projections, axis=1)
        k = tf.math.l2_normalize(self.target_projections(view_2, view_1, training), axis=1)
        logits = tf.concat([tf.reduce_sum(q * k, axis=1, keepdims=True), q @ tf.transpose(self.queue)], axis=1) / 0.2
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(logits[:, 0], tf.int32), logits))
        return loss, projections, representations, {"keys": k}

    def after_update(self, projections, state):
        keys = state["keys"]
        self.queue.assign(tf.concat([keys, self.queue], axis=0)[: self.queue.shape[0]])
        super().after_update(projections, state)


def test_a_method_without_predictor_and_with_its_own_loss_fits_the_base(digits_flat):
    v1, v2 = fixed_views(digits_flat[:4])
    model = QueueContrast(bn_encoder(), tau_base=0.9, total_steps=10)
    assert model.predictor is None and len(model.momentum_pairs) == len(online_and_target(model)[0])
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.train_on_batch(v1, v2)  # so that target != online
    online, target = online_and_target(model)
    old_target = [t.numpy() for t in target]
    # the keys of the next step: the target (batch statistics in training) on the swapped views, before its EMA
    both = tf.concat([v2, v1], axis=0)
    want_keys = tf.math.l2_normalize(model.target_projector(model.target_encoder(both, training=True), training=True), 1)
    for t, old in zip(target, old_target):  # that forward pass moved the target's BatchNorm statistics: undo it
        t.assign(old)
    model.train_on_batch(v1, v2)
    np.testing.assert_allclose(model.queue.numpy(), want_keys.numpy(), rtol=1e-5, atol=1e-6)  # 2 x 4 keys fill it
    tau = 1 - (1 - 0.9) * (math.cos(math.pi * 1 / 10) + 1) / 2
    for o, t, old in zip(online, target, old_target):
        if o.trainable:
            np.testing.assert_allclose(t.numpy(), tau * old + (1 - tau) * o.numpy(), rtol=1e-5, atol=1e-6, err_msg=t.path)
    assert int(model.step) == 2


class BYOLWithTargetPredictor(BYOL):
    """Declares a third momentum pair: an EMA copy of the predictor."""

    def __init__(self, encoder, **kwargs):
        super().__init__(encoder, **kwargs)
        self.target_predictor = self.momentum_target(self.predictor, "target_predictor",
                                                     input_shape=(None, self.projection_dim))


def test_any_declared_pair_follows_the_ema(digits_flat):
    v1, v2 = fixed_views(digits_flat[:32])
    model = BYOLWithTargetPredictor(mlp_encoder(), projection_dim=8, hidden_dim=16, tau_base=0.9, total_steps=10)
    pairs = floating(model.predictor.weights)
    assert len(model.momentum_pairs) == len(online_and_target(model)[0]) + len(pairs)
    for o, t in zip(model.predictor.weights, model.target_predictor.weights):
        np.testing.assert_array_equal(o.numpy(), t.numpy())  # starts as a copy
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.train_on_batch(v1, v2)
    old = [t.numpy() for t in floating(model.target_predictor.weights)]
    model.train_on_batch(v1, v2)
    tau = 1 - (1 - 0.9) * (math.cos(math.pi * 1 / 10) + 1) / 2
    for o, t, before in zip(floating(model.predictor.weights), floating(model.target_predictor.weights), old):
        if o.trainable:
            np.testing.assert_allclose(t.numpy(), tau * before + (1 - tau) * o.numpy(), rtol=1e-5, atol=1e-6)
            assert not np.array_equal(t.numpy(), o.numpy())
