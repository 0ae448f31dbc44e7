"""Momentum (EMA target) base shared by BYOL and DirectPred.

Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020. An online network
(encoder -> projector -> predictor) regresses the projections of a target
network (encoder -> projector) that receives no gradient and follows the
online weights by an exponential moving average after every optimizer step:

    xi <- tau(k) xi + (1 - tau(k)) theta,
    tau(k) = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2,

with k the step and K the planned number of steps (tau rises from tau_base
to 1). Every floating target variable is averaged, BatchNorm moving
statistics included; the "old" target value of those statistics is read
before the target's own forward pass, so the rule holds exactly for every
variable. The loss is symmetrised over the two view orders:

    L = ||q(v1)~ - z'(v2)~||^2 + ||q(v2)~ - z'(v1)~||^2,   x~ = x / ||x||,

i.e. ``(2 - 2 cos) + (2 - 2 cos)`` (:class:`tfcontrast.losses.BYOLLoss`).

K comes from ``fit`` (epochs x steps per epoch) unless ``total_steps`` is
given; the step counter k is model state (checkpointed, restored by
``keras.callbacks.BackupAndRestore``). Under a strategy every replica computes
the same EMA from identical weights and applies it locally: no communication.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfcontrast import distribute, losses, validation
from tfcontrast.models.ssl.base import TwoViewModel


class MomentumTwoViewModel(TwoViewModel):
    """Online encoder + projector + predictor against an EMA target encoder + projector.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``.
        projector: head mapping features to projections (built here).
        predictor: head mapping projections to predictions (built here).
        tau_base: EMA rate at step 0, in [0, 1).
        total_steps: planned number of optimizer steps K; ``None`` takes it
            from ``fit`` (epochs x steps per epoch).
        augment, collapse_metrics: see :class:`TwoViewModel`.
    """

    def __init__(
        self,
        encoder: keras.Model,
        projector: keras.layers.Layer,
        predictor: keras.layers.Layer,
        tau_base: float = 0.99,
        total_steps: int | None = None,
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        super().__init__(encoder, augment=augment, collapse_metrics=collapse_metrics, **kwargs)
        self.tau_base = validation.check_fraction(tau_base, "tau_base")
        if total_steps is not None and (not isinstance(total_steps, int) or total_steps < 1):
            raise ValueError(f"`total_steps` must be None or a positive int, got {total_steps!r}.")
        self.planned_steps = total_steps

        self.projector = projector
        self.predictor = predictor
        self.projector.build((None, self.feature_dim))
        projection_dim = int(self.projector.compute_output_shape((None, self.feature_dim))[-1])
        self.predictor.build((None, projection_dim))
        self.projection_dim = projection_dim

        self.target_encoder = _clone(encoder, "target_encoder")
        self.target_projector = _clone(projector, "target_projector")
        self.target_projector.build((None, self.feature_dim))
        for network in (self.target_encoder, self.target_projector):
            network.trainable = False
            _normalize_with_batch_statistics(network)
        self._online, self._target = _paired_floating_weights(
            [self.encoder, self.projector], [self.target_encoder, self.target_projector]
        )
        for online, target in zip(self._online, self._target):
            target.assign(online)
        # Target variables whose online twin is not trained (BatchNorm statistics):
        # the target's own forward pass moves them, so the EMA reads them first.
        self._target_state = [t for o, t in zip(self._online, self._target) if not o.trainable]

        self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="ssl_step")
        self.total_steps = self.add_weight(
            shape=(), dtype="int64", initializer=keras.initializers.Constant(total_steps or 0),
            trainable=False, name="total_steps",
        )
        self.regression_loss = losses.BYOLLoss()
        self.built = True  # every sublayer is built: fit, save and BackupAndRestore can start

    # ---------------------------------------------------------------- schedule

    def tau(self) -> tf.Tensor:
        """``1 - (1 - tau_base)(cos(pi k/K) + 1)/2`` at the current step k (``tau_base`` if K is 0)."""
        progress = tf.math.divide_no_nan(tf.cast(self.step, tf.float32), tf.cast(self.total_steps, tf.float32))
        progress = tf.minimum(progress, 1.0)
        return 1.0 - (1.0 - self.tau_base) * (tf.cos(math.pi * progress) + 1.0) / 2.0

    def fit(self, *args, callbacks=None, **kwargs):
        """``keras.Model.fit``, which also plans K = epochs x steps for the tau schedule."""
        callbacks = list(callbacks or []) + [_PlanSteps()]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    # ------------------------------------------------------------------ step

    def predict_head(self, projections: tf.Tensor, training: bool) -> tf.Tensor:
        return self.predictor(projections, training=training)

    def two_view_loss(self, view_1, view_2, training):
        representations = self.encode_views(view_1, view_2, training)
        projections = self.projector(representations, training=training)
        predictions = self.predict_head(projections, training)
        both = tf.concat([view_1, view_2], axis=0)
        targets = tf.stop_gradient(
            self.target_projector(self.target_encoder(both, training=training), training=training)
        )
        q_1, q_2 = tf.split(predictions, 2, axis=0)
        t_1, t_2 = tf.split(targets, 2, axis=0)
        loss = self.regression_loss(q_1, t_2) + self.regression_loss(q_2, t_1)
        return loss, projections, representations

    def before_step(self):
        # Read before the target's forward pass updates its BatchNorm statistics.
        return [tf.identity(v) for v in self._target_state]

    def after_update(self, projections, before) -> None:
        self.update_target(before)

    def update_target(self, state_before) -> None:
        """``xi <- tau xi + (1 - tau) theta`` for every target variable; then k <- k + 1."""
        tau = self.tau()
        old = dict(zip([id(v) for v in self._target_state], state_before))
        values = []
        for online, target in zip(self._online, self._target):
            t = tf.cast(tau, target.dtype)
            values.append(t * old.get(id(target), target) + (1.0 - t) * online)
        distribute.assign_on_every_replica(self._target + [self.step], values + [self.step + 1])

    def get_config(self):
        return {**super().get_config(), "tau_base": self.tau_base, "total_steps": self.planned_steps}


class _PlanSteps(keras.callbacks.Callback):
    """Sets the model's K = epochs x steps per epoch when training starts (unless given)."""

    def on_train_begin(self, logs=None):
        model = self.model
        if model.planned_steps is not None:
            model.total_steps.assign(model.planned_steps)
            return
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps:
            raise ValueError(
                f"{type(model).__name__} needs the planned number of steps for its EMA schedule: "
                "give fit a dataset of known length or steps_per_epoch, or pass total_steps=... "
                "to the model."
            )
        model.total_steps.assign(int(epochs) * int(steps))


