"""SwAV (Caron, Misra, Mairal, Goyal, Bojanowski and Joulin, NeurIPS 2020), and multi-crop batches.

"Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments". Encoder -> projector (Linear-BN-ReLU-Linear) -> L2-normalised
projection z; its scores against K L2-normalised, trained prototypes c_k are
``s = z . c_k``. The large crops' scores give **codes** by Sinkhorn-Knopp over
the global batch (equipartitioned soft assignments, no gradient:
:func:`tfcontrast.losses.sinkhorn`); every crop predicts the code of every
other (large) crop with ``softmax(s / temperature)`` (the swapped prediction of
:func:`tfcontrast.losses.swav.swapped_prediction`). As in the authors' code:

* the prototypes are renormalised to unit length after every step, and are
  **frozen** (not updated at all) for the first ``freeze_prototypes_steps``;
* with ``queue_size > 0``, a **feature queue** of the last ``queue_size``
  large-crop projections of the global batch (one queue per large crop,
  newest first) joins the Sinkhorn problem, so that batches much smaller
  than K still give balanced codes. The queue is a model variable
  (checkpointed with the weights), identical on every replica, and only its
  filled rows take part while it fills up;
* **multi-crop** (section 3.2): besides the large crops, small low-resolution
  crops are predicted from the large crops' codes but never give codes. The
  encoder runs once per crop size (:meth:`TwoViewModel.encode`).

This module also registers the ``multi_crop`` batch kind: a flat tuple of
``train.num_global`` large views then ``train.num_local`` small ones
(:class:`tfcontrast.augment.MultiCropAugmentation` with the ``augment``
section's recipe), for any method defined on more than two views.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import augment, distribute, validation
from tfcontrast.fields import Float, Floats, Int
from tfcontrast.losses.swav import sinkhorn, swapped_prediction
from tfcontrast.models import encoders
from tfcontrast.models.heads import mlp_head
from tfcontrast.models.ssl import collapse
from tfcontrast.models.ssl.base import TwoViewModel
from tfcontrast.registry import register_batch_kind, register_method


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return value


@keras.saving.register_keras_serializable(package="tfcontrast")
class SwAV(TwoViewModel):
    """SwAV trained with ``model.fit`` on multi-crop batches, ``(view_1, view_2)`` batches or plain images.

    A batch is a tuple of views of the same images, the ``large_crops`` large
    ones first (as :func:`tfcontrast.augment.multi_crop_dataset` gives them);
    plain images need ``augment`` (e.g. a
    :class:`tfcontrast.augment.MultiCropAugmentation`). Views of several sizes
    need an encoder that takes them
    (:func:`tfcontrast.models.encoders.any_resolution`).

    Args:
        encoder: built Keras model, images -> ``[batch, features]``; kept after training.
        projection_dim: width of the projection and of the prototypes (paper: 128).
        hidden_dim: projector hidden width (paper: 2048).
        num_prototypes: K, the number of prototypes (paper: 3000 on ImageNet; a
            few times the number of classes).
        temperature: softmax temperature of the predictions, > 0 (paper: 0.1).
        epsilon: Sinkhorn regularisation, > 0 (paper: 0.05; larger: smoother codes).
        sinkhorn_iterations: Sinkhorn-Knopp iterations, >= 1 (paper: 3).
        queue_size: rows per large crop of the feature queue; 0 = no queue
            (the authors use 3840 with batches of 256).
        freeze_prototypes_steps: optimizer steps during which the prototypes
            stay fixed (the authors: 313, one ImageNet epoch at batch 4096).
        large_crops: how many leading views are large crops (codes and queue
            come from them only), >= 1.
        augment, collapse_metrics: see :class:`tfcontrast.models.ssl.base.TwoViewModel`.

    Metrics: ``loss``, ``proj_std`` and ``erank`` (of the large crops), and
    ``proto_entropy``: the entropy of the prototype usage of the large
    crops' codes (:func:`tfcontrast.models.ssl.collapse.assignment_entropy`;
    ``log K`` at even use, 0 when one prototype takes every image).

    Raises:
        ValueError: a bad argument; a batch of fewer views than ``max(2, large_crops)``.

    Example:
        >>> encoder = tfc.models.encoders.any_resolution(tfc.models.encoders.digits_cnn((8, 8, 1)))
        >>> model = tfc.models.SwAV(encoder, projection_dim=64, hidden_dim=256, num_prototypes=30)
        >>> model.compile(optimizer=keras.optimizers.AdamW(2e-3))
        >>> crops = tfc.augment.MultiCropAugmentation(8, 5, num_local=4, global_scale=(0.5, 1), local_scale=(0.2, 0.5))
        >>> model.fit(tfc.augment.multi_crop_dataset(tfc.data.load_digits().x_train, 256, crops), epochs=1)  # doctest: +SKIP
    """

    EXTRA_COLLAPSE_METRICS = ("proto_entropy",)

    def __init__(
        self,
        encoder: keras.Model,
        projection_dim: int = 128,
        hidden_dim: int = 2048,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        queue_size: int = 0,
        freeze_prototypes_steps: int = 313,
        large_crops: int = 2,
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        super().__init__(encoder, augment=augment, collapse_metrics=collapse_metrics, **kwargs)
        self.projection_dim = _positive_int(projection_dim, "projection_dim")
        self.hidden_dim = _positive_int(hidden_dim, "hidden_dim")
        self.num_prototypes = _positive_int(num_prototypes, "num_prototypes", 2)
        self.temperature = validation.check_positive(temperature, "temperature")
        self.epsilon = validation.check_positive(epsilon, "epsilon")
        self.sinkhorn_iterations = _positive_int(sinkhorn_iterations, "sinkhorn_iterations")
        self.queue_size = _positive_int(queue_size, "queue_size", 0)
        self.freeze_prototypes_steps = _positive_int(freeze_prototypes_steps, "freeze_prototypes_steps", 0)
        self.large_crops = _positive_int(large_crops, "large_crops")

        self.projector = mlp_head(projection_dim, hidden_dim, name="projector")
        self.projector.build((None, self.feature_dim))
        self.prototypes = self.add_weight(
            shape=(projection_dim, num_prototypes), initializer="random_normal", dtype="float32", name="prototypes"
        )
        self.prototypes.assign(tf.math.l2_normalize(self.prototypes, axis=0))  # columns: unit prototypes
        self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="swav_step")
        self.queue = self.queue_filled = None
        if queue_size:
            self.queue = self.add_weight(
                shape=(large_crops, queue_size, projection_dim), initializer="zeros", dtype="float32",
                trainable=False, name="queue",
            )
            self.queue_filled = self.add_weight(
                shape=(), dtype="int64", initializer="zeros", trainable=False, name="queue_filled"
            )
        self.built = True  # every sublayer is built: fit, save and BackupAndRestore can start

    # ------------------------------------------------------------------ step

    def multi_view_loss(self, views, training, **inputs):
        if len(views) < max(2, self.large_crops):
            raise ValueError(
                f"SwAV with large_crops={self.large_crops} needs at least {max(2, self.large_crops)} views per image, "
                f"got {len(views)}."
            )
        large = self.large_crops
        representations = self.encode(views, training)
        projections = self.projector(representations, training=training)
        z = tf.math.l2_normalize(tf.cast(projections, tf.float32), axis=1)
        prototypes = self._prototypes_in_step()
        scores = tf.split(tf.matmul(z, prototypes), len(views), axis=0)
        queue_scores, mask = [None] * large, None
        if self.queue is not None:
            queue_scores = tf.unstack(tf.matmul(tf.cast(self.queue, tf.float32), prototypes), axis=0)
            mask = tf.range(self.queue_size, dtype=tf.int64) < self.queue_filled
        codes = [
            sinkhorn(scores[crop], self.epsilon, self.sinkhorn_iterations, queue_scores[crop], mask)
            for crop in range(large)
        ]
        loss = swapped_prediction(scores, codes, self.temperature, range(large))
        rows = large * tf.shape(views[0])[0]
        extras = {"codes": tf.stack(codes), "large_crops": tf.stack(tf.split(z[:rows], large, axis=0))}
        return loss, projections[:rows], representations[:rows], extras

    def _prototypes_in_step(self) -> tf.Tensor:
        """The prototypes, with a zero gradient while they are frozen (their value is restored after the step too)."""
        p = tf.cast(self.prototypes, tf.float32)
        learning = tf.cast(self.step >= self.freeze_prototypes_steps, tf.float32)
        return tf.stop_gradient(p) + learning * (p - tf.stop_gradient(p))

    def before_step(self) -> dict:
        state = super().before_step()
        state["prototypes"] = tf.identity(self.prototypes)
        return state

    def after_update(self, projections, state) -> None:
        """Prototypes back to unit length (or to their value before the step while frozen); queue; step + 1."""
        super().after_update(projections, state)
        frozen = self.step < self.freeze_prototypes_steps
        prototypes = tf.where(frozen, state["prototypes"], tf.math.l2_normalize(self.prototypes, axis=0))
        variables, values = [self.prototypes, self.step], [prototypes, self.step + 1]
        if self.queue is not None:
            newest = tf.stack([distribute.gather(crop)[0] for crop in tf.unstack(state["large_crops"], axis=0)])
            queue = tf.concat([newest, tf.cast(self.queue, tf.float32)], axis=1)[:, : self.queue_size]
            filled = tf.minimum(self.queue_filled + tf.cast(tf.shape(newest)[1], tf.int64), self.queue_size)
            variables += [self.queue, self.queue_filled]
            values += [queue, filled]
        distribute.assign_on_every_replica(variables, values)

    def collapse_statistics(self, projections, representations, extras) -> dict:
        return {
            **super().collapse_statistics(projections, representations, extras),
            "proto_entropy": collapse.assignment_entropy(extras["codes"]),
        }

    def get_config(self):
        return {
            **super().get_config(),
            "projection_dim": self.projection_dim,
            "hidden_dim": self.hidden_dim,
            "num_prototypes": self.num_prototypes,
            "temperature": self.temperature,
            "epsilon": self.epsilon,
            "sinkhorn_iterations": self.sinkhorn_iterations,
            "queue_size": self.queue_size,
            "freeze_prototypes_steps": self.freeze_prototypes_steps,
            "large_crops": self.large_crops,
        }


# ---------------------------------------------------------------- multi-crop batches

# The options of the configured TwoViewAugmentation that the multi-crop views follow too.
_RECIPE_OPTIONS = (
    "recipe", "crop_ratio", "flip", "jitter_prob", "jitter_strength", "grayscale_prob", "blur_prob", "blur_sigma",
    "solarize_prob", "max_shift", "max_degrees", "seed",
)


def crop_sizes(train, input_shape) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(large (h, w), small (h, w))`` crop sizes of the ``train`` section for images of ``input_shape``."""
    height, width = input_shape[:2]
    global_size = (height, width) if train.global_size is None else (train.global_size, train.global_size)
    if train.local_size is not None:
        return global_size, (train.local_size, train.local_size)
    return global_size, tuple(max(2, round(s * 96 / 224)) for s in global_size)


