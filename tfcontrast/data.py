"""Data: bundled digits, user data loaders and the batch builders of supervised training.

The default data set is scikit-learn's digits (Alpaydin and Kaynak, UCI
"Optical Recognition of Handwritten Digits"): 1,797 real 8x8 grey-level
images of the digits 0-9, shipped inside scikit-learn, so nothing is
downloaded. :func:`load_digits` returns them as float images in [0, 1] with a
deterministic, stratified train/test split.

* loaders: :func:`load_npz` (arrays, no pickle), :func:`load_image_folder`
  (``path/<class>/<image>``);
* builders (``tf.data`` pipelines whose batch at step s, before any ``augment``, is a pure function of
  ``(seed, s)``, so ``skip(s)`` resumes exactly):
  :func:`class_balanced_batches` (P classes x K examples, for triplet and
  SupCon mining), :func:`pair_dataset` (``((x1, x2), y)``, for the contrastive
  loss), :func:`triplet_dataset` (``((anchor, positive, negative),)``),
  :func:`indexed_dataset` (``(images or views, index)``, for methods with one
  memory entry per training image, e.g. PIRL);
* :func:`steady_pipeline`: how every training pipeline of the package ends
  (a fixed prefetch, tf.data autotuning off, so that ``fit`` never waits on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfcontrast import augment as augment_lib, validation

DIGITS_SCALE = 16.0
"""The digits' raw pixels are 0-16: :func:`load_digits` returns them divided by this."""
PIXEL_SCALE = 255.0
"""8-bit images: :func:`load_image_folder` and :func:`load_npz` (uint8) return pixels divided by this."""


# Batches every training pipeline keeps ready ahead of the train step.
PREFETCH_BATCHES = 2


def steady_pipeline(dataset: tf.data.Dataset, prefetch: int = PREFETCH_BATCHES) -> tf.data.Dataset:
    """``dataset`` with ``prefetch`` batches kept ready and tf.data's autotuning turned off.

    How every training pipeline of the package ends (:func:`two_view_dataset
    <tfcontrast.augment.two_view_dataset>`, :func:`class_balanced_batches`,
    :func:`pair_dataset`, ...). With autotuning on (TensorFlow's default: a
    background thread re-plans buffer sizes and parallelism at growing
    intervals), destroying the iterator when ``model.fit`` returns sometimes
    waited, without using any CPU, for many seconds: 14.7, 19.5 and 20.1 s
    after fits of 30-70 s on the shared 2-core machine, while no fit of the
    same pipelines with autotuning off waited more than 0.1 s
    (``benchmarks/bench_train.py --stalls``; issue 19). The waits are
    intermittent: a later run of 8 fits of 17-37 s saw none above 0.4 s in
    either setting. Without autotuning,
    each ``num_parallel_calls=tf.data.AUTOTUNE`` map runs one call per CPU
    core (at most 16; TensorFlow's starting value), and the ``prefetch``
    buffer is fixed: enough when the train step, not the pipeline, is the
    bottleneck, as in every pipeline here (``benchmarks/bench_train.py``,
    ``pipeline / step``).

    The elements are exactly those of ``dataset`` (neither setting changes
    values or order).

    Example:
        >>> ds = steady_pipeline(tf.data.Dataset.range(8).batch(4))
        >>> ds.options().autotune.enabled
        False
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(int(prefetch)).with_options(options)


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
    """The scikit-learn digits as ``[n, 8, 8, 1]`` float32 images in [0, 1] (raw 0-16 / :data:`DIGITS_SCALE`) and int32 labels.

    Split stratified by class: 1,437 train and 360 test images at the defaults.

    Example:
        >>> split = load_digits()
        >>> split.x_train.shape, split.x_test.shape
        ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    from sklearn import datasets

    digits = datasets.load_digits()
    images = (digits.images / DIGITS_SCALE).astype(np.float32)[..., None]
    return stratified_split(images, digits.target.astype(np.int32), test_fraction, seed)


# --------------------------------------------------------------------------
# Loading user data
# --------------------------------------------------------------------------

IMAGE_KEYS = ("x", "images")
LABEL_KEYS = ("y", "labels")
COLOR_MODES = ("rgb", "grayscale", "rgba")


