"""The networks of a run, built from its config.

* :func:`build_encoder`: ``encoder.name`` -> :func:`~tfcontrast.models.encoders.digits_cnn`,
  :func:`~tfcontrast.models.encoders.mlp_encoder` or :func:`~tfcontrast.models.encoders.resnet18`;
* :func:`build_model`: the trainable model of ``method`` around the encoder,
  compiled with its loss and optimizer:

  ========== =========================================================================
  method     model (loss)
  ========== =========================================================================
  siamese    :class:`~tfcontrast.models.SiameseNetwork` (:class:`~tfcontrast.losses.ContrastiveLoss`)
  triplet    :class:`~tfcontrast.models.EmbeddingModel` (:class:`~tfcontrast.losses.TripletLoss`)
  supcon     :class:`~tfcontrast.models.EmbeddingModel` (:class:`~tfcontrast.losses.SupConLoss`)
  simclr     :class:`~tfcontrast.models.SimCLR` (NT-Xent)
  byol       :class:`~tfcontrast.models.BYOL`
  directpred :class:`~tfcontrast.models.DirectPred`
  simsiam    :class:`~tfcontrast.models.SimSiam`
  ========== =========================================================================

* :func:`embedder`: the part of a trained model that maps inputs to the
  embeddings that are indexed, evaluated and exported: the encoder
  (representation before any projection head) for the self-supervised methods
  and siamese; encoder -> projection -> normalisation for triplet and supcon;
* :func:`build_optimizer`: ``optimizer.name`` with a cosine (or constant)
  schedule after a linear warm-up.

:func:`initial_model` builds all of this from ``config.seed`` alone, so the
random-encoder baseline of the evaluation is exactly the run's starting point.
"""

from __future__ import annotations

import keras

from tfcontrast import config as config_lib, losses, models
from tfcontrast.models import encoders


def build_encoder(config, input_shape) -> keras.Model:
    e = config.encoder
    try:
        if e.name == "digits_cnn":
            return encoders.digits_cnn(tuple(input_shape), features=e.features, width=e.width)
        if e.name == "mlp":
            return encoders.mlp_encoder(tuple(input_shape), widths=tuple(e.widths))
        return encoders.resnet18(tuple(input_shape), stem=e.stem)
    except ValueError as err:
        raise config_lib.ConfigError([("config.encoder", str(err))]) from None


def build_optimizer(config) -> keras.optimizers.Optimizer:
    """``optimizer.name`` at ``optimizer.lr``, warmed up linearly over ``warmup_steps``, then cosine (or constant)."""
    o, steps = config.optimizer, config.train.steps
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if o.warmup_steps else o.lr,
        decay_steps=max(steps - o.warmup_steps, 1),
        alpha=1.0 if o.schedule == "constant" else 0.0,
        warmup_target=o.lr if o.warmup_steps else None,
        warmup_steps=o.warmup_steps,
    )
    kwargs = dict(learning_rate=schedule, weight_decay=o.weight_decay or None)
    if o.name == "sgd":
        return keras.optimizers.SGD(momentum=o.momentum, **kwargs)
    return {
        "adamw": keras.optimizers.AdamW,
        "adam": keras.optimizers.Adam,
        "lamb": keras.optimizers.Lamb,
        "lion": keras.optimizers.Lion,
    }[o.name](**kwargs)


def build_model(config, encoder: keras.Model) -> keras.Model:
    """The method's model around ``encoder``, compiled (see the module docstring)."""
    m, method = config.model, config.method
    loss = None
    try:
        if method == "simclr":
            model = models.SimCLR(encoder, projection_dim=m.projection_dim, hidden_dim=m.hidden_dim, temperature=m.temperature)
        elif method == "byol":
            model = models.BYOL(
                encoder, projection_dim=m.projection_dim, hidden_dim=m.hidden_dim, tau_base=m.tau_base,
                total_steps=config.train.steps,
            )
        elif method == "directpred":
            model = models.DirectPred(
                encoder, projection_dim=m.projection_dim, hidden_dim=m.hidden_dim, tau_base=m.tau_base,
                total_steps=config.train.steps, rho=m.rho, eps=m.eps, freq=m.freq, variant=m.variant,
            )
        elif method == "simsiam":
            model = models.SimSiam(encoder, projection_dim=m.projection_dim, predictor_hidden_dim=m.predictor_hidden_dim)
        elif method == "siamese":
            model = models.SiameseNetwork(encoder, distance=m.distance)
            loss = losses.ContrastiveLoss(margin=m.margin)
        else:
            model = models.EmbeddingModel(
                encoder, embedding_dim=m.embedding_dim or None, normalize=m.normalize,
                distance=m.distance if method == "triplet" else "euclidean",
            )
            if method == "triplet":
                loss = losses.TripletLoss(margin=m.margin, mining=m.mining, distance=m.distance, soft=m.soft)
            else:
                loss = losses.SupConLoss(temperature=m.temperature)
    except ValueError as err:
        raise config_lib.ConfigError([("config.model", str(err))]) from None
    model.compile(optimizer=build_optimizer(config), loss=loss, jit_compile=config.train.jit_compile)
    return model


def embedder(model: keras.Model, method: str) -> keras.Model:
    """The network whose outputs are the run's embeddings (module docstring)."""
    if method in ("triplet", "supcon"):
        inputs = keras.Input(model.encoder.input_shape[1:])
        return keras.Model(inputs, model(inputs), name="embedder")
    return model.encoder


def initial_model(config, input_shape) -> keras.Model:
    """The compiled model at its initial weights, a pure function of ``config.seed``."""
    keras.utils.set_random_seed(config.seed)
    return build_model(config, build_encoder(config, input_shape))