def _clone(network, name: str):
    try:
        clone = keras.models.clone_model(network)
    except Exception as err:  # clone_model raises several types for unclonable models
        raise ValueError(
            f"cannot clone {network.name!r} for the target network ({err}); a subclassed model needs "
            "get_config/from_config."
        ) from None
    clone.name = name
    return clone


def _normalize_with_batch_statistics(network) -> None:
    """Lets the frozen target's BatchNorm layers use batch statistics in training, as BYOL's does.

    Keras runs a BatchNormalization layer whose ``trainable`` is False in
    inference mode (moving statistics) even when called with
    ``training=True``. The target's moving statistics are EMAs of EMAs that
    lag far behind the current batch, and normalising with them lets the
    target's projections drift into one shared direction, a target the
    online network predicts without learning anything. So the layers stay
    ``trainable`` while every variable they own is not: the optimizer never
    sees them, and the target's forward pass normalises with the batch.
    """
    for layer in network._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
            for variable in layer.variables:
                variable.trainable = False


def _paired_floating_weights(online_networks, target_networks):
    online = [w for n in online_networks for w in n.weights if _floating(w)]
    target = [w for n in target_networks for w in n.weights if _floating(w)]
    if len(online) != len(target) or any(tuple(o.shape) != tuple(t.shape) for o, t in zip(online, target)):
        raise ValueError("the target network's variables do not match the online network's one to one.")
    return online, target


def _floating(variable) -> bool:
    return "float" in str(variable.dtype)