def load_npz(path, return_scale: bool = False) -> tuple[np.ndarray, ...]:
    """Images (or vectors) and integer labels from a ``.npz`` file, loaded without pickle.

    The arrays are read from the keys ``"x"`` or ``"images"`` and ``"y"`` or
    ``"labels"``. ``uint8`` images are scaled to [0, 1] (divided by 255,
    :data:`PIXEL_SCALE`); other numeric images are cast to float32 as they
    are. Labels must be whole numbers and come back as int32.

    Args:
        path: the ``.npz`` file.
        return_scale: also return the scale applied (``images = raw / scale``):
            255.0 for uint8 images, ``None`` for others (their raw form is unknown).
            The input contract of a run records it (:mod:`tfcontrast.contract`).

    Returns:
        ``(images float32 [n, ...], labels int32 [n])``, plus ``scale`` with ``return_scale``.

    Raises:
        ValueError: a missing or unreadable file, a file holding object
            (pickled) arrays, missing keys (the keys found are listed), an
            empty file, lengths that differ, or labels that are not integer
            class ids.

    Example:
        >>> np.savez("/tmp/d.npz", x=np.zeros((2, 4)), y=[0, 1])
        >>> x, y = load_npz("/tmp/d.npz")
        >>> x.dtype, y.dtype
        (dtype('float32'), dtype('int32'))
    """
    import os

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"`path` {path!r} is not a file.")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:  # not an archive (numpy would try to unpickle it)
        raise ValueError(f"`path` {path!r} is not a readable .npz archive: {err}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"`path` {path!r} holds a single .npy array, not an .npz archive of images and labels.")
    with archive:
        keys = set(archive.files)
        image_key = next((k for k in IMAGE_KEYS if k in keys), None)
        label_key = next((k for k in LABEL_KEYS if k in keys), None)
        if image_key is None or label_key is None:
            raise ValueError(
                f"`path` {path!r} must hold images under one of {IMAGE_KEYS} and labels under one of "
                f"{LABEL_KEYS}; found keys {sorted(keys)}."
            )
        try:
            images, labels = archive[image_key], archive[label_key]
        except ValueError:
            raise ValueError(f"`path` {path!r} holds object (pickled) arrays, which are not loaded.") from None
    if not np.issubdtype(images.dtype, np.number) or np.issubdtype(images.dtype, np.complexfloating):
        raise ValueError(f"images in {path!r} must be real numbers, got dtype {images.dtype}.")
    scale = PIXEL_SCALE if images.dtype == np.uint8 else None
    images = images.astype(np.float32) / scale if scale else images.astype(np.float32)
    labels = as_class_ids(labels, len(images), name=f"labels in {path!r}")
    if len(images) == 0:
        raise ValueError(f"`path` {path!r} holds no examples.")
    return (images, labels, scale) if return_scale else (images, labels)


def load_image_folder(
    path, image_size: tuple[int, int] = (32, 32), color_mode: str = "rgb"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every image of a ``path/<class name>/<image>`` tree, resized, as arrays in [0, 1].

    Reads with ``keras.utils.image_dataset_from_directory`` (formats: jpeg,
    png, bmp, gif), classes in alphabetical order of their folder names, files
    in a fixed order (no shuffling).

    Args:
        path: the root folder, one sub-folder per class.
        image_size: ``(height, width)`` every image is resized to (bilinear).
        color_mode: ``"rgb"`` (3 channels), ``"grayscale"`` (1) or ``"rgba"`` (4).

    Returns:
        ``(images float32 [n, h, w, c] in [0, 1], labels int32 [n], class_names)``;
        ``labels[i]`` indexes ``class_names``.

    Raises:
        ValueError: a missing folder, a folder without class sub-folders or
            without images, or bad ``image_size`` / ``color_mode``.
    """
    import os

    import keras

    path = os.fspath(path)
    if color_mode not in COLOR_MODES:
        raise ValueError(f"`color_mode` must be one of {COLOR_MODES}, got {color_mode!r}.")
    size = tuple(image_size) if isinstance(image_size, (tuple, list)) else ()
    if len(size) != 2 or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in size):
        raise ValueError(f"`image_size` must be (height, width) positive ints, got {image_size!r}.")
    if not os.path.isdir(path):
        raise ValueError(f"`path` {path!r} is not a folder.")
    class_dirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if not class_dirs:
        raise ValueError(f"`path` {path!r} has no class sub-folders (expected path/<class>/<image>).")
    try:
        dataset = keras.utils.image_dataset_from_directory(
            path,
            labels="inferred",
            label_mode="int",
            color_mode=color_mode,
            image_size=size,
            batch_size=None,
            shuffle=False,
            verbose=False,
        )
    except ValueError as err:
        raise ValueError(f"`path` {path!r}: no images could be read ({err}).") from None
    class_names = list(dataset.class_names)
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError(f"`path` {path!r} holds no images in its class sub-folders {class_dirs}.")
    channels = {"rgb": 3, "grayscale": 1, "rgba": 4}[color_mode]
    x = np.stack(images).astype(np.float32).reshape((-1,) + size + (channels,)) / PIXEL_SCALE
    return x, np.asarray(labels, dtype=np.int32), class_names


# --------------------------------------------------------------------------
# Training batches: P x K, pairs, triplets
# --------------------------------------------------------------------------
#
# Every builder draws its batch at step s from stateless random ops seeded by
# (seed, s): the same arguments give the same batches on every run, in any
# order, and the pipelines need no Python generator. The arrays are held as
# constants of the pipeline (fine for data that fits in memory, which is what
# these helpers are for).

# Independent random streams of one builder: stateless seeds (seed * 4 + stream, counter).
_CLASS_ORDER, _SAMPLES, _PAIRS, _PAIR_LABELS = range(4)


def _stateless_seed(seed: int, stream: int, counter) -> tf.Tensor:
    first = tf.constant(int(seed) * 4 + stream, tf.int64)
    return tf.stack([first, tf.cast(counter, tf.int64)])


def _check_int(value, name: str, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def as_class_ids(labels, n: int, name: str = "labels") -> np.ndarray:
    """``labels`` as int32 class ids ``[n]`` (``[n, 1]`` accepted); whole-number floats are accepted.

    Raises:
        ValueError: another shape or length, non-integer values, or a non-numeric dtype.
    """
    labels = validation.host_class_ids(labels, n, name, float_limit=None)
    if len(labels) and (labels.min() < np.iinfo(np.int32).min or labels.max() > np.iinfo(np.int32).max):
        raise ValueError(f"`{name}` must fit in int32, got values in [{labels.min()}, {labels.max()}].")
    return labels.astype(np.int32)


def _check_examples(x, labels) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"`x` must be an array of examples [n, ...], got shape {x.shape}.")
    if len(x) == 0:
        raise ValueError("`x` is empty: the builders need at least one example per class.")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"`x` must be numeric, got dtype {x.dtype}.")
    return x, as_class_ids(labels, len(x))


class _ClassIndex:
    """Example indices grouped by class: ``order[starts[c]: starts[c] + counts[c]]`` is class c."""

    def __init__(self, labels: np.ndarray):
        self.classes, self.inverse, self.counts = np.unique(labels, return_inverse=True, return_counts=True)
        self.order = np.argsort(self.inverse, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        # rank[i]: position of example i inside its class block.
        self.rank = np.empty(len(labels), np.int64)
        self.rank[self.order] = np.arange(len(labels)) - self.starts[self.inverse[self.order]]


def _finish(dataset: tf.data.Dataset, steps: int | None, augment, image_paths) -> tf.data.Dataset:
    """``take(steps)``, optional batched augmentation of the image tensors, :func:`steady_pipeline`."""
    if steps is not None:
        dataset = dataset.take(steps)
    if augment is not None:
        if not callable(augment):
            raise ValueError(f"`augment` must be a callable on a batch of images, got {type(augment).__name__}.")

        def apply(element):
            flat = tf.nest.flatten(element)
            for position in image_paths:
                flat[position] = augment(flat[position])
            return tf.nest.pack_sequence_as(element, flat)

        dataset = dataset.map(lambda *element: apply(element), num_parallel_calls=tf.data.AUTOTUNE)
    return steady_pipeline(dataset)


def class_balanced_batches(
    x,
    labels,
    classes_per_batch: int,
    samples_per_class: int,
    steps: int | None = None,
    seed: int = 0,
    allow_repeats: bool = False,
    augment=None,
) -> tf.data.Dataset:
    """Batches of P classes x K examples each (``P = classes_per_batch``, ``K = samples_per_class``).

    Batch-mined losses (triplet, SupCon) need positives in every batch: a
    random batch of 64 digits holds about 6 of each, a random batch over 1,000
    classes almost none. Here every batch holds exactly P distinct classes and
    K examples of each (rows grouped by class), as in Hermans et al., "In
    Defense of the Triplet Loss", 2017 ("PK batches").

    Classes are visited in rounds: each round is a fresh random order of all C
    classes cut into ``ceil(C / P)`` batches (the last one topped up with
    classes from the round's start), so **every class appears in every round of
    ceil(C / P) consecutive batches**. Within a class, the K examples are
    distinct and uniformly drawn.

    Args:
        x: ``[n, ...]`` examples (images, vectors).
        labels: ``[n]`` integer class ids (any integers; at least P classes).
        classes_per_batch: P, distinct classes per batch (1 <= P <= C).
        samples_per_class: K, examples per class per batch (>= 1).
        steps: number of batches; ``None`` for an endless dataset (then pass
            ``steps_per_epoch`` to ``fit``).
        seed: batches are a pure function of ``(seed, step)``.
        allow_repeats: let a class with fewer than K examples repeat some of
            them (each of its examples appears at least ``K // n_c`` times);
            without it such a class is an error.
        augment: optional batched callable applied to the image batch after
            batching, e.g. ``lambda b: tfc.augment.random_shift_rotate(b, max_shift=2)``.

    Returns:
        ``tf.data.Dataset`` of ``(x_batch [P*K, ...], y_batch [P*K] int32)``.

    Raises:
        ValueError: empty or mismatched inputs, non-integer labels, P larger
            than the number of classes, or a class with fewer than K examples
            without ``allow_repeats`` (the class and its count are named).

    Example:
        >>> split = load_digits()
        >>> ds = class_balanced_batches(split.x_train, split.y_train, 8, 4, steps=100)
        >>> model.fit(ds)  # doctest: +SKIP
    """
    x, labels = _check_examples(x, labels)
    p = _check_int(classes_per_batch, "classes_per_batch", 1)
    k = _check_int(samples_per_class, "samples_per_class", 1)
    steps = None if steps is None else _check_int(steps, "steps", 1)
    index = _ClassIndex(labels)
    num_classes = len(index.classes)
    if p > num_classes:
        raise ValueError(f"`classes_per_batch`={p} exceeds the number of classes in `labels`, {num_classes}.")
    smallest = int(index.counts.argmin())
    if not allow_repeats and index.counts[smallest] < k:
        raise ValueError(
            f"class {index.classes[smallest].item()!r} has {index.counts[smallest]} examples, fewer than "
            f"`samples_per_class`={k}: pass allow_repeats=True or lower samples_per_class."
        )
    # table[c, j]: example j of class c, cycling for classes smaller than the table's width.
    width = max(int(index.counts.max()), k)
    columns = np.arange(width)
    table = index.order[index.starts[:, None] + columns[None, :] % index.counts[:, None]]
    usable = np.maximum(index.counts, k) if allow_repeats else index.counts
    valid = columns[None, :] < usable[:, None]

    table_t, valid_t = tf.constant(table, tf.int64), tf.constant(valid)
    rounds = -(-num_classes // p)

    def batch_indices(step):
        round_, position = step // rounds, step % rounds
        class_keys = tf.random.stateless_uniform([num_classes], _stateless_seed(seed, _CLASS_ORDER, round_))
        order = tf.argsort(class_keys)
        chosen = tf.gather(order, (position * p + tf.range(p, dtype=tf.int64)) % num_classes)
        keys = tf.random.stateless_uniform([p, width], _stateless_seed(seed, _SAMPLES, step))
        keys = tf.where(tf.gather(valid_t, chosen), keys, -1.0)
        picked = tf.math.top_k(keys, k=k, sorted=False).indices
        return tf.reshape(tf.gather(tf.gather(table_t, chosen), picked, batch_dims=1), [p * k])

    x_t, labels_t = tf.constant(x), tf.constant(labels)
    dataset = tf.data.Dataset.counter().map(
        lambda step: _gather((x_t, labels_t), batch_indices(step)), num_parallel_calls=tf.data.AUTOTUNE
    )
    return _finish(dataset, steps, augment, image_paths=[0])


def _gather(arrays, indices):
    return tuple(tf.gather(a, indices) for a in arrays)


def _triplet_sampler(x, labels, batch_size, steps, seed: int):
    """Checks the arguments of the pair and triplet builders.

    Returns ``(x as a tensor, sample, batch_size, steps)`` where
    ``sample(step) -> (anchor, positive, negative)`` gives index vectors of
    length ``batch_size``: anchors uniform over the examples whose class has
    at least two members, the positive uniform over the anchor's class minus
    the anchor, the negative uniform over the examples of every other class.
    """
    x, labels = _check_examples(x, labels)
    batch_size = _check_int(batch_size, "batch_size", 1)
    steps = None if steps is None else _check_int(steps, "steps", 1)
    index = _ClassIndex(labels)
    if len(index.classes) < 2:
        raise ValueError(f"`labels` must hold at least 2 classes to make negatives, got {len(index.classes)}.")
    anchors = np.flatnonzero(index.counts[index.inverse] >= 2)
    if len(anchors) == 0:
        raise ValueError("`labels` has no class with 2 or more examples: there are no positive pairs.")
    n = len(labels)
    anchors_t = tf.constant(anchors, tf.int64)
    order_t = tf.constant(index.order, tf.int64)
    klass_t = tf.constant(index.inverse, tf.int64)
    starts_t, counts_t = tf.constant(index.starts, tf.int64), tf.constant(index.counts, tf.int64)
    rank_t = tf.constant(index.rank, tf.int64)

    def draw(u, size):
        # floor(u * size) with u in [0, 1) from float64: an int in [0, size).
        return tf.minimum(tf.cast(tf.floor(u * tf.cast(size, tf.float64)), tf.int64), size - 1)

    def sample(step):
        u = tf.random.stateless_uniform([3, batch_size], _stateless_seed(seed, _PAIRS, step), dtype=tf.float64)
        anchor = tf.gather(anchors_t, draw(u[0], len(anchors)))
        klass = tf.gather(klass_t, anchor)
        start, count = tf.gather(starts_t, klass), tf.gather(counts_t, klass)
        j = draw(u[1], count - 1)
        j = j + tf.cast(j >= tf.gather(rank_t, anchor), tf.int64)  # skip the anchor itself
        positive = tf.gather(order_t, start + j)
        j = draw(u[2], n - count)
        j = j + tf.where(j >= start, count, tf.zeros_like(count))  # skip the anchor's class block
        negative = tf.gather(order_t, j)
        return anchor, positive, negative

    return tf.constant(x), sample, batch_size, steps


def pair_dataset(
    x,
    labels,
    batch_size: int,
    steps: int | None = None,
    seed: int = 0,
    positive_fraction: float = 0.5,
    augment=None,
) -> tf.data.Dataset:
    """Batches of labelled pairs ``((x1, x2), y)`` with ``y = 1`` for same-class pairs, else 0.

    For :class:`tfcontrast.models.SiameseNetwork` with
    :class:`tfcontrast.losses.ContrastiveLoss`. Each batch holds exactly
    ``round(batch_size * positive_fraction)`` positive pairs at random
    positions. ``x1`` is uniform over the examples whose class has >= 2
    members; a positive partner is another example of its class (never
    itself), a negative partner is uniform over every other class.

    Args:
        x: ``[n, ...]`` examples.
        labels: ``[n]`` integer class ids (>= 2 classes, one with >= 2 examples).
        batch_size: pairs per batch.
        steps: number of batches; ``None`` for an endless dataset.
        seed: batches are a pure function of ``(seed, step)``.
        positive_fraction: share of positive pairs per batch, in [0, 1].
        augment: optional batched callable applied to ``x1`` and ``x2`` independently.

    Returns:
        ``tf.data.Dataset`` of ``((x1 [B, ...], x2 [B, ...]), y [B] float32)``.

    Raises:
        ValueError: empty or mismatched inputs, non-integer labels, fewer than
            two classes or no class with two examples, bad ``batch_size`` /
            ``positive_fraction``.
    """
    fraction = float(positive_fraction) if isinstance(positive_fraction, (int, float)) else -1.0
    if not 0.0 <= fraction <= 1.0 or isinstance(positive_fraction, bool):
        raise ValueError(f"`positive_fraction` must lie in [0, 1], got {positive_fraction!r}.")
    x_t, sample, batch_size, steps = _triplet_sampler(x, labels, batch_size, steps, seed)
    num_positive = int(round(batch_size * fraction))

    def pairs(step):
        anchor, positive, negative = sample(step)
        keys = tf.random.stateless_uniform([batch_size], _stateless_seed(seed, _PAIR_LABELS, step))
        is_positive = tf.argsort(keys) < num_positive  # exactly num_positive at random positions
        partner = tf.where(is_positive, positive, negative)
        return (tf.gather(x_t, anchor), tf.gather(x_t, partner)), tf.cast(is_positive, tf.float32)

    dataset = tf.data.Dataset.counter().map(pairs, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(dataset, steps, augment, image_paths=[0, 1])


def triplet_dataset(
    x,
    labels,
    batch_size: int,
    steps: int | None = None,
    seed: int = 0,
    augment=None,
) -> tf.data.Dataset:
    """Batches of triplets ``((anchor, positive, negative),)`` for :class:`tfcontrast.models.SiameseNetwork`.

    The anchor is uniform over the examples whose class has >= 2 members, the
    positive another example of its class, the negative uniform over every
    other class. Each element is a 1-tuple holding the triplet, so that Keras
    reads the triplet as the model's input ``x`` (a bare 3-tuple would be read
    as ``(x, y, sample_weight)``).

    Args:
        x: ``[n, ...]`` examples.
        labels: ``[n]`` integer class ids (>= 2 classes, one with >= 2 examples).
        batch_size: triplets per batch.
        steps: number of batches; ``None`` for an endless dataset.
        seed: batches are a pure function of ``(seed, step)``.
        augment: optional batched callable applied to each of the three image batches.

    Returns:
        ``tf.data.Dataset`` of ``((anchor [B, ...], positive [B, ...], negative [B, ...]),)``.
    """
    x_t, sample, batch_size, steps = _triplet_sampler(x, labels, batch_size, steps, seed)
    dataset = tf.data.Dataset.counter().map(
        lambda step: (tuple(tf.gather(x_t, i) for i in sample(step)),), num_parallel_calls=tf.data.AUTOTUNE
    )
    return _finish(dataset, steps, augment, image_paths=[0, 1, 2])


# --------------------------------------------------------------------------
# Few labels: a stratified labelled subset
# --------------------------------------------------------------------------


def labelled_subset(
    x, y, per_class: int | None = None, fraction: float | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stratified, reproducible labelled subset of ``(x, y)``: the few labels of semi-supervised learning.

    Give exactly one of ``per_class`` (k examples of every class, e.g. 1, 2,
    5 or 10 labels per class) or ``fraction`` (``max(1, floor(f n_c + 1/2))``
    examples of class c with n_c examples, e.g. 0.01 for the "1% of the
    labels" of SimCLRv2: Chen, Kornblith, Swersky, Norouzi and Hinton, "Big
    Self-Supervised Models are Strong Semi-Supervised Learners", NeurIPS 2020).
    Every class of ``y`` gets exactly that many examples, drawn uniformly
    without replacement.

    The draw is a pure function of ``(y, seed)``: each class's examples are put
    in a random order by ``numpy.random.default_rng(seed)`` (classes in
    ascending order) and the first k are kept. So one seed gives nested
    subsets (the 1-per-class subset lies inside the 2-per-class one) and
    another seed gives another subset. Draw from the training split only:
    the subset is then disjoint from the test split.

    Args:
        x: ``[n, ...]`` examples (the unlabelled pool).
        y: ``[n]`` integer class ids.
        per_class: examples per class, an int >= 1.
        fraction: share of each class, in (0, 1].
        seed: the seed of the draw.

    Returns:
        ``(x[indices], y[indices], indices)`` with ``indices`` int64, ascending.

    Raises:
        ValueError: both or neither of ``per_class`` / ``fraction``, a bad value,
            ``x`` and ``y`` of different lengths, or a class with fewer examples
            than asked for (the class and its count are named).

    Example:
        >>> split = load_digits()
        >>> x, y, indices = labelled_subset(split.x_train, split.y_train, per_class=1, seed=0)
        >>> x.shape, sorted(y.tolist()) == list(range(10))
        ((10, 8, 8, 1), True)
    """
    x, labels = _check_examples(x, y)
    if (per_class is None) == (fraction is None):
        raise ValueError(f"give exactly one of `per_class` and `fraction`, got per_class={per_class!r}, fraction={fraction!r}.")
    classes, counts = np.unique(labels, return_counts=True)
    if per_class is not None:
        wanted = np.full(len(classes), _check_int(per_class, "per_class", 1))
    else:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0.0 < fraction <= 1.0:
            raise ValueError(f"`fraction` must lie in (0, 1], got {fraction!r}.")
        wanted = np.maximum(1, np.floor(float(fraction) * counts + 0.5).astype(np.int64))
    short = wanted > counts
    if short.any():
        c = int(np.argmax(short))
        raise ValueError(
            f"class {classes[c].item()!r} has {counts[c]} examples but the subset asks for {wanted[c]} per class "
            f"({int(short.sum())} class(es) too small): ask for fewer."
        )
    rng = np.random.default_rng(_check_int(seed, "seed", 0))
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, wanted)]
    indices = np.sort(np.concatenate(chosen)).astype(np.int64)
    return x[indices], labels[indices], indices


def indexed_dataset(
    x,
    batch_size: int,
    augmentation=None,
    seed: int | None = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches that carry each image's index: ``(images, index)``, or ``((view_1, view_2), index)``.

    ``index[i]`` is the row of image i in ``x`` (int64): what a method with one
    memory entry per training image (PIRL's memory bank,
    :class:`tfcontrast.models.PIRL`) needs to read and update that entry. The
    pipeline is :func:`tfcontrast.augment.two_view_dataset`'s (shuffle,
    reshuffled every pass -> [repeat] -> batch -> views -> prefetch), and
    with a :class:`~tfcontrast.augment.TwoViewAugmentation` its views are the
    ones ``two_view_dataset`` draws for the same ``seed``. With ``repeat`` a
    batch may straddle two passes and hold one image twice (PIRL's memory
    update keeps the last).

    Args:
        x: ``[n, h, w, c]`` float images in [0, 1] (or a ``tf.data.Dataset`` of
            single images: the index is then the position in it).
        batch_size: images per batch (> 0).
        augmentation: ``None`` (plain images), a two-view recipe
            (:class:`tfcontrast.augment.TwoViewAugmentation`) or any callable
            ``images -> (view_1, view_2)``.
        seed: seed of the shuffle and the views.
        shuffle, drop_remainder, repeat: as in ``two_view_dataset``.

    Example:
        >>> images = np.random.default_rng(0).random((10, 8, 8, 1)).astype("float32")
        >>> batch, index = next(iter(indexed_dataset(images, 4)))
        >>> bool(np.array_equal(batch.numpy(), images[index.numpy()]))
        True
    """
    if augmentation is not None and not callable(augmentation):
        raise ValueError(f"`augmentation` must be None or a callable images -> (view_1, view_2), got {augmentation!r}.")
    stateless = isinstance(augmentation, augment_lib.TwoViewAugmentation)
    return augment_lib.augmented_dataset(
        x, batch_size, augmentation, stateless, seed, shuffle, drop_remainder, repeat, indexed=True
    )


# The docstring corpus lives with the text code; re-exported as tfcontrast.data.load_docstrings.
from tfcontrast.text.docstrings import load_docstrings  # noqa: E402,F401
