"""Keras callbacks that watch a representation while it trains.

Both callbacks compute their numbers at the end of an epoch, on data they are
given, with the encoder in inference mode, and write them into the epoch's
``logs``. Keras appends its ``History`` and progress bar after the user's
callbacks, so the values appear in ``model.fit(...).history``, on the progress
bar, and in :class:`keras.callbacks.TensorBoard` / ``CSVLogger`` when those are
listed *after* the monitor. Like Keras' ``validation_freq``, a value is only
logged on the epochs where it is computed: the first epoch (so that loggers
that fix their columns at the first epoch, like ``CSVLogger``, see the key),
every ``every``-th epoch, and the last epoch.

* :class:`KNNMonitor`: k-nearest-neighbour accuracy of a labelled query set
  against a labelled reference set (Wu et al., "Unsupervised Feature Learning
  via Non-Parametric Instance Discrimination", CVPR 2018, the standard monitor
  of self-supervised training): an exact cosine :class:`tfcontrast.index.Index`
  and :func:`tfcontrast.index.knn_accuracy`, the ``k`` nearest references
  voting with weight ``exp(-d / T)``, ``d = 1 - cos``.
* :class:`CollapseMonitor`: the collapse indicators of
  :mod:`tfcontrast.models.ssl.collapse` on a fixed set of images (per-dimension
  std of the normalised embeddings, effective rank) and, for a model with a
  projector and a linear predictor (DirectPred), the alignment of the
  predictor with the eigenbasis of the projections' correlation matrix
  (Tian, Chen and Ganguli, ICML 2021, section 5).
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfcontrast.index import Index, SearchIndex, knn_accuracy
from tfcontrast.models.ssl import collapse
from tfcontrast.probe import class_labels, embed


def _check_every(every) -> int:
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"`every` must be a positive int, got {every!r}.")
    return every


def _check_images(images, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(f"`{name}` must be a non-empty batch of examples, got shape {images.shape}.")
    return images


def _encoder_of(model):
    """``model.encoder`` (the self-supervised models' backbone), else the model itself."""
    encoder = getattr(model, "encoder", None)
    return model if encoder is None else encoder


class _EpochMonitor(keras.callbacks.Callback):
    """Runs :meth:`measure` at the first, every ``every``-th and the last epoch; writes its dict into logs."""

    def __init__(self, every: int, batch_size: int):
        super().__init__()
        self.every = _check_every(every)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
        self.batch_size = batch_size

    def due(self, epoch: int) -> bool:
        last = (self.params or {}).get("epochs")
        return epoch == 0 or (epoch + 1) % self.every == 0 or (last is not None and epoch + 1 == last)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self.due(epoch):
            return
        logs.update({name: float(value) for name, value in self.measure().items()})

    def measure(self) -> dict:
        raise NotImplementedError


class KNNMonitor(_EpochMonitor):
    """Logs the kNN accuracy of ``query`` images against labelled ``reference`` images.

    Both sets are embedded with ``model.encoder`` (or the model itself when it
    has no ``encoder`` attribute) in inference mode and the references put in
    an exact cosine :class:`tfcontrast.index.Index`. For each query, the ``k``
    nearest references vote for their labels with weights
    ``exp(-(1 - cos) / temperature)`` (:func:`tfcontrast.index.knn_accuracy`);
    the query is correct when the heaviest class is its label. The accuracy is
    logged as ``name`` (default ``"knn_accuracy"``).

    Args:
        reference_images, reference_labels: the labelled memory bank (e.g. train
            images); labels are class ids >= 0.
        query_images, query_labels: the images to classify (e.g. a validation split).
        k: neighbours per query (>= 1).
        temperature: T > 0 of the vote weights (Wu et al.: 0.07).
        every: compute every ``every`` epochs (and at the first and last epochs).
        batch_size: images per forward pass when embedding.
        name: the key written into the logs.
        index_factory: a callable returning an *empty*
            :class:`~tfcontrast.index.SearchIndex` to hold the references at
            each measurement (e.g. ``lambda: Index("cosine", "hnsw")``);
            default an exact cosine :class:`~tfcontrast.index.Index`.

    Raises:
        ValueError: empty sets, labels that do not match the images, bad ``k``/``every``.

    Example:
        >>> monitor = KNNMonitor(x_train, y_train, x_val, y_val, every=5)  # doctest: +SKIP
        >>> history = model.fit(views, epochs=50, callbacks=[monitor])     # doctest: +SKIP
        >>> history.history["knn_accuracy"]                                # doctest: +SKIP
    """

    def __init__(
        self,
        reference_images,
        reference_labels,
        query_images,
        query_labels,
        k: int = 20,
        temperature: float = 0.07,
        every: int = 1,
        batch_size: int = 256,
        name: str = "knn_accuracy",
        index_factory: Callable[[], SearchIndex] | None = None,
    ):
        super().__init__(every, batch_size)
        if index_factory is not None and not callable(index_factory):
            raise ValueError(f"`index_factory` must be a callable returning an empty SearchIndex, got {index_factory!r}.")
        self.index_factory = index_factory
        self.reference_images = _check_images(reference_images, "reference_images")
        self.reference_labels = class_labels(reference_labels, len(self.reference_images), "reference_labels")
        self.query_images = _check_images(query_images, "query_images")
        self.query_labels = class_labels(query_labels, len(self.query_images), "query_labels")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"`k` must be a positive int, got {k!r}.")
        self.k = k
        if isinstance(temperature, bool) or not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"`temperature` must be a finite number > 0, got {temperature!r}.")
        self.temperature = float(temperature)
        for labels, name_ in ((self.reference_labels, "reference_labels"), (self.query_labels, "query_labels")):
            if labels.min() < 0:
                raise ValueError(f"`{name_}` must be class ids >= 0, got {labels.min()}.")
        self.name = str(name)

    def measure(self) -> dict:
        encoder = _encoder_of(self.model)
        references = embed(encoder, self.reference_images, self.batch_size)
        queries = embed(encoder, self.query_images, self.batch_size)
        index = Index(metric="cosine", backend="exact") if self.index_factory is None else self.index_factory()
        index.add(references, labels=self.reference_labels)
        return {self.name: knn_accuracy(index, queries, self.query_labels, self.k, temperature=self.temperature)}