def multi_crop_augmentation(config, input_shape, views=None) -> augment.MultiCropAugmentation:
    """The run's :class:`~tfcontrast.augment.MultiCropAugmentation`: the ``train`` section's crops,
    the view recipe of ``views`` (the configured :class:`~tfcontrast.augment.TwoViewAugmentation`;
    ``None``: the default recipe)."""
    train = config.train
    global_size, local_size = crop_sizes(train, input_shape)
    recipe = {} if views is None else {key: views.get_config()[key] for key in _RECIPE_OPTIONS}
    return augment.MultiCropAugmentation(
        global_size, local_size, num_global=train.num_global, num_local=train.num_local,
        global_scale=tuple(train.global_scale), local_scale=tuple(train.local_scale), **recipe,
    )


def multi_crop_stream(config, run, views, start_step: int = 0) -> tf.data.Dataset:
    crops = multi_crop_augmentation(config, run.input_shape, views)
    stream = augment.multi_crop_dataset(run.x_train, config.train.batch_size, crops, seed=config.seed, repeat=True)
    return stream.take(config.train.steps).skip(start_step)


def _check_multi_crop(config, run) -> list[tuple[str, str]]:
    """The batch fits the training split, there are two views or more, and the crops are valid."""
    train, problems = config.train, []
    if train.batch_size > len(run.x_train):
        problems.append(("config.train.batch_size", f"must be <= the {len(run.x_train)} training examples, got {train.batch_size}"))
    if train.num_global + train.num_local < 2:
        problems.append(("config.train.num_local", f"must give num_global + num_local >= 2 views, got {train.num_local}"))
    elif run.is_images:
        try:
            multi_crop_augmentation(config, run.input_shape)
        except ValueError as err:
            problems.append(("config.train", str(err)))
    return problems


