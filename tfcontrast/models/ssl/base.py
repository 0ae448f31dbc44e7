"""The shared two-view base of the self-supervised methods.

Every method here sees two augmented views of each unlabelled example, runs
the online network on both, and compares them with its own loss. The base
owns everything the methods share:

* **views**: a batch is either ``(view_1, view_2)`` (augmented in the input
  pipeline, the fast path: see :func:`tfcontrast.augment.two_view_dataset`) or
  plain images, in which case the model's ``augment`` callable (images ->
  ``(view_1, view_2)``, e.g. :class:`tfcontrast.augment.TwoViewAugmentation`)
  draws both views inside the step. Labels riding along (``(images, labels)``)
  are ignored;
* **one encoder pass** over both views concatenated (``[2B, ...]``): bigger
  matrix products, and BatchNorm statistics over both views as in SimCLR;
* **the step**: gradient of the method's loss, loss scaling for mixed
  precision, the optimizer update, then the method's post-update hook (EMA,
  predictor rule), all TF ops with no Python-side state, so ``jit_compile=True``
  and TPUs work;
* **metrics** in the progress bar: the loss, the per-dimension std of the
  normalised projections and the effective rank of the representations
  (:mod:`tfcontrast.models.ssl.collapse`), global under a strategy.

A method implements :meth:`TwoViewModel.two_view_loss` and, if it keeps state
beyond the optimizer's, :meth:`TwoViewModel.before_step` /
:meth:`TwoViewModel.after_update`. Both hooks chain through ``super()``: a
subclass of :class:`~tfcontrast.models.ssl.momentum.MomentumModel` adds its
own update and leaves the EMA to the base.

Under a ``tf.distribute`` strategy each replica returns its share of the
global loss (the losses gather negatives across replicas; Keras scales
per-example losses); the loss metric shows the global value.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from tfcontrast import distribute
from tfcontrast.models.distributed_fit import DistributedFitMixin, multiworker_safe_logs
from tfcontrast.models.ssl import collapse


class TwoViewModel(DistributedFitMixin, keras.Model):
    """Base class: two views, one encoder, a method-specific loss.

    Args:
        encoder: a built Keras model mapping images to ``[batch, features]``;
            after training, ``model.encoder`` is the backbone to keep.
        augment: optional callable mapping a batch of images to a random
            ``(view_1, view_2)`` pair; needed only when ``fit`` receives plain
            images (e.g. :class:`tfcontrast.augment.TwoViewAugmentation`).
        collapse_metrics: log projection std and effective rank every step
            (one ``d x d`` eigendecomposition; turn off to shave a little time).

    Handing the model over: ``model.save("m.keras")`` stores the method's
    class name, so ``keras.models.load_model`` needs ``import tfcontrast``
    (else "Could not locate class ..."). The part to keep is ``model.encoder``:
    ``model.encoder.save(...)`` (an encoder of built-in Keras layers, as
    :mod:`tfcontrast.models.encoders` builds, loads without tfcontrast), or
    ``tfcontrast.export.export_saved_model(model.encoder, path)`` for a
    SavedModel that ``saved_model_cli`` and TF Serving run without tfcontrast.
    """

    def __init__(
        self,
        encoder: keras.Model,
        augment: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]] | None = None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.feature_dim = encoder_feature_dim(encoder)
        self.encoder = encoder
        self.augment = augment
        self.collapse_metrics = bool(collapse_metrics)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.std_tracker = keras.metrics.Mean(name="proj_std")
        self.rank_tracker = keras.metrics.Mean(name="erank")

    # ------------------------------------------------------------ for methods

    def two_view_loss(self, view_1: tf.Tensor, view_2: tf.Tensor, training: bool):
        """Returns ``(loss, projections [2B, d], representations [2B, F])``.

        ``loss`` is this replica's share of the global loss. A fourth element,
        a dict of tensors, may follow: the train step hands them (without
        gradient) to :meth:`after_update` in its ``state`` (e.g. the keys a
        queue enqueues after the update). A method whose batches carry more
        than views receives those as keyword arguments (:meth:`batch_inputs`).
        """
        raise NotImplementedError

    def batch_inputs(self, data) -> tuple[tf.Tensor, tf.Tensor, dict]:
        """``(view_1, view_2, inputs)`` of a batch; ``inputs`` reach :meth:`two_view_loss` as keyword arguments.

        Here: the views (:meth:`views`) and no inputs. A method whose batches
        carry more (PIRL: each image's index) overrides it.
        """
        view_1, view_2 = self.views(data)
        return view_1, view_2, {}

    def before_step(self) -> dict:
        """Runs before the forward pass; returns the ``state`` dict handed to :meth:`after_update`.

        Overrides add their entries to ``super().before_step()``.
        """
        return {}

    def after_update(self, projections: tf.Tensor, state: dict) -> None:
        """Runs after the optimizer step (EMA, predictor rule, queue). No-op here.

        ``projections`` are the online projections of the step (no gradient);
        ``state`` is what :meth:`before_step` returned, plus the extra tensors
        :meth:`two_view_loss` returned. Overrides call ``super().after_update(projections, state)``.
        """

    def encode_views(self, view_1: tf.Tensor, view_2: tf.Tensor, training: bool) -> tf.Tensor:
        """The encoder on both views at once: ``[2B, F]`` (view 1 rows first)."""
        return self.encoder(tf.concat([view_1, view_2], axis=0), training=training)

    # ---------------------------------------------------------- Keras hooks

    def call(self, inputs, training=False):
        """Representations of ``inputs``: what ``predict`` returns."""
        return self.encoder(inputs, training=training)

    @property
    def metrics(self):
        trackers = [self.loss_tracker]
        if self.collapse_metrics:
            trackers += [self.std_tracker, self.rank_tracker]
        return trackers

    def train_step(self, data):
        view_1, view_2, inputs = self.batch_inputs(data)
        state = self.before_step()
        with tf.GradientTape() as tape:
            loss, projections, representations, extras = _step_outputs(
                self.two_view_loss(view_1, view_2, training=True, **inputs)
            )
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        state.update(tf.nest.map_structure(tf.stop_gradient, extras))
        self.after_update(tf.stop_gradient(projections), state)
        return self._record(loss, projections, representations)

    def test_step(self, data):
        view_1, view_2, inputs = self.batch_inputs(data)
        loss, projections, representations, _ = _step_outputs(
            self.two_view_loss(view_1, view_2, training=False, **inputs)
        )
        return self._record(loss, projections, representations)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, (tuple, list)):
            x = x[0]
        return self(x, training=False)

    # --------------------------------------------------------------- helpers

    def views(self, data) -> tuple[tf.Tensor, tf.Tensor]:
        """``(view_1, view_2)`` from a batch of views, or drawn from plain images."""
        if isinstance(data, dict):
            raise ValueError(f"expected images or (view_1, view_2) batches, got a dict with keys {sorted(data)}.")
        # Keras packs x as (x,) or (x, y, sample_weight): unwrap to x.
        while isinstance(data, (tuple, list)) and isinstance(data[0], (tuple, list)):
            data = data[0]
        if isinstance(data, (tuple, list)):
            first = data[0]
            if len(data) >= 2 and _same_example_shape(first, data[1]):
                return first, data[1]
            data = first
        if self.augment is None:
            raise ValueError(
                f"{type(self).__name__} received plain images of shape {data.shape} but has no `augment`: "
                "pass augment=... or feed (view_1, view_2) batches (tfcontrast.augment.two_view_dataset)."
            )
        views = self.augment(data)
        if not isinstance(views, (tuple, list)) or len(views) != 2:
            raise ValueError(
                f"`augment` must return a (view_1, view_2) pair, got {type(views).__name__}."
            )
        return views[0], views[1]

    def _record(self, loss, projections, representations) -> dict:
        self.loss_tracker.update_state(distribute.unscale_share(loss))
        if self.collapse_metrics:
            self.std_tracker.update_state(collapse.projection_std(projections))
            self.rank_tracker.update_state(collapse.effective_rank(representations))
        return multiworker_safe_logs({m.name: m.result() for m in self.metrics})

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "augment": keras.saving.serialize_keras_object(self.augment) if self.augment is not None else None,
            "collapse_metrics": self.collapse_metrics,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        if config.get("augment") is not None:
            config["augment"] = keras.saving.deserialize_keras_object(config["augment"])
        return cls(**config)


def _step_outputs(outputs) -> tuple:
    """``(loss, projections, representations, extras)`` from what ``two_view_loss`` returned."""
    if len(outputs) == 3:
        return (*outputs, {})
    if len(outputs) == 4 and isinstance(outputs[3], dict):
        return tuple(outputs)
    raise ValueError(
        "two_view_loss must return (loss, projections, representations) or the same plus a dict of "
        f"extra tensors, got {len(outputs)} values."
    )


def encoder_feature_dim(encoder) -> int:
    """The feature width of a built encoder whose output is ``[batch, features]``.

    Raises:
        ValueError: not a Keras model, not built, or an output of another rank.
    """
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"`encoder` must be a keras.Model, got {type(encoder).__name__}.")
    try:
        shape = tuple(encoder.output_shape)
    except (AttributeError, ValueError, RuntimeError) as err:
        raise ValueError(
            "`encoder` must be built with a known input shape (a functional model with keras.Input, "
            f"or call encoder.build(input_shape) first): {err}"
        ) from None
    if len(shape) != 2 or shape[-1] is None:
        raise ValueError(f"`encoder` must output [batch, features], got output shape {shape}.")
    return int(shape[-1])


def _same_example_shape(a, b) -> bool:
    """Two view batches (rank >= 2, the same shape after the batch axis), as opposed to images and labels.

    Comparing the whole example shape, not only the rank, keeps flat ``[B, 64]``
    inputs with ``[B, 1]`` labels from being taken for two views.
    """
    shape_a, shape_b = tf.TensorShape(getattr(a, "shape", ())), tf.TensorShape(getattr(b, "shape", ()))
    if shape_a.rank is None or shape_a.rank < 2 or shape_a.rank != shape_b.rank:
        return False
    return shape_a[1:].is_compatible_with(shape_b[1:])
