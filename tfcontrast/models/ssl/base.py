"""The shared multi-view base of the self-supervised methods.

Every method here sees several augmented views of each unlabelled example
(two for most; SwAV's multi-crop gives a few large and several small ones),
runs the online network on them, and compares them with its own loss. The base
owns everything the methods share:

* **views**: a batch is either a tuple of views ``(view_1, view_2, ...)``
  (augmented in the input pipeline, the fast path: see
  :func:`tfcontrast.augment.two_view_dataset` and
  :func:`tfcontrast.augment.multi_crop_dataset`) or plain images, in which
  case the model's ``augment`` callable (images -> a tuple of views, e.g.
  :class:`tfcontrast.augment.TwoViewAugmentation` or
  :class:`tfcontrast.augment.MultiCropAugmentation`) draws them inside the
  step. Labels riding along (``(images, labels)``) are ignored;
* **one encoder pass per resolution**: the views of one size are concatenated
  (``[2B, ...]`` for two views) and encoded together: bigger matrix products,
  and BatchNorm statistics over all views of that size, as in SimCLR and in
  SwAV's multi-crop code (:meth:`TwoViewModel.encode`);
* **the step**: gradient of the method's loss, loss scaling for mixed
  precision, the optimizer update, then the method's post-update hook (EMA,
  predictor rule), all TF ops with no Python-side state, so ``jit_compile=True``
  and TPUs work;
* **metrics** in the progress bar: the loss, the per-dimension std of the
  normalised projections and the effective rank of the representations
  (:mod:`tfcontrast.models.ssl.collapse`), global under a strategy.

A two-view method implements :meth:`TwoViewModel.two_view_loss` (given
another number of views it fails with a clear message); a method defined for
any number of views implements :meth:`TwoViewModel.multi_view_loss` instead.
If it keeps state beyond the optimizer's, it also implements
:meth:`TwoViewModel.before_step` / :meth:`TwoViewModel.after_update`. Both hooks chain through ``super()``: a
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
from tfcontrast.models.heads import mlp_head
from tfcontrast.models.ssl import collapse


class TwoViewModel(DistributedFitMixin, keras.Model):
    """Base class: two (or more) views, one encoder, a method-specific loss.

    Args:
        encoder: a built Keras model mapping images to ``[batch, features]``;
            after training, ``model.encoder`` is the backbone to keep. Views of
            several sizes (multi-crop) need an encoder that accepts them
            (built on ``keras.Input((None, None, channels))``, see
            :func:`tfcontrast.models.encoders.any_resolution`).
        augment: optional callable mapping a batch of images to a random
            ``(view_1, view_2)`` pair (or a tuple of more views, for a method
            defined on them); needed only when ``fit`` receives plain images
            (e.g. :class:`tfcontrast.augment.TwoViewAugmentation`).
        collapse_metrics: log projection std and effective rank every step
            (one ``d x d`` eigendecomposition; turn off to shave a little time),
            and the method's own indicators (:attr:`EXTRA_COLLAPSE_METRICS`).

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
        self.extra_trackers = [keras.metrics.Mean(name=name) for name in self.EXTRA_COLLAPSE_METRICS]

    EXTRA_COLLAPSE_METRICS: tuple[str, ...] = ()
    """Names of the method's own collapse indicators, logged with ``proj_std`` and ``erank``
    (values from :meth:`collapse_statistics`)."""

    # ------------------------------------------------------------ for methods

    def multi_view_loss(self, views: tuple[tf.Tensor, ...], training: bool, **inputs):
        """Returns ``(loss, projections, representations[, extras])`` for a tuple of views.

        A method defined for any number of views (SwAV's multi-crop) overrides
        this; the default hands exactly two views to :meth:`two_view_loss`.
        ``projections`` and ``representations`` are the rows the collapse
        indicators are computed on.

        Raises:
            ValueError: another number of views than two (when traced).
        """
        if len(views) != 2:
            raise ValueError(
                f"{type(self).__name__} is defined on two views per image, got {len(views)} (multi-crop batches "
                "need a method defined on them, such as SwAV)."
            )
        return self.two_view_loss(views[0], views[1], training, **inputs)

    def two_view_loss(self, view_1: tf.Tensor, view_2: tf.Tensor, training: bool):
        """Returns ``(loss, projections [2B, d], representations [2B, F])``.

        ``loss`` is this replica's share of the global loss. A fourth element,
        a dict of tensors, may follow: the train step hands them (without
        gradient) to :meth:`after_update` in its ``state`` (e.g. the keys a
        queue enqueues after the update). A method whose batches carry more
        than views receives those as keyword arguments (:meth:`batch_inputs`).
        """
        raise NotImplementedError

    def batch_inputs(self, data) -> tuple[tuple[tf.Tensor, ...], dict]:
        """``(views, inputs)`` of a batch; ``inputs`` reach :meth:`multi_view_loss` (and so
        :meth:`two_view_loss`) as keyword arguments.

        Here: the views (:meth:`views`) and no inputs. A method whose batches
        carry more (PIRL: each image's index) overrides it.
        """
        return self.views(data), {}

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
        return self.encode((view_1, view_2), training)

    def encode(self, views, training: bool) -> tf.Tensor:
        """The encoder on every view, one pass per resolution: ``[V * B, F]``, rows in view order.

        The views of one example shape are concatenated and encoded together
        (BatchNorm statistics over all views of that size, as SwAV's code
        does for multi-crop), so two same-sized views take one pass and
        multi-crop takes one per crop size. The rows come back in the order
        of ``views`` (view 1's B rows first).

        Raises:
            ValueError: views of a size the encoder's fixed input does not take,
                or views with different batch sizes (when traced).
        """
        views = tuple(views)
        groups: dict[tuple, list[int]] = {}
        for i, view in enumerate(views):
            groups.setdefault(tuple(view.shape[1:]), []).append(i)
        if len(groups) > 1:
            self._check_resolutions(views, groups)
        outputs = [
            self.encoder(tf.concat([views[i] for i in rows], axis=0) if len(rows) > 1 else views[rows[0]], training=training)
            for rows in groups.values()
        ]
        order = [i for rows in groups.values() for i in rows]
        if order != sorted(order):  # sizes interleaved: put every view's rows back in place
            pieces = {}
            for rows, out in zip(groups.values(), outputs):
                pieces.update(zip(rows, tf.split(out, len(rows), axis=0)))
            outputs = [pieces[i] for i in range(len(views))]
        return tf.concat(outputs, axis=0) if len(outputs) > 1 else outputs[0]

    def _check_resolutions(self, views, groups) -> None:
        batch = {tf.compat.dimension_value(v.shape[0]) for v in views} - {None}
        if len(batch) > 1:
            raise ValueError(f"every view must hold the same images, got views with batch sizes {sorted(batch)}.")
        expected = tf.TensorShape(self.encoder.input_shape[1:]) if not isinstance(self.encoder.input_shape, list) else None
        for shape in groups:
            if expected is not None and not expected.is_compatible_with(shape):
                raise ValueError(
                    f"the encoder takes inputs of shape {tuple(expected)}, got views of shape {shape}: views of "
                    "several sizes (multi-crop) need an encoder built on keras.Input((None, None, channels)) "
                    "(tfcontrast.models.encoders.any_resolution(encoder) gives one with the same weights)."
                )

    def collapse_statistics(self, projections: tf.Tensor, representations: tf.Tensor, extras: dict) -> dict:
        """The collapse indicators of a step, global under a strategy: ``{metric name: scalar}``.

        ``proj_std`` and ``erank`` (:mod:`tfcontrast.models.ssl.collapse`);
        a method adds the entries named in :attr:`EXTRA_COLLAPSE_METRICS`
        (from ``extras``, the dict its loss returned) to ``super()``'s.
        """
        return {
            "proj_std": collapse.projection_std(projections),
            "erank": collapse.effective_rank(representations),
        }

    # ---------------------------------------------------------- Keras hooks

    def call(self, inputs, training=False):
        """Representations of ``inputs``: what ``predict`` returns."""
        return self.encoder(inputs, training=training)

    @property
    def metrics(self):
        trackers = [self.loss_tracker]
        if self.collapse_metrics:
            trackers += [self.std_tracker, self.rank_tracker, *self.extra_trackers]
        return trackers

    def train_step(self, data):
        views, inputs = self.batch_inputs(data)
        state = self.before_step()
        with tf.GradientTape() as tape:
            loss, projections, representations, extras = _step_outputs(
                self.multi_view_loss(views, training=True, **inputs)
            )
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        extras = tf.nest.map_structure(tf.stop_gradient, extras)
        state.update(extras)
        self.after_update(tf.stop_gradient(projections), state)
        return self._record(loss, projections, representations, extras)

    def test_step(self, data):
        views, inputs = self.batch_inputs(data)
        loss, projections, representations, extras = _step_outputs(self.multi_view_loss(views, training=False, **inputs))
        return self._record(loss, projections, representations, extras)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, (tuple, list)):
            x = x[0]
        return self(x, training=False)

    # --------------------------------------------------------------- helpers

    def views(self, data) -> tuple[tf.Tensor, ...]:
        """The views of a batch: ``(view_1, view_2[, ...])`` as given, or drawn from plain images.

        A batch of views is a tuple whose first two elements have the same
        example shape; the views are its leading elements of the first one's
        rank and channel count (later elements, e.g. labels, are ignored).
        """
        if isinstance(data, dict):
            raise ValueError(f"expected images or (view_1, view_2) batches, got a dict with keys {sorted(data)}.")
        # Keras packs x as (x,) or (x, y, sample_weight): unwrap to x.
        while isinstance(data, (tuple, list)) and isinstance(data[0], (tuple, list)):
            data = data[0]
        if isinstance(data, (tuple, list)):
            first = data[0]
            if len(data) >= 2 and _same_example_shape(first, data[1]):
                count = 2
                while count < len(data) and _same_kind_of_view(first, data[count]):
                    count += 1
                return tuple(data[:count])
            if len(data) >= 2 and _image_batches(first, data[1]):
                raise ValueError(
                    f"{type(self).__name__} received two views of different sizes, {_shape(first)} and "
                    f"{_shape(data[1])}: the first two views go through the encoder as one batch, so they must "
                    "have the same shape (further multi-crop views may be smaller). Crop or resize both to one "
                    "size (TwoViewAugmentation(image_size=...) does)."
                )
            data = first
        if self.augment is None:
            raise ValueError(
                f"{type(self).__name__} received plain images of shape {data.shape} but has no `augment`: "
                "pass augment=... or feed (view_1, view_2) batches (tfcontrast.augment.two_view_dataset)."
            )
        views = self.augment(data)
        if not isinstance(views, (tuple, list)) or len(views) < 2:
            raise ValueError(
                f"`augment` must return a (view_1, view_2) pair (or a tuple of more views), got {type(views).__name__}."
            )
        return tuple(views)

    def _record(self, loss, projections, representations, extras) -> dict:
        self.loss_tracker.update_state(distribute.unscale_share(loss))
        if self.collapse_metrics:
            statistics = self.collapse_statistics(projections, representations, extras)
            for tracker in (self.std_tracker, self.rank_tracker, *self.extra_trackers):
                tracker.update_state(statistics[tracker.name])
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