def _scale(v) -> str | None:
    lo, hi = v
    return None if 0 < lo <= hi <= 1 else f"must be (min, max) with 0 < min <= max <= 1, got {v!r}"


register_batch_kind(
    "multi_crop",
    summary="(large_1, ..., large_G, small_1, ..., small_L): multi-crop views of every image, large ones first",
    fields={
        "batch_size": Int(256, "images per step (each seen as num_global + num_local views)", min=1),
        "num_global": Int(2, "large crops per image (SwAV takes its codes from them)", min=1),
        "num_local": Int(6, "small, low-resolution crops per image", min=0),
        "global_size": Int(None, "side of the large crops in pixels; None = the images' size", min=2, optional=True),
        "local_size": Int(None, "side of the small crops in pixels; None = 96/224 of the large crops'", min=2, optional=True),
        "global_scale": Floats((0.14, 1.0), "(min, max) area fraction of the large crops (replaces augment.crop_scale)", length=2, check=_scale),
        "local_scale": Floats((0.05, 0.14), "(min, max) area fraction of the small crops", length=2, check=_scale),
    },
    stream=multi_crop_stream,
    examples_per_step=lambda train: train.batch_size,
    needs_views=True,
    check=_check_multi_crop,
    example={"batch_size": 32, "num_local": 2, "local_size": 8, "global_scale": (0.5, 1.0), "local_scale": (0.2, 0.5)},
)


