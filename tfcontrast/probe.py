"""Frozen-encoder evaluation: embed a data set, then fit a linear probe.

The standard way to judge a self-supervised representation (Chen et al.,
SimCLR, ICML 2020, section 4; Kolesnikov, Zhai and Beyer, "Revisiting
Self-Supervised Visual Representation Learning", CVPR 2019) is to freeze the
encoder and train only a linear classifier on its features:

* :func:`embed`: the encoder's features for a NumPy array of images, batch by
  batch, in inference mode (BatchNorm uses its moving statistics);
  :func:`inference_graph` makes it run one compiled graph instead of eager ops;
* :func:`linear_probe_accuracy`: multinomial logistic regression
  (scikit-learn ``LogisticRegression``, L-BFGS) on features standardised with
  the *training* mean and std, scored by accuracy on the test features;
  :func:`fit_linear_probe` fits it once (a :class:`LinearProbe`) to score
  several query sets.

The probe minimises the L2-regularised cross-entropy

    (1/2) ||W||^2 + C sum_i -log softmax(W x_i + b)[y_i],   x = (f - mu) / sigma,

with ``C = 1.0`` and at most ``max_iter = 1000`` L-BFGS iterations by
default. L-BFGS from a zero start is deterministic: the same features give
the same accuracy on every run.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf


def inference_graph(encoder: keras.Model, input_shape=None, dtype: str = "float32"):
    """``encoder(x, training=False)`` as one TensorFlow graph, traced once for every batch size.

    Called on a batch, a Keras model runs eagerly, op by op; this callable
    runs the same layers as a compiled graph (``tf.function`` over
    ``[None, *input_shape]`` inputs, no XLA), which is faster for many
    batches. Pass it to :func:`embed` in place of the encoder. The outputs
    equal the eager ones up to float32 round-off (the graph optimiser may fuse
    ops, e.g. a convolution with its bias and activation).

    Args:
        encoder: a Keras model (or layer) taking one input tensor.
        input_shape: one example's shape; default the model's input shape.
        dtype: the input dtype.

    Raises:
        ValueError: no ``input_shape`` given and the model has no known single input.
    """
    if input_shape is None:
        inputs = getattr(encoder, "inputs", None)
        if not inputs or len(inputs) != 1:
            raise ValueError("`encoder` has no known single input: pass `input_shape`.")
        input_shape = tuple(inputs[0].shape[1:])
    spec = tf.TensorSpec([None, *input_shape], tf.as_dtype(dtype))
    graph = tf.function(lambda x: encoder(x, training=False), input_signature=[spec], jit_compile=False)

    def run(images, training=False):
        if training:
            raise ValueError("an inference graph runs the encoder with training=False only.")
        return graph(images)

    return run


def embed(encoder: keras.Model, images, batch_size: int = 256) -> np.ndarray:
    """The encoder's outputs for ``images`` (inference mode), as a float32 ``[n, features]`` array.

    Args:
        encoder: a Keras model (or any callable taking ``(batch, training=False)``).
        images: array-like ``[n, ...]`` matching the encoder's input.
        batch_size: rows per forward pass (>= 1).

    Raises:
        ValueError: ``batch_size`` not a positive int, no images, or an encoder
            output that is not ``[batch, features]``.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    images = np.asarray(images)
    if images.ndim < 1 or len(images) == 0:
        raise ValueError(f"`images` must hold at least one example, got shape {images.shape}.")
    if images.dtype.kind in "fiub" and images.dtype != np.float32:
        images = images.astype(np.float32)
    chunks = []
    for start in range(0, len(images), batch_size):
        out = keras.ops.convert_to_numpy(encoder(images[start : start + batch_size], training=False))
        if out.ndim != 2:
            raise ValueError(f"the encoder must output [batch, features], got shape {out.shape}.")
        chunks.append(out.astype(np.float32))
    return np.concatenate(chunks, axis=0)


