"""Fine-tuning a pretrained encoder on a few labels, or a linear classifier on a frozen one.

SimCLRv2 (Chen, Kornblith, Swersky, Norouzi and Hinton, "Big Self-Supervised
Models are Strong Semi-Supervised Learners", NeurIPS 2020, section 2) turns a
self-supervised network into a classifier from 1% or 10% of the labels:

* keep the encoder **and the first layer(s) of the projection head**
  ("fine-tuning from the middle layer of the projection head"; the rest of the
  head is dropped), put a linear classifier on top, and train everything with
  the cross-entropy on the labelled subset (:class:`FineTuner` with
  ``from_layer``);
* or freeze the encoder and train only the linear classifier (linear
  evaluation, ``freeze_encoder=True``): the encoder runs in inference mode
  (BatchNorm on its moving statistics) and no variable of it changes.

A smaller learning rate for the pretrained layers than for the new classifier
is ``encoder_lr_multiplier=m``: after every optimizer step the update of each
pretrained variable is multiplied by m,

    theta <- theta_before + m (theta_after - theta_before),

which is exactly training those variables at m times the learning rate for
every Keras optimizer (SGD, Adam, AdamW with its decoupled decay, LAMB, Lion:
their updates are the learning rate times a direction that does not depend on
it, and their moments are computed from the gradients alone). Scaling the
*gradients* instead would do nothing with Adam-type optimizers, which divide
the scale away. The rescaled values are assigned on every replica under a
``tf.distribute`` strategy (each replica computes the same values: the
gradients are all-reduced).
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.models.classification import ClassifierModel, cross_entropy_share, freeze, regularization_share
from tfcontrast.models.ssl.base import encoder_feature_dim


class PretrainedParts:
    """A pretrained ``encoder`` and an optional ``projector`` (what :class:`FineTuner` reads from a model)."""

    def __init__(self, encoder: keras.Model, projector: keras.layers.Layer | None = None):
        self.encoder = encoder
        self.projector = projector


def pretrained_parts(pretrained, from_layer: int) -> tuple[keras.Model, list]:
    """The encoder of ``pretrained`` and the layers of the first ``from_layer`` blocks of its projector.

    ``pretrained`` is a self-supervised model (anything with an ``encoder``
    attribute that is a ``keras.Model``; its ``projector``, if any, is a
    ``keras.Sequential`` of Dense blocks) or a bare encoder. A block is a
    Dense layer and the layers after it up to the next Dense (BatchNorm, ReLU).

    Raises:
        ValueError: no encoder; ``from_layer`` not an int in ``[0, blocks]``;
            ``from_layer > 0`` with no projector or one that is not a
            Sequential starting with a Dense layer.
    """
    if not isinstance(from_layer, int) or isinstance(from_layer, bool) or from_layer < 0:
        raise ValueError(f"`from_layer` must be an int >= 0 (projection-head layers to keep), got {from_layer!r}.")
    encoder = getattr(pretrained, "encoder", pretrained)
    if not isinstance(encoder, keras.Model):
        raise ValueError(
            "`pretrained` must be a self-supervised model with an `encoder` (e.g. tfcontrast.models.SimCLR) "
            f"or an encoder keras.Model, got {type(pretrained).__name__}."
        )
    if from_layer == 0:
        return encoder, []
    projector = getattr(pretrained, "projector", None) if encoder is not pretrained else None
    if projector is None:
        raise ValueError(
            f"`from_layer`={from_layer} keeps projection-head layers, but `pretrained` "
            f"({type(pretrained).__name__}) has no `projector`: use from_layer=0."
        )
    if not isinstance(projector, keras.Sequential) or not projector.layers or not isinstance(projector.layers[0], keras.layers.Dense):
        raise ValueError(
            f"`from_layer`={from_layer} needs a projector that is a keras.Sequential of Dense blocks, "
            f"got {type(projector).__name__}."
        )
    blocks = []
    for layer in projector.layers:
        if isinstance(layer, keras.layers.Dense):
            blocks.append([])
        blocks[-1].append(layer)
    if from_layer > len(blocks):
        raise ValueError(
            f"`from_layer` must lie in [0, {len(blocks)}]: the projector has {len(blocks)} layers, got {from_layer}."
        )
    return encoder, [layer for block in blocks[:from_layer] for layer in block]


def _fresh_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new layer of the same config, under the current global dtype policy."""
    config = layer.get_config()
    if isinstance(config.get("dtype"), dict):  # a serialised DTypePolicy (not an input layer's dtype)
        config["dtype"] = keras.mixed_precision.global_policy()
    return layer.__class__.from_config(config)


