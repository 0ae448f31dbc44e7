"""MoCo v2: momentum contrast against a queue of past keys.

He, Fan, Wu, Xie and Girshick, "Momentum Contrast for Unsupervised Visual
Representation Learning", CVPR 2020; Chen, Fan, Girshick and He, "Improved
Baselines with Momentum Contrastive Learning", arXiv 2020 (v2: MLP projector,
temperature 0.2, stronger views).

A query network (encoder + MLP projector, Linear-ReLU-Linear) is trained; the
key network is its EMA (the momentum base,
:class:`~tfcontrast.models.ssl.momentum.MomentumModel`). For L2-normalised
queries q_i = q(view 1 of image i), keys k_i = k(view 2 of image i) and the
queue rows n_j (keys of earlier steps),

    L = mean_i -log( exp(q_i.k_i / t) / (exp(q_i.k_i / t) + sum_j exp(q_i.n_j / t)) )

(:class:`tfcontrast.losses.InfoNCELoss`). After every optimizer step the keys
of the global batch are enqueued, first in first out, over the oldest
entries. ``symmetric=True`` also contrasts view 2's queries with view 1's keys
and averages the two losses (MoCo v2 + symmetric, as solo-learn does); both
views' keys are then enqueued. ``mixing=HardNegativeMixing(...)`` adds MoCHi's
synthetic hard negatives (:mod:`tfcontrast.models.ssl.mochi`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distribute, losses
from tfcontrast.fields import Bool, Float, Int
from tfcontrast.models.heads import mlp_head
from tfcontrast.models.ssl import sampling
from tfcontrast.models.ssl.momentum import MomentumModel, scheduled_builder
from tfcontrast.registry import register_method


@keras.saving.register_keras_serializable(package="tfcontrast")
class MoCo(MomentumModel):
    """MoCo v2 trained with ``model.fit`` on unlabelled images or ``(view_1, view_2)`` batches.

    **The queue** is a model variable ``[queue_size, projection_dim]`` (float32)
    with its write position ``queue_pointer``: both are checkpointed and
    restored with the weights, so a resumed run continues with the same
    negatives. It starts, as in MoCo, with random unit vectors (uniform
    directions): harmless negatives that the first ``queue_size`` keys
    replace. Keep ``queue_size`` below the number of training images, or the
    queue holds keys of the query's own image (MoCo: 65,536 of 1.28M).

    **Under a strategy** the keys of all replicas are gathered (in replica
    order, the order of the global batch) and every replica writes the same
    global keys at the same positions: the queues stay identical, no
    communication beyond the gather.

    **BatchNorm and shuffling.** MoCo shuffles the keys across GPUs before
    the key encoder ("shuffle BN") because per-GPU batch statistics of a
    small sub-batch let a query and its key share a batch signature, a
    shortcut to a low loss. Here the key network's BatchNorm layers always
    normalise with *synchronized* (global-batch) statistics instead, as
    SimCLR and MoCo v3 do: each key is normalised with the statistics of
    every key of the global batch, the same on R replicas as on one device,
    so the result does not depend on how the batch is split (shuffling
    would make it depend on it and cost an all-to-all per step). The
    encoders of :mod:`tfcontrast.models.encoders` use synchronized BatchNorm
    in the query network too; a query encoder of your own with plain
    BatchNorm normalises per replica.

    **Steps.** The step is TF ops only (no Python branch on tensors): it
    compiles with ``jit_compile=True``. Asymmetric MoCo runs the query network
    on view 1 only and the key network on view 2 only, so the projections
    the progress bar's collapse metrics see are ``[B, d]``.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``; kept after training.
        projection_dim: projector output width (MoCo v2: 128).
        hidden_dim: projector hidden width (MoCo v2: 2048).
        queue_size: K, the number of past keys kept as negatives (MoCo: 65,536).
        temperature: InfoNCE temperature t > 0 (MoCo v2: 0.2).
        tau_base: EMA rate of the key network at step 0, rising to 1 on a
            cosine schedule (MoCo: a constant 0.999).
        symmetric: contrast both directions and average them.
        mixing: ``None``, or a :class:`tfcontrast.models.HardNegativeMixing` (MoCHi).
        total_steps: planned steps K of the tau schedule; default: from ``fit``.
        augment, collapse_metrics: see :class:`tfcontrast.models.ssl.base.TwoViewModel`.

    Raises:
        ValueError: a bad width, queue size, temperature or tau, a ``mixing``
            that is not a ``HardNegativeMixing`` or needs more hard negatives
            than the queue holds.

    Example:
        >>> encoder = tfc.models.encoders.digits_cnn((8, 8, 1), features=64)    # doctest: +SKIP
        >>> model = MoCo(encoder, projection_dim=64, hidden_dim=256, queue_size=1024)  # doctest: +SKIP
        >>> model.compile(optimizer=keras.optimizers.AdamW(2e-3))                # doctest: +SKIP
        >>> model.fit(tfc.augment.two_view_dataset(x, 256, views), epochs=100)   # doctest: +SKIP
        >>> model.queue.shape                                                     # doctest: +SKIP
        TensorShape([1024, 64])
    """

    def __init__(
        self,
        encoder: keras.Model,
        projection_dim: int = 128,
        hidden_dim: int = 2048,
        queue_size: int = 65536,
        temperature: float = 0.2,
        tau_base: float = 0.99,
        symmetric: bool = False,
        mixing=None,
        total_steps: int | None = None,
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
            raise ValueError(f"`queue_size` must be a positive int, got {queue_size!r}.")
        if not isinstance(symmetric, bool):
            raise ValueError(f"`symmetric` must be a bool, got {symmetric!r}.")
        if mixing is not None and not callable(getattr(mixing, "negatives", None)):
            raise ValueError(f"`mixing` must be None or a tfcontrast.models.HardNegativeMixing, got {mixing!r}.")
        self.hidden_dim = hidden_dim
        super().__init__(
            encoder,
            projector=mlp_head(projection_dim, hidden_dim, batch_norm=False, name="projector"),
            predictor=None,
            tau_base=tau_base,
            total_steps=total_steps,
            augment=augment,
            collapse_metrics=collapse_metrics,
            **kwargs,
        )
        synchronize_batch_norm(self.target_encoder)
        synchronize_batch_norm(self.target_projector)
        self.contrastive_loss = losses.InfoNCELoss(temperature)
        self.temperature = self.contrastive_loss.temperature
        self.queue_size = queue_size
        self.symmetric = symmetric
        self.mixing = mixing
        if mixing is not None:
            mixing.check_queue(queue_size)
        self.queue = self.add_weight(
            shape=(queue_size, self.projection_dim), initializer=sampling.unit_rows, dtype="float32",
            trainable=False, autocast=False, name="queue",
        )
        self.queue_pointer = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False, name="queue_pointer"
        )
        if mixing is not None:  # the seed of the mixing draws (model state: a resumed run draws the same)
            self.sample_seed = self.add_weight(
                shape=(), dtype="int64", initializer=keras.initializers.Constant(sampling.new_seed()),
                trainable=False, name="sample_seed",
            )

    # ------------------------------------------------------------------ loss

    def keys(self, images: tf.Tensor, training: bool) -> tf.Tensor:
        """The key network on ``images``: L2-normalised float32 keys, without gradient."""
        keys = self.target_projector(self.target_encoder(images, training=training), training=training)
        return tf.stop_gradient(tf.math.l2_normalize(tf.cast(keys, tf.float32), axis=1))

    def two_view_loss(self, view_1, view_2, training):
        if self.symmetric:
            representations = self.encode_views(view_1, view_2, training)
            projections = self.projector(representations, training=training)
            q_1, q_2 = tf.split(projections, 2, axis=0)
            k_1, k_2 = tf.split(self.keys(tf.concat([view_1, view_2], axis=0), training), 2, axis=0)
            pairs, new_keys = [(q_1, k_2), (q_2, k_1)], (k_1, k_2)
        else:
            representations = self.encoder(view_1, training=training)
            projections = self.projector(representations, training=training)
            k_2 = self.keys(view_2, training)
            pairs, new_keys = [(projections, k_2)], (k_2,)
        queue = tf.convert_to_tensor(self.queue)
        loss = tf.add_n([self.contrast(q, k, queue, stream) for stream, (q, k) in enumerate(pairs)])
        return loss / len(pairs), projections, representations, {"keys": new_keys}

    def contrast(self, queries: tf.Tensor, keys: tf.Tensor, queue: tf.Tensor, stream: int = 0) -> tf.Tensor:
        """InfoNCE of ``queries`` against their ``keys`` and the queue (+ MoCHi's negatives once mixing starts)."""
        queries = tf.math.l2_normalize(tf.cast(queries, tf.float32), axis=1)
        if self.mixing is None:
            return self.contrastive_loss(queries, keys, queue)
        plain = self.contrastive_loss(queries, keys, queue) if self.mixing.start_step else None
        extra = self.mixing.negatives(queries, queue, self.sample_seed, self.step, stream)
        mixed = self.contrastive_loss(queries, keys, queue, extra)
        if self.mixing.start_step == 0:
            return mixed
        return tf.where(self.step >= self.mixing.start_step, mixed, plain)

    # ----------------------------------------------------------------- queue

    def after_update(self, projections, state) -> None:
        """Enqueues the global batch's keys, then the EMA (``super()``)."""
        self.enqueue(tf.concat([distribute.gather(k)[0] for k in state["keys"]], axis=0))
        super().after_update(projections, state)

    def enqueue(self, keys: tf.Tensor) -> None:
        """Writes ``keys`` ``[n, d]`` into the queue, first in first out, on every replica.

        Key number c of the stream of enqueued keys (c counts from the
        start of training) lands at row ``c mod queue_size``: the queue
        always holds the last ``queue_size`` keys, the oldest overwritten
        first. When n exceeds the queue only the last ``queue_size`` keys
        survive (the rows written twice are written the winner's value both
        times, so the result never depends on the write order).
        """
        size = self.queue_size
        n = tf.shape(keys, out_type=tf.int64)[0]
        rows = tf.range(n, dtype=tf.int64)
        positions = (self.queue_pointer + rows) % size
        last_writer = rows + size * ((n - 1 - rows) // size)  # the last key sent to the same row
        distribute.scatter_on_every_replica(self.queue, positions, tf.gather(keys, last_writer))
        distribute.assign_on_every_replica([self.queue_pointer], [(self.queue_pointer + n) % size])

    # ---------------------------------------------------------------- config

    def get_config(self):
        return {
            **super().get_config(),
            "projection_dim": self.projection_dim,
            "hidden_dim": self.hidden_dim,
            "queue_size": self.queue_size,
            "temperature": self.temperature,
            "symmetric": self.symmetric,
            "mixing": keras.saving.serialize_keras_object(self.mixing) if self.mixing is not None else None,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("mixing") is not None:
            config["mixing"] = keras.saving.deserialize_keras_object(config["mixing"])
        return super().from_config(config)


def synchronize_batch_norm(network) -> None:
    """Makes every BatchNorm layer of ``network`` normalise with global-batch statistics under a strategy."""
    for layer in network._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


MOCO_FIELDS = {
    "projection_dim": Int(doc="projector output width (MoCo v2: 128)", min=1),
    "hidden_dim": Int(doc="projector hidden width (MoCo v2: 2048)", min=1),
    "queue_size": Int(doc="K: past keys kept as negatives; keep it below the number of training images", min=1),
    "temperature": Float(doc="InfoNCE temperature, > 0 (MoCo v2: 0.2)", within="(0, inf)"),
    "tau_base": Float(doc="EMA rate of the key network at step 0, rising to 1 (cosine), in [0, 1)", within="[0, 1)"),
    "symmetric": Bool(doc="both views are queries and keys; the two losses are averaged"),
}

register_method(
    "moco",
    MoCo,
    batch="two_views",
    summary="MoCo v2 (He et al., CVPR 2020; Chen et al. 2020): InfoNCE against an EMA key network's queue of past keys",
    fields=MOCO_FIELDS,
    build=scheduled_builder(MoCo),
    example={"projection_dim": 16, "hidden_dim": 32, "queue_size": 64, "tau_base": 0.9},
)