class LinearProbe:
    """A fitted logistic-regression probe: standardisation statistics + classifier (:func:`fit_linear_probe`).

    Fit once, then score any number of query sets (clean and transformed
    queries of the same features) with :meth:`accuracy`.
    """

    def __init__(self, classifier, mean: np.ndarray, std: np.ndarray):
        self.classifier, self.mean, self.std = classifier, mean, std

    @property
    def dim(self) -> int:
        """Width of the features it reads."""
        return len(self.mean)

    def predict(self, embeddings) -> np.ndarray:
        """Predicted class ids of ``[m, dim]`` features."""
        x = _features(embeddings, "test_embeddings")
        if x.shape[1] != self.dim:
            raise ValueError(
                f"`train_embeddings` and `test_embeddings` must have the same width, got {self.dim} and {x.shape[1]}."
            )
        return self.classifier.predict((x - self.mean) / self.std)

    def accuracy(self, embeddings, labels) -> float:
        """The fraction of rows of ``embeddings`` whose predicted class equals ``labels``."""
        predictions = self.predict(embeddings)
        y = class_labels(labels, len(predictions), "test_labels")
        return float(np.mean(predictions == y))


def fit_linear_probe(train_embeddings, train_labels, C: float = 1.0, max_iter: int = 1000) -> LinearProbe:
    """The probe of :func:`linear_probe_accuracy`, fitted on the train features, to score several query sets.

    Raises:
        ValueError: as :func:`linear_probe_accuracy` for the train arguments.

    Example:
        >>> x = np.array([[0.0], [0.1], [1.0], [1.1]]); y = np.array([0, 0, 1, 1])
        >>> probe = fit_linear_probe(x, y)
        >>> probe.accuracy(x, y), probe.accuracy(x[::-1], y)
        (1.0, 0.0)
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x_train = _features(train_embeddings, "train_embeddings")
    y_train = class_labels(train_labels, len(x_train), "train_labels")
    if len(np.unique(y_train)) < 2:
        raise ValueError("`train_labels` must hold at least two classes.")
    if isinstance(C, bool) or not np.isfinite(C) or C <= 0:
        raise ValueError(f"`C` must be a finite number > 0, got {C!r}.")
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        raise ValueError(f"`max_iter` must be a positive int, got {max_iter!r}.")

    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    classifier = LogisticRegression(C=float(C), max_iter=max_iter, solver="lbfgs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit((x_train - mean) / std, y_train)
    return LinearProbe(classifier, mean, std)


def linear_probe_accuracy(
    train_embeddings,
    train_labels,
    test_embeddings,
    test_labels,
    C: float = 1.0,
    max_iter: int = 1000,
) -> float:
    """Accuracy on the test set of a logistic-regression probe fitted on the train features.

    Features are standardised with the train mean and std (dimensions with
    zero std are left centred, not divided); the classifier is
    ``sklearn.linear_model.LogisticRegression(C=C, max_iter=max_iter,
    solver="lbfgs")``, multinomial over the classes seen in training. To score
    several query sets with one fit, use :func:`fit_linear_probe`.

    Args:
        train_embeddings: ``[n, d]`` features of the labelled training set.
        train_labels: ``[n]`` integer class ids (at least two classes).
        test_embeddings: ``[m, d]`` features to classify.
        test_labels: ``[m]`` integer class ids.
        C: inverse L2 regularisation strength (> 0).
        max_iter: L-BFGS iteration limit (>= 1). If it is reached, the result
            is still returned (scikit-learn's ConvergenceWarning is silenced).

    Returns:
        The fraction of test rows whose predicted class equals the label.

    Raises:
        ValueError: shapes that disagree, non-finite features, fewer than two
            training classes, or a bad ``C`` / ``max_iter``.

    Example:
        >>> x = np.array([[0.0], [0.1], [1.0], [1.1]]); y = np.array([0, 0, 1, 1])
        >>> linear_probe_accuracy(x, y, x, y)
        1.0
    """
    x_test = _features(test_embeddings, "test_embeddings")
    class_labels(test_labels, len(x_test), "test_labels")
    x_train = _features(train_embeddings, "train_embeddings")
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(
            f"`train_embeddings` and `test_embeddings` must have the same width, got "
            f"{x_train.shape[1]} and {x_test.shape[1]}."
        )
    return fit_linear_probe(x_train, train_labels, C=C, max_iter=max_iter).accuracy(x_test, test_labels)


def _features(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"`{name}` must be a non-empty [n, d] array, got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` holds non-finite values (NaN or inf).")
    return x


def class_labels(y, n: int, name: str) -> np.ndarray:
    """``y`` as ``[n]`` integer class ids (``[n, 1]`` and whole-number floats accepted); else ValueError naming ``name``."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"`{name}` must be [n] with n = {n}, got shape {y.shape}.")
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise ValueError(f"`{name}` must be integer class ids, got non-integer values.")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise ValueError(f"`{name}` must be integer class ids, got dtype {y.dtype}.")
    return y
