"""The networks of a run, built from its config.

* :func:`build_encoder`: ``encoder.name`` -> :func:`~tfcontrast.models.encoders.digits_cnn`,
  :func:`~tfcontrast.models.encoders.mlp_encoder` or :func:`~tfcontrast.models.encoders.resnet18`;
* :func:`build_model`: the registered model of ``config.method``
  (:mod:`tfcontrast.registry`) around the encoder, built by the method's
  builder from the ``model`` section and compiled with the optimizer and, for a
  method compiled with a loss, the registered loss ``config.loss.name``;
* :func:`embedder`: the part of a trained model that maps inputs to the
  embeddings that are indexed, evaluated and exported (the method's registered
  embedder: the encoder, i.e. the representation before any projection head,
  unless the method says otherwise);
* :func:`build_optimizer`: ``optimizer.name`` with a cosine (or constant)
  schedule after a linear warm-up.

:func:`initial_model` builds all of this from ``config.seed`` alone, so the
random-encoder baseline of the evaluation is exactly the run's starting point.
"""

from __future__ import annotations

import dataclasses

import keras

from tfcontrast import config as config_lib, registry
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


def build_optimizer(
    config, lr: float | None = None, steps: int | None = None, warmup_steps: int | None = None
) -> keras.optimizers.Optimizer:
    """``optimizer.name`` at ``optimizer.lr``, warmed up linearly over ``warmup_steps``, then cosine (or constant).

    ``lr``, ``steps`` and ``warmup_steps`` replace ``optimizer.lr``,
    ``train.steps`` and ``optimizer.warmup_steps`` (a later stage of a run with
    its own schedule, e.g. the text job's ``pairs`` stage).
    """
    o = config.optimizer
    lr = o.lr if lr is None else lr
    steps = config.train.steps if steps is None else steps
    warmup = o.warmup_steps if warmup_steps is None else warmup_steps
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else lr,
        decay_steps=max(steps - warmup, 1),
        alpha=1.0 if o.schedule == "constant" else 0.0,
        warmup_target=lr if warmup else None,
        warmup_steps=warmup,
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


def build_model(config, encoder: keras.Model, input_shape=None, num_classes: int | None = None) -> keras.Model:
    """The method's model around ``encoder``, compiled (see the module docstring).

    ``input_shape`` (default: the encoder's) and ``num_classes`` reach the
    builders through :class:`tfcontrast.registry.BuildContext`.
    """
    spec = registry.methods.get(config.method)
    context = registry.BuildContext(
        input_shape=tuple(input_shape or encoder.input_shape[1:]), num_classes=num_classes
    )
    if spec.loss is not None:
        context = _with_loss(config, context)
    try:
        model = spec.build(config, encoder, context)
    except ValueError as err:
        raise config_lib.ConfigError([("config.model", str(err))]) from None
    model.compile(optimizer=build_optimizer(config), loss=context.loss, jit_compile=config.train.jit_compile)
    return model


def _with_loss(config, context: registry.BuildContext) -> registry.BuildContext:
    """``context`` with the configured loss and the model arguments it asks for."""
    section = {k: v for k, v in config.loss.items() if k != "name"}
    loss_spec = registry.losses.get(config.loss.name)
    try:
        loss = loss_spec.build(section, context)
    except ValueError as err:
        raise config_lib.ConfigError([("config.loss", str(err))]) from None
    if loss_spec.head:  # a layer with trainable weights the model owns: a model argument, not compiled
        return dataclasses.replace(context, model_kwargs={"loss_head": loss})
    context = dataclasses.replace(context, loss=loss)
    if loss_spec.model_kwargs is not None:
        context = dataclasses.replace(context, model_kwargs=dict(loss_spec.model_kwargs(loss, context)))
    return context


def embedder(model: keras.Model, method: str) -> keras.Model:
    """The network whose outputs are the run's embeddings (the method's registered embedder)."""
    return registry.methods.get(method).embedder(model)


def initial_model(config, input_shape, num_classes: int | None = None) -> keras.Model:
    """The compiled model at its initial weights, a pure function of ``config.seed`` (and the data's shape and classes)."""
    keras.utils.set_random_seed(config.seed)
    return build_model(config, build_encoder(config, input_shape), input_shape, num_classes)