def copy_network(network: keras.Model, name: str) -> keras.Model:
    """A copy of ``network`` with its weights, nested models included, under the global dtype policy.

    Raises:
        ValueError: a network ``keras.models.clone_model`` cannot clone (a
            subclassed model without ``get_config`` / ``from_config``).
    """
    try:
        clone = keras.models.clone_model(network, clone_function=_fresh_layer, recursive=True)
    except Exception as err:  # clone_model raises several types for unclonable models
        raise ValueError(
            f"cannot copy {network.name!r} ({err}); a subclassed model needs get_config/from_config."
        ) from None
    clone.set_weights(network.get_weights())
    clone.name = name
    return clone


def copy_layers(layers: list, input_dim: int, name: str) -> keras.Sequential:
    """A ``keras.Sequential`` of fresh copies of ``layers`` (with their weights), built on ``[None, input_dim]``."""
    copies = [_fresh_layer(layer) for layer in layers]
    head = keras.Sequential([keras.Input((input_dim,), name=f"{name}_input")] + copies, name=name)
    for copy, layer in zip(copies, layers):
        copy.set_weights(layer.get_weights())
    return head


@keras.saving.register_keras_serializable(package="tfcontrast")
class FineTuner(ClassifierModel):
    """A classifier on a pretrained encoder: SimCLRv2 fine-tuning, or linear evaluation.

    ``model(x)`` returns float32 logits ``[batch, num_classes]`` of
    ``classifier(head(encoder(x)))``: ``encoder`` and ``head`` (the first
    ``from_layer`` layers of the pretrained projection head, each
    Dense-BN-ReLU) are *copies* of the pretrained ones with their weights, so
    the pretrained model itself never changes and several fine-tunings can
    start from it; ``classifier`` is a new float32 Dense layer. Train with
    ``compile(optimizer)`` and ``fit(x, labels)``: the loss is the softmax
    cross-entropy, the mean over the global batch under a strategy, computed
    in float32 (mixed precision: the copies follow the global dtype policy,
    the logits and the loss stay float32).

    Args:
        pretrained: a trained self-supervised model (any with an ``encoder``
            attribute: :class:`~tfcontrast.models.SimCLR`, :class:`~tfcontrast.models.BYOL`,
            :class:`~tfcontrast.models.DirectPred`, :class:`~tfcontrast.models.SimSiam`, ...)
            or a bare encoder ``keras.Model`` (images -> ``[batch, features]``).
        num_classes: classes of the classifier (>= 2).
        from_layer: projection-head layers kept on the encoder (0: the
            encoder's features, as usual; 1: SimCLRv2's "from the middle
            layer" of its 3-layer head, ``SimCLR(head_layers=3)``).
        freeze_encoder: linear evaluation: the encoder and the kept head
            layers are frozen (inference mode, never updated); only the
            classifier trains.
        encoder_lr_multiplier: m > 0; the encoder and kept head layers learn
            at m times the optimizer's learning rate (module docstring); 1 for
            one learning rate everywhere.
        augment: optional callable images -> images applied to every training
            batch inside the step (e.g. random shifts of the few labelled
            images); not applied by ``evaluate`` / ``predict``.

    Metrics: ``loss`` and ``accuracy``.

    Raises:
        ValueError: a bad ``pretrained`` / ``from_layer`` (see
            :func:`pretrained_parts`), ``num_classes``, ``encoder_lr_multiplier``
            (or one other than 1 with a frozen encoder), ``augment``; at ``fit``:
            labels outside ``[0, num_classes)``, sample weights, or a loss or
            metrics given to ``compile``.

    Example:
        >>> ssl = tfc.models.SimCLR(encoder, head_layers=3)           # doctest: +SKIP
        >>> ssl.compile(optimizer="adam"); ssl.fit(unlabelled_views, epochs=100)
        >>> x_few, y_few, _ = tfc.data.labelled_subset(x_train, y_train, per_class=10, seed=0)
        >>> clf = tfc.models.FineTuner(ssl, num_classes=10, from_layer=1, encoder_lr_multiplier=0.1)
        >>> clf.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> clf.fit(x_few, y_few, batch_size=32, epochs=50)
        >>> clf.evaluate(x_test, y_test, return_dict=True)["accuracy"]
    """

    def __init__(
        self,
        pretrained,
        num_classes: int,
        from_layer: int = 0,
        freeze_encoder: bool = False,
        encoder_lr_multiplier: float = 1.0,
        augment: Callable[[tf.Tensor], tf.Tensor] | None = None,
        **kwargs,
    ):
        super().__init__(num_classes, augment=augment, **kwargs)
        encoder, head_layers = pretrained_parts(pretrained, from_layer)
        self.from_layer = from_layer
        self.freeze_encoder = bool(freeze_encoder)
        self.encoder_lr_multiplier = validation.check_positive(encoder_lr_multiplier, "encoder_lr_multiplier")
        if self.freeze_encoder and self.encoder_lr_multiplier != 1.0:
            raise ValueError("`encoder_lr_multiplier` has no effect with freeze_encoder=True (nothing of the encoder trains).")
        feature_dim = encoder_feature_dim(encoder)
        self.encoder = copy_network(encoder, "encoder")
        self.head = copy_layers(head_layers, feature_dim, "head") if head_layers else None
        width = int(self.head.compute_output_shape((None, feature_dim))[-1]) if self.head is not None else feature_dim
        self.representation_dim = width
        self.classifier = keras.layers.Dense(self.num_classes, dtype="float32", name="classifier")
        self.classifier.build((None, width))
        if self.freeze_encoder:
            for network in self.pretrained_networks:
                freeze(network)
        self.built = True  # every sublayer is built: fit, save and load can start

    @property
    def pretrained_networks(self) -> list:
        """The copies of the pretrained networks: the encoder, then the kept head (if any)."""
        return [self.encoder] + ([self.head] if self.head is not None else [])

    def representation(self, x, training: bool = False) -> tf.Tensor:
        """What the classifier reads: ``head(encoder(x))``, ``[batch, representation_dim]``."""
        training = training and not self.freeze_encoder
        h = self.encoder(x, training=training)
        return self.head(h, training=training) if self.head is not None else h

    def call(self, inputs, training=False):
        return self.classifier(self.representation(inputs, training=training))

    def train_step(self, data):
        x, labels = self.batch(data, training=True)
        if labels is None:
            raise ValueError("FineTuner trains on (x, labels) batches: got no labels.")
        slowed = []
        if self.encoder_lr_multiplier != 1.0:
            slowed = [v for network in self.pretrained_networks for v in network.trainable_variables]
        before = [tf.convert_to_tensor(v) for v in slowed]
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            loss = cross_entropy_share(labels, logits) + regularization_share(self)
            scaled = self.optimizer.scale_loss(loss)
        self.apply_gradients(tape, scaled, self.trainable_variables)
        if slowed:
            m = self.encoder_lr_multiplier
            distribute.assign_on_every_replica(
                slowed, [b + tf.cast(m, b.dtype) * (tf.convert_to_tensor(v) - b) for v, b in zip(slowed, before)]
            )
        return self.record(loss, labels, logits)

    def test_step(self, data):
        x, labels = self.batch(data, training=False)
        if labels is None:
            raise ValueError("FineTuner evaluates on (x, labels) batches: got no labels.")
        logits = self(x, training=False)
        return self.record(cross_entropy_share(labels, logits) + regularization_share(self), labels, logits)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "head": keras.saving.serialize_keras_object(self.head) if self.head is not None else None,
            "from_layer": self.from_layer,
            "freeze_encoder": self.freeze_encoder,
            "encoder_lr_multiplier": self.encoder_lr_multiplier,
        }

    @classmethod
    def from_config(cls, config):
        config = cls.deserialize_augment(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        head = config.pop("head")
        head = keras.saving.deserialize_keras_object(head) if head is not None else None
        return cls(PretrainedParts(encoder, head), **config)