class ProjectionLossModel(TwoViewModel):
    """Encoder -> MLP projector -> ``loss(z_1, z_2)`` of the two views' projections.

    The shape of the methods whose loss alone prevents collapse, with no
    predictor, momentum encoder or negatives (Barlow Twins, VICReg): a
    subclass chooses the loss and adds its own arguments to ``get_config``.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``.
        loss: callable ``loss(z_1, z_2) -> scalar`` (this replica's share of the global loss).
        projection_dim: projector output width.
        hidden_dim: projector hidden width.
        head_layers: Dense layers of the projector (BN + ReLU after each hidden one).
        augment, collapse_metrics: see :class:`TwoViewModel`.
    """

    def __init__(
        self,
        encoder: keras.Model,
        loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
        projection_dim: int,
        hidden_dim: int,
        head_layers: int = 3,
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        super().__init__(encoder, augment=augment, collapse_metrics=collapse_metrics, **kwargs)
        self.projection_dim, self.hidden_dim = projection_dim, hidden_dim
        self.projector = mlp_head(projection_dim, hidden_dim, num_layers=head_layers, name="projector")
        self.projector.build((None, self.feature_dim))
        self.projection_loss = loss
        self.built = True  # every sublayer is built: fit, save and BackupAndRestore can start

    def two_view_loss(self, view_1, view_2, training):
        representations = self.encode_views(view_1, view_2, training)
        projections = self.projector(representations, training=training)
        z_1, z_2 = tf.split(projections, 2, axis=0)
        return self.projection_loss(z_1, z_2), projections, representations

    EXTRA_COLLAPSE_METRICS = ("proj_erank",)
    """Besides ``proj_std`` and ``erank``: the effective rank of the projections. These losses
    standardise every projection dimension, so ``proj_std`` stays near its ceiling even when every
    dimension carries the same feature (dimensional collapse); their effective rank falls to 1."""

    def collapse_statistics(self, projections, representations, extras) -> dict:
        return {
            **super().collapse_statistics(projections, representations, extras),
            "proj_erank": collapse.effective_rank(projections),
        }

    INITIAL_LOSS_SCALE = 2.0**10
    """Where dynamic loss scaling starts under ``mixed_float16`` (Keras: 2**15). These losses are sums
    over the projection's dimensions, with gradients far above a mean's; from 2**15 the
    float16 backward pass overflows and the first steps are skipped while the scale halves."""

    def compile(self, optimizer="rmsprop", *args, auto_scale_loss: bool = True, **kwargs):
        """``keras.Model.compile``, with the loss scale starting at :attr:`INITIAL_LOSS_SCALE` under ``mixed_float16``."""
        if auto_scale_loss and self.dtype_policy.name == "mixed_float16" and optimizer is not None:
            optimizer = keras.optimizers.get(optimizer)
            if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                optimizer = keras.optimizers.LossScaleOptimizer(
                    optimizer, initial_scale=self.INITIAL_LOSS_SCALE, name="loss_scale_optimizer"
                )
        super().compile(optimizer, *args, auto_scale_loss=auto_scale_loss, **kwargs)

    def compile_from_config(self, config):
        """Recompiles a loaded model (Keras skips that for a model whose ``compile`` is its own)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {**super().get_config(), "projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim}


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


def _shape(x) -> list:
    return tf.TensorShape(getattr(x, "shape", ())).as_list()


def _image_batches(a, b) -> bool:
    """Two batches of images (rank >= 4 each: ``[B, h, w, c]``), whatever their sizes: views, not images and labels."""
    rank_a, rank_b = tf.TensorShape(getattr(a, "shape", ())).rank, tf.TensorShape(getattr(b, "shape", ())).rank
    return rank_a is not None and rank_b is not None and rank_a >= 4 and rank_b >= 4


def _same_kind_of_view(first, other) -> bool:
    """A further view of a batch of views: the first view's rank and last axis (channels), any other size.

    For flat ``[B, d]`` views that means the same shape, so ``[B, 1]`` labels
    after ``(view_1, view_2)`` are not taken for a view.
    """
    shape_a, shape_b = tf.TensorShape(getattr(first, "shape", ())), tf.TensorShape(getattr(other, "shape", ()))
    if shape_a.rank is None or shape_a.rank != shape_b.rank:
        return False
    return shape_a[-1:].is_compatible_with(shape_b[-1:])


def _same_example_shape(a, b) -> bool:
    """Two view batches (rank >= 2, the same shape after the batch axis), as opposed to images and labels.

    Comparing the whole example shape, not only the rank, keeps flat ``[B, 64]``
    inputs with ``[B, 1]`` labels from being taken for two views.
    """
    shape_a, shape_b = tf.TensorShape(getattr(a, "shape", ())), tf.TensorShape(getattr(b, "shape", ()))
    if shape_a.rank is None or shape_a.rank < 2 or shape_a.rank != shape_b.rank:
        return False
    return shape_a[1:].is_compatible_with(shape_b[1:])
