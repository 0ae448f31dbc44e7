"""Bundled data and the splits the library evaluates on.

The default data set is scikit-learn's digits (Alpaydin and Kaynak, UCI
"Optical Recognition of Handwritten Digits"): 1,797 real 8x8 grey-level
images of the digits 0-9, shipped inside scikit-learn, so nothing is
downloaded. :func:`load_digits` returns them as float images in [0, 1] with a
deterministic, stratified train/test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """A train/test split of images (or vectors) and integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def stratified_split(x, labels, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Splits ``(x, labels)`` keeping each class's share in both parts; deterministic in ``seed``.

    Raises:
        ValueError: ``test_fraction`` outside (0, 1), lengths that differ, or a
            class too small to appear on both sides.
    """
    from sklearn.model_selection import train_test_split

    x = np.asarray(x)
    labels = np.asarray(labels)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"`test_fraction` must lie in (0, 1), got {test_fraction!r}.")
    if labels.ndim != 1 or len(labels) != len(x):
        raise ValueError(f"`labels` must be [n] with n = len(x) = {len(x)}, got shape {labels.shape}.")
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min(initial=2) < 2:
        raise ValueError(f"class {classes[counts.argmin()]!r} has a single example: it cannot be split.")
    x_train, x_test, y_train, y_test = train_test_split(
        x, labels, test_size=float(test_fraction), random_state=int(seed), stratify=labels
    )
    return Split(x_train, y_train, x_test, y_test)


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Split:
    """The scikit-learn digits as ``[n, 8, 8, 1]`` float32 images in [0, 1] and int32 labels.

    Split stratified by class: 1,437 train and 360 test images at the defaults.

    Example:
        >>> split = load_digits()
        >>> split.x_train.shape, split.x_test.shape
        ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    from sklearn import datasets

    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    return stratified_split(images, digits.target.astype(np.int32), test_fraction, seed)