# ---------------------------------------------------------------------- the method


def build_swav(config, encoder, context):
    """SwAV from the ``model`` section; codes from ``train.num_global`` large crops; the encoder
    made resolution-free (same weights) when the crops are not all of the images' size."""
    sizes = set(crop_sizes(config.train, context.input_shape)[: 1 + (config.train.num_local > 0)])
    if sizes != {tuple(context.input_shape[:2])}:
        encoder = encoders.any_resolution(encoder)
    return SwAV(encoder, large_crops=config.train.num_global, **dict(config.model), **dict(context.model_kwargs))


register_method(
    "swav",
    SwAV,
    batch="multi_crop",
    summary="SwAV (Caron et al., NeurIPS 2020): every crop predicts the Sinkhorn cluster codes of the large crops",
    fields={
        "projection_dim": Int(doc="width of the projection and of the prototypes", min=1),
        "hidden_dim": Int(doc="projector hidden width", min=1),
        "num_prototypes": Int(doc="K, the number of trained prototypes (clusters)", min=2),
        "temperature": Float(doc="softmax temperature of the predictions, > 0", within="(0, inf)"),
        "epsilon": Float(doc="Sinkhorn regularisation, > 0 (larger: smoother codes)", within="(0, inf)"),
        "sinkhorn_iterations": Int(doc="Sinkhorn-Knopp iterations", min=1),
        "queue_size": Int(doc="feature queue rows per large crop (for small batches); 0 = none", min=0),
        "freeze_prototypes_steps": Int(doc="first steps during which the prototypes are not updated", min=0),
    },
    build=build_swav,
    example={"projection_dim": 16, "hidden_dim": 32, "num_prototypes": 20, "queue_size": 64, "freeze_prototypes_steps": 2},
)
