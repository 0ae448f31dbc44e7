"""The batch kinds of the built-in methods: how each training stream is made.

=================  =================================================  ==========================
kind               one batch                                          ``train`` keys
=================  =================================================  ==========================
``two_views``      ``(view_1, view_2)``: two augmentations of B images  ``batch_size``
``class_balanced`` ``(images, labels)``: P classes x K images each      ``classes_per_batch``,
                   (:func:`tfcontrast.data.class_balanced_batches`)      ``samples_per_class``
``pairs``          ``((x1, x2), y)``: labelled pairs, y = 1 same class   ``batch_size``,
                   (:func:`tfcontrast.data.pair_dataset`)                ``positive_fraction``
=================  =================================================  ==========================

Every stream is a pure function of ``config.seed`` and of the step, starting at
``start_step``: resuming at step s feeds exactly the batches an uninterrupted
run feeds from step s on (same data, same augmentation draws).

* ``two_views``: :func:`tfcontrast.augment.two_view_dataset`, reshuffled every
  pass over the data, two stateless views per batch;
* the supervised kinds get one stateless view of every image per step
  (:func:`with_step_views`) when ``augment.enabled``.

A method with another kind of batch registers its kind in its own module with
:func:`tfcontrast.registry.register_batch_kind`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from tfcontrast import augment, data
from tfcontrast.fields import Float, Int
from tfcontrast.registry import register_batch_kind

# Stream of the per-step augmentation seeds of supervised batches.
_VIEW_STREAM = 7


def with_step_views(stream: tf.data.Dataset, views, seed: int, image_paths: Sequence[int], start_step: int,
                    total_steps: int) -> tf.data.Dataset:
    """``stream`` (already started at ``start_step``) with one augmented view of the images at ``image_paths``.

    ``image_paths`` index the flattened batch structure (``tf.nest.flatten``).
    The view of step s is seeded by ``(seed, path, s)`` alone.
    """
    if views is None:
        return stream

    def augment_batch(step, element):
        flat = tf.nest.flatten(element)
        for i in image_paths:
            view_seed = tf.stack([tf.constant(seed * 16 + _VIEW_STREAM + i, tf.int64), step])
            flat[i] = views.view(flat[i], view_seed, 0)
        return tf.nest.pack_sequence_as(element, flat)

    steps = tf.data.Dataset.range(start_step, total_steps)
    views_stream = tf.data.Dataset.zip(steps, stream).map(
        augment_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return data.steady_pipeline(views_stream)


def batch_no_larger_than_the_data(config, run) -> list[tuple[str, str]]:
    """``train.batch_size`` images must exist in the training split."""
    n_train, size = len(run.x_train), config.train.batch_size
    if size > n_train:
        return [("config.train.batch_size", f"must be <= the {n_train} training examples, got {size}")]
    return []


# ------------------------------------------------------------- two views


def two_view_stream(config, run, views, start_step: int = 0) -> tf.data.Dataset:
    stream = augment.two_view_dataset(run.x_train, config.train.batch_size, views, seed=config.seed, repeat=True)
    return stream.take(config.train.steps).skip(start_step)


register_batch_kind(
    "two_views",
    summary="(view_1, view_2): two random augmentations of every image of the batch",
    fields={"batch_size": Int(256, "images per step (each seen as two views)", min=2)},
    stream=two_view_stream,
    examples_per_step=lambda train: train.batch_size,
    needs_views=True,
    check=batch_no_larger_than_the_data,
    example={"batch_size": 32},
)


# --------------------------------------------------------- class balanced


def class_balanced_stream(config, run, views, start_step: int = 0) -> tf.data.Dataset:
    train = config.train
    stream = data.class_balanced_batches(
        run.x_train, run.y_train, train.classes_per_batch, train.samples_per_class, steps=train.steps,
        seed=config.seed, allow_repeats=True,
    )
    return with_step_views(stream.skip(start_step), views, config.seed, (0,), start_step, train.steps)


def _enough_classes(config, run) -> list[tuple[str, str]]:
    classes = len(np.unique(run.y_train))
    wanted = config.train.classes_per_batch
    if wanted > classes:
        return [("config.train.classes_per_batch", f"must be <= the {classes} classes of the data, got {wanted}")]
    return []


register_batch_kind(
    "class_balanced",
    summary="(images, labels): P classes x K images of each, so that every batch holds positives",
    fields={
        "classes_per_batch": Int(10, "P: classes per batch (P x K batches, every batch holds positives)", min=1),
        "samples_per_class": Int(8, "K: examples of each class per batch, >= 2", min=2),
    },
    stream=class_balanced_stream,
    examples_per_step=lambda train: train.classes_per_batch * train.samples_per_class,
    check=_enough_classes,
    example={"classes_per_batch": 4, "samples_per_class": 4},
)


# ------------------------------------------------------------------ pairs


def pair_stream(config, run, views, start_step: int = 0) -> tf.data.Dataset:
    train = config.train
    stream = data.pair_dataset(
        run.x_train, run.y_train, train.batch_size, steps=train.steps, seed=config.seed,
        positive_fraction=train.positive_fraction,
    )
    return with_step_views(stream.skip(start_step), views, config.seed, (0, 1), start_step, train.steps)


register_batch_kind(
    "pairs",
    summary="((x1, x2), y): labelled pairs, y = 1 for two images of the same class",
    fields={
        "batch_size": Int(128, "labelled pairs per step", min=1),
        "positive_fraction": Float(0.5, "share of same-class pairs in every batch, in [0, 1]", within="[0, 1]"),
    },
    stream=pair_stream,
    examples_per_step=lambda train: train.batch_size,
    example={"batch_size": 16},
)
