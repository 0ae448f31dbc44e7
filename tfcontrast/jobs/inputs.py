"""A run's data: the train/test split and the training stream of each method.

* :func:`load_split`: the bundled digits, an image folder
  (:func:`tfcontrast.data.load_image_folder`) or a ``.npz`` file
  (:func:`tfcontrast.data.load_npz`), split by class into train and test
  (:func:`tfcontrast.data.stratified_split`, ``data.test_fraction``,
  ``data.split_seed``). Only the train part is ever trained on; the test part
  gives the queries of the evaluation.
* :func:`training_stream`: the batches ``model.fit`` reads, made by the batch
  kind of the config's method (:mod:`tfcontrast.jobs.batches`, or the method's
  own module): a pure function of the config's ``seed`` and of the step,
  starting at ``start_step``. Resuming at step s therefore feeds exactly the
  batches an uninterrupted run feeds from step s on: same data, same
  augmentation draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfcontrast import augment, config as config_lib, data, registry
from tfcontrast.contract import InputContract


@dataclass(frozen=True)
class RunData:
    """The split a run trains and evaluates on.

    ``scale`` is what the loader divided the raw data by (``x = raw / scale``):
    16 for the bundled digits (0-16 pixels), 255 for image folders and uint8
    ``.npz`` images, ``None`` for float ``.npz`` data (no raw form known). It
    goes into the run's input contract (:func:`input_contract`).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    scale: float | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def is_images(self) -> bool:
        return self.x_train.ndim == 4

    @property
    def num_classes(self) -> int:
        """1 + the largest training label."""
        return int(self.y_train.max()) + 1 if len(self.y_train) else 0


def load_split(config) -> RunData:
    """The train/test split of ``config.data`` (see the module docstring).

    Raises:
        config.ConfigError: unreadable data, or data that cannot feed the configured
            encoder, augmentation or batches (each message names its key).
    """
    d = config.data
    try:
        if d.name == "digits":
            split = data.load_digits(d.test_fraction, d.split_seed)
            class_names, scale = tuple(str(i) for i in range(10)), data.DIGITS_SCALE
        else:
            if d.name == "image_folder":
                images, labels, names = data.load_image_folder(d.path, tuple(d.image_size), d.color_mode)
                class_names, scale = tuple(names), data.PIXEL_SCALE
            else:
                images, labels, scale = data.load_npz(d.path, return_scale=True)
                if images.ndim == 3:
                    images = images[..., None]
                class_names = ()  # the labels are their own names
                _check_finite(images)
            split = data.stratified_split(images, labels, d.test_fraction, d.split_seed)
    except ValueError as err:
        raise config_lib.ConfigError([("config.data.path" if d.path else "config.data", str(err))]) from None
    run_data = RunData(
        np.asarray(split.x_train, np.float32),
        np.asarray(split.y_train, np.int32),
        np.asarray(split.x_test, np.float32),
        np.asarray(split.y_test, np.int32),
        class_names,
        scale,
    )
    _check_fits(config, run_data)
    return run_data


def _check_finite(images: np.ndarray) -> None:
    """NaN or inf in the data would turn the weights NaN at the first step that reads them (one check, on the host)."""
    bad = ~np.isfinite(images.reshape(len(images), -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"the images hold NaN or inf in {len(rows)} example(s) (rows {rows[:5].tolist()}"
            f"{', ...' if len(rows) > 5 else ''}): training on them would make the weights NaN; fix or drop them."
        )


def input_contract(run: RunData) -> InputContract:
    """The input contract of the run: shape, dtype and value range of ``x_train`` (as the model reads it) and the scale."""
    return InputContract.from_data(run.x_train, scale=run.scale)


def _check_fits(config, run: RunData) -> None:
    problems = []
    if not run.is_images:
        if config.encoder.name != "mlp":
            problems.append(
                ("config.encoder.name", f"the data are vectors of shape {run.input_shape}: only 'mlp' reads them")
            )
        if config.augment.enabled:
            problems.append(("config.augment.enabled", f"the data are vectors of shape {run.input_shape}: no image augmentation"))
    elif run.input_shape[-1] not in (1, 3):
        problems.append(("config.data.path", f"images must have 1 or 3 channels, got shape {run.input_shape}"))
    check = batch_kind(config).check
    if check is not None:
        problems += check(config, run)
    n_train = len(run.x_train)
    ks = (config.eval.knn_k, *config.eval.recall_ks, config.eval.grid_neighbors)
    if max(ks) > n_train:
        problems.append(("config.eval", f"knn_k, recall_ks and grid_neighbors must be <= the {n_train} training examples"))
    if problems:
        raise config_lib.ConfigError(problems)


def augmentation(config, input_shape) -> augment.TwoViewAugmentation | None:
    """The configured :class:`~tfcontrast.augment.TwoViewAugmentation`, or ``None`` when disabled."""
    a = config.augment
    if not a.enabled:
        return None
    try:
        return augment.TwoViewAugmentation(
            recipe=a.recipe,
            image_size=tuple(input_shape[:2]),
            crop_scale=tuple(a.crop_scale),
            flip=a.flip,
            jitter_prob=a.jitter_prob,
            jitter_strength=a.jitter_strength,
            grayscale_prob=a.grayscale_prob,
            blur_prob=a.blur_prob,
            solarize_prob=a.solarize_prob,
            max_shift=a.max_shift,
            max_degrees=a.max_degrees,
            seed=config.seed,
        )
    except ValueError as err:
        raise config_lib.ConfigError([("config.augment", str(err))]) from None


def batch_kind(config) -> registry.BatchKind:
    """The registered batch kind of the config's method."""
    return registry.batch_kinds.get(registry.methods.get(config.method).batch)


def training_stream(config, run: RunData, views, start_step: int = 0) -> tf.data.Dataset:
    """The batches of steps ``start_step, ..., train.steps - 1`` (module docstring)."""
    return batch_kind(config).stream(config, run, views, start_step)
