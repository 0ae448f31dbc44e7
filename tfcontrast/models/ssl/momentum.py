"""The momentum base: target networks that follow online networks by an exponential moving average.

Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020 (BYOL) and He et al.,
"Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020
(MoCo) train an online network with the optimizer and compute their targets
with a copy of it that receives no gradient and follows the online weights
after every optimizer step:

    xi <- tau(k) xi + (1 - tau(k)) theta,
    tau(k) = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2,

with k the step and K the planned number of steps (tau rises from tau_base
to 1). :class:`MomentumModel` owns all of it:

* the **momentum pairs**: every ``(online, target)`` network pair declared with
  :meth:`MomentumModel.momentum_target` (the encoder and the projector by
  default; a method may declare more). Every floating target variable is
  averaged, BatchNorm moving statistics included; the "old" target value of
  those statistics is read before the target's own forward pass (the target
  normalises with batch statistics, as BYOL's does, so its forward pass moves
  them), so the rule holds exactly for every variable;
* the **tau schedule** and the step counter k (model state: checkpointed and
  restored with the weights). K comes from ``fit`` (epochs x steps per epoch)
  unless ``total_steps`` is given;
* the **hooks**: :meth:`MomentumModel.before_step` and
  :meth:`MomentumModel.after_update` chain through ``super()``; a method that
  overrides ``after_update`` (a predictor rule, a queue) does its own update
  and then calls ``super().after_update(...)``, which runs the EMA. A step that
  skipped it fails when it is traced (``TypeError``), so no method can forget it.

A method chooses its heads (the predictor is optional) and its loss
(:meth:`~tfcontrast.models.ssl.base.TwoViewModel.two_view_loss`, with the
target's projections from :meth:`MomentumModel.target_projections`). BYOL
(:mod:`.byol`) regresses them with a predictor; DirectPred (:mod:`.directpred`)
sets that predictor in closed form; a MoCo would contrast the online
projections with them and a queue of past targets, with no predictor.

Under a strategy every replica computes the same EMA from identical weights and
applies it locally: no communication.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.models.ssl.base import TwoViewModel


class MomentumModel(TwoViewModel):
    """Online encoder + projector (+ optional predictor) with EMA target copies.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``.
        projector: head mapping features to projections (built here).
        predictor: optional head mapping projections to predictions (built here);
            ``None`` for methods without one.
        tau_base: EMA rate at step 0, in [0, 1).
        total_steps: planned number of optimizer steps K; ``None`` takes it
            from ``fit`` (epochs x steps per epoch).
        augment, collapse_metrics: see :class:`TwoViewModel`.

    Attributes:
        target_encoder, target_projector: the EMA copies of ``encoder`` and ``projector``.
        step: the number of EMA updates done (k).
    """

    def __init__(
        self,
        encoder: keras.Model,
        projector: keras.layers.Layer,
        predictor: keras.layers.Layer | None = None,
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
        self._momentum = _MomentumPairs()

        self.projector = projector
        self.predictor = predictor
        self.projector.build((None, self.feature_dim))
        self.projection_dim = int(self.projector.compute_output_shape((None, self.feature_dim))[-1])
        if predictor is not None:
            self.predictor.build((None, self.projection_dim))

        self.target_encoder = self.momentum_target(encoder, "target_encoder")
        self.target_projector = self.momentum_target(projector, "target_projector", input_shape=(None, self.feature_dim))

        self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="ssl_step")
        self.total_steps = self.add_weight(
            shape=(), dtype="int64", initializer=keras.initializers.Constant(total_steps or 0),
            trainable=False, name="total_steps",
        )
        self.built = True  # every sublayer is built: fit, save and BackupAndRestore can start

    # ------------------------------------------------------------ momentum pairs

    def momentum_target(self, online: keras.layers.Layer, name: str, input_shape=None) -> keras.layers.Layer:
        """A frozen copy of ``online`` that follows it by EMA after every step; returns the copy.

        Call it in ``__init__`` for every network whose EMA the method needs and
        keep the copy as an attribute (``self.target_x = self.momentum_target(self.x, "target_x")``).
        The copy starts equal to ``online``, receives no gradient, and its
        BatchNorm layers normalise with batch statistics in training.

        Args:
            online: a built network of this model.
            name: the copy's Keras name.
            input_shape: builds the copy when cloning leaves it unbuilt (a ``Sequential`` head).

        Raises:
            ValueError: a network that cannot be cloned, or whose copy does not match it.
        """
        target = _clone(online, name)
        if input_shape is not None:
            target.build(input_shape)
        target.trainable = False
        _normalize_with_batch_statistics(target)
        online_weights, target_weights = _paired_floating_weights([online], [target])
        for o, t in zip(online_weights, target_weights):
            t.assign(o)
        self._momentum.add(online_weights, target_weights)
        return target

    @property
    def momentum_pairs(self) -> list[tuple[keras.Variable, keras.Variable]]:
        """Every ``(online variable, target variable)`` pair the EMA updates."""
        return list(zip(self._momentum.online, self._momentum.target))

    def target_projections(self, view_1: tf.Tensor, view_2: tf.Tensor, training: bool) -> tf.Tensor:
        """The target projections of both views, ``[2B, d]`` (view 1 rows first), without gradient."""
        both = tf.concat([view_1, view_2], axis=0)
        return tf.stop_gradient(self.target_projector(self.target_encoder(both, training=training), training=training))

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

    # ------------------------------------------------------------------- hooks

    def before_step(self) -> dict:
        state = super().before_step()
        # Read before the target's forward pass updates its BatchNorm statistics.
        state["momentum_target_state"] = [tf.identity(v) for v in self._momentum.state]
        return state

    def after_update(self, projections, state) -> None:
        """The EMA of every momentum pair, then k <- k + 1. Overrides call this last, through ``super()``."""
        super().after_update(projections, state)
        tau = self.tau()
        old = dict(zip([id(v) for v in self._momentum.state], state["momentum_target_state"]))
        values = []
        for online, target in self.momentum_pairs:
            t = tf.cast(tau, target.dtype)
            values.append(t * old.get(id(target), target) + (1.0 - t) * online)
        distribute.assign_on_every_replica(self._momentum.target + [self.step], values + [self.step + 1])
        self._momentum.updated = True

    def train_step(self, data):
        self._momentum.updated = False
        logs = super().train_step(data)
        if not self._momentum.updated:
            raise TypeError(
                f"{type(self).__name__}.after_update did not call super().after_update(projections, state): "
                "the momentum targets would never move."
            )
        return logs

    def get_config(self):
        return {**super().get_config(), "tau_base": self.tau_base, "total_steps": self.planned_steps}


class _MomentumPairs:
    """The variables of the declared momentum pairs (a plain object: Keras neither tracks nor saves it twice)."""

    def __init__(self):
        self.online: list = []
        self.target: list = []
        # Target variables whose online twin is not trained (BatchNorm statistics):
        # the target's own forward pass moves them, so the EMA reads them first.
        self.state: list = []
        self.updated = False

    def add(self, online: list, target: list) -> None:
        self.online += online
        self.target += target
        self.state += [t for o, t in zip(online, target) if not o.trainable]


def scheduled_builder(model_class: type):
    """A registry builder for a momentum method: the ``model`` section plus ``total_steps = train.steps``."""

    def build(config, encoder, context):
        return model_class(encoder, total_steps=config.train.steps, **dict(config.model), **dict(context.model_kwargs))

    return build


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
    """A fresh copy of a model (``clone_model``) or of a single layer (from its config)."""
    try:
        if isinstance(network, keras.Model):
            clone = keras.models.clone_model(network)
        else:
            clone = type(network).from_config(network.get_config())
    except Exception as err:  # cloning raises several types for unclonable networks
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