class CollapseMonitor(_EpochMonitor):
    """Logs collapse indicators of the representation of a fixed set of images.

    Every ``every`` epochs the images are embedded with ``model.encoder`` (or
    the model) in inference mode and these keys are written into the logs
    (``prefix`` is prepended to each):

    * ``embedding_std``: mean over dimensions of the per-dimension std of the
      L2-normalised embeddings (0 at complete collapse, about ``1/sqrt(d)``
      when spread over the sphere): :func:`collapse.projection_std`;
    * ``embedding_erank``: effective rank of the centred embeddings (1 to d):
      :func:`collapse.effective_rank`;
    * ``projection_std``, ``projection_erank``: the same for ``model.projector``'s
      outputs, when the model has a projector;
    * ``predictor_alignment``: when the model also has a linear ``d x d``
      predictor (DirectPred; any predictor exposing a square ``kernel``), with
      ``F = E[f f^T]`` the correlation of these projections and ``u_j`` its
      eigenvectors, ``sum_j (u_j^T W u_j)^2 / ||W||_F^2`` for the symmetric part
      W of the predictor kernel. It is 1 when W is diagonal in F's eigenbasis
      (the alignment DirectPred builds in and BYOL's trained linear predictor
      learns) and about ``1/d`` for an unrelated random W. BYOL's MLP predictor
      has no single matrix, so no alignment is logged for it.

    Args:
        images: the images to embed (e.g. a few hundred training images).
        every: compute every ``every`` epochs (and at the first and last epochs).
        batch_size: images per forward pass.
        prefix: prepended to every key (e.g. ``"val_"``).
    """

    def __init__(self, images, every: int = 1, batch_size: int = 256, prefix: str = ""):
        super().__init__(every, batch_size)
        self.images = _check_images(images, "images")
        self.prefix = str(prefix)

    def measure(self) -> dict:
        model = self.model
        representations = embed(_encoder_of(model), self.images, self.batch_size)
        out = {
            "embedding_std": collapse.projection_std(tf.constant(representations)),
            "embedding_erank": collapse.effective_rank(tf.constant(representations)),
        }
        projector = getattr(model, "projector", None)
        if projector is not None:
            projections = embed(projector, representations, self.batch_size)
            out["projection_std"] = collapse.projection_std(tf.constant(projections))
            out["projection_erank"] = collapse.effective_rank(tf.constant(projections))
            kernel = _linear_kernel(getattr(model, "predictor", None), projections.shape[1])
            if kernel is not None:
                correlation = projections.T.astype(np.float64) @ projections / len(projections)
                out["predictor_alignment"] = eigenbasis_alignment(kernel, correlation)
        return {self.prefix + name: float(value) for name, value in out.items()}


def _linear_kernel(predictor, dim: int) -> np.ndarray | None:
    """The ``dim x dim`` kernel of a bias-free linear predictor, else None."""
    if predictor is None or isinstance(predictor, keras.Sequential):
        return None
    kernel = getattr(predictor, "kernel", None)
    if kernel is None or getattr(predictor, "bias", None) is not None:
        return None
    kernel = keras.ops.convert_to_numpy(kernel)
    if kernel.shape != (dim, dim):
        return None
    return kernel.astype(np.float64)


def eigenbasis_alignment(matrix, correlation) -> float:
    """``sum_j (u_j^T W u_j)^2 / ||W||_F^2``: the share of W's energy on the diagonal of F's eigenbasis.

    ``W`` is the symmetric part of ``matrix``; ``u_j`` are the eigenvectors of
    the symmetric ``correlation``. 1 when W and F share eigenvectors; 0 for
    W = 0.
    """
    w = np.asarray(matrix, dtype=np.float64)
    f = np.asarray(correlation, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or f.shape != w.shape:
        raise ValueError(f"`matrix` and `correlation` must be the same square shape, got {w.shape} and {f.shape}.")
    w = 0.5 * (w + w.T)
    _, u = np.linalg.eigh(0.5 * (f + f.T))
    diagonal = np.einsum("ij,ik,kj->j", u, w, u)
    energy = float(np.sum(w * w))
    return float(np.sum(diagonal**2) / energy) if energy > 0 else 0.0
