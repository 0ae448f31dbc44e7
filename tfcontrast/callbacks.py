"""Keras callbacks that watch a representation while it trains.

The two monitors compute their numbers at the end of an epoch, on data they are
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

Two alarms act on what the model logs:

* :class:`CollapseAlarm`: warns once, in words, when the projection std or the
  effective rank the self-supervised models log falls below a fraction of its
  first-epoch value or of its ceiling (``1/sqrt(d)``, ``d``); optionally stops.
* :class:`TerminateOnNonFinite`: Keras' ``TerminateOnNaN`` for every logged
  value (loss, projection std, effective rank...), naming the step: a NaN
  pixel shows as "non-finite loss/representations at step k", not as an
  error of some later operation.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping, Sequence

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


# ------------------------------------------------------------------- alarms


class CollapseWarning(UserWarning):
    """The representation of a self-supervised model is collapsing (:class:`CollapseAlarm`)."""


class CollapseAlarm(keras.callbacks.Callback):
    """Warns once, in words, when a self-supervised representation collapses; optionally stops training.

    It reads the two collapse indicators that the self-supervised models
    (:class:`tfcontrast.models.ssl.base.TwoViewModel`: SimCLR, BYOL, DirectPred,
    SimSiam, ...) log every step (:mod:`tfcontrast.models.ssl.collapse`):

    * ``proj_std``: the per-dimension std of the L2-normalised projections,
      0 at complete collapse, about ``1/sqrt(d)`` (its ceiling) when the d-dim
      projections spread over the sphere;
    * ``erank``: the effective rank of the representations, 1 (every
      representation on one line) to the feature width ``F`` (its ceiling).

    At the end of every epoch each indicator (the epoch's mean) is compared with
    its value at the end of the first epoch (``initial`` when given) and with its
    ceiling. The first time one falls below ``start_fraction`` of its first
    value, or below ``std_floor / sqrt(d)`` (projection std) or ``rank_floor * F``
    (effective rank), the alarm emits one message saying what fell, from what
    to what, what it means and what to try; it never warns again in this
    ``fit``. The message goes to ``out`` (default: a :class:`CollapseWarning`
    through :mod:`warnings`) and stays in :attr:`message`. With ``stop=True``
    training stops at the end of that epoch.

    The defaults were set on digits runs (``tests/test_callbacks.py``): BYOL
    without its predictor (a run that collapses) drops its projection std to
    17% of the first-epoch value, while healthy SimCLR/BYOL/DirectPred runs keep
    it near the ceiling; the effective rank of healthy runs may fall to about
    40% of its random-initialisation value as the representation organises, so
    it alarms only below 25% (or near rank 1).

    Args:
        start_fraction: alarm when an indicator falls below this fraction of its
            first-epoch value, in (0, 1).
        std_floor: alarm when the projection std falls below ``std_floor / sqrt(d)``, in [0, 1).
        rank_floor: alarm when the effective rank falls below ``rank_floor * F``, in [0, 1).
        stop: stop training after the epoch that raised the alarm.
        initial: ``{"proj_std": ..., "erank": ...}`` first-epoch values of a run
            resumed after its first epoch (the ``tfcontrast`` command passes its
            history), so a resumed run alarms as an uninterrupted one would.
        projection_dim, feature_dim: ``d`` and ``F``; default the model's
            ``projection_dim`` and ``feature_dim`` attributes (without them,
            only the first-epoch comparison runs).
        out: callable receiving the message; default ``warnings.warn(message, CollapseWarning)``.

    Raises:
        ValueError: bad fractions; at the first epoch's end, a model that logs
            neither ``proj_std`` nor ``erank`` (the message lists what it logs).

    Example:
        >>> alarm = CollapseAlarm(stop=True)                          # doctest: +SKIP
        >>> model.fit(views, epochs=50, callbacks=[alarm])            # doctest: +SKIP
        >>> alarm.message                                             # doctest: +SKIP
        'collapse alarm at epoch 12: the projection std fell to 0.036, ...'
    """

    STD_KEY = "proj_std"
    RANK_KEY = "erank"

    def __init__(
        self,
        start_fraction: float = 0.25,
        std_floor: float = 0.1,
        rank_floor: float = 0.02,
        stop: bool = False,
        initial: Mapping[str, float] | None = None,
        projection_dim: int | None = None,
        feature_dim: int | None = None,
        out: Callable[[str], None] | None = None,
    ):
        super().__init__()
        self.start_fraction = _fraction(start_fraction, "start_fraction", open_low=True)
        self.std_floor = _fraction(std_floor, "std_floor")
        self.rank_floor = _fraction(rank_floor, "rank_floor")
        self.stop = bool(stop)
        self.initial = {k: float(v) for k, v in (initial or {}).items() if v is not None and math.isfinite(v)}
        unknown = set(self.initial) - {self.STD_KEY, self.RANK_KEY}
        if unknown:
            raise ValueError(f"`initial` takes the keys {self.STD_KEY!r} and {self.RANK_KEY!r}, got {sorted(unknown)}.")
        for value, name in ((projection_dim, "projection_dim"), (feature_dim, "feature_dim")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be a positive int or None, got {value!r}.")
        self.projection_dim, self.feature_dim = projection_dim, feature_dim
        self.out = out
        self.message: str | None = None
        self.epoch: int | None = None

    def on_train_begin(self, logs=None):
        self.message, self.epoch = None, None
        self._start = dict(self.initial)

    @classmethod
    def replay(cls, history: Mapping[str, Sequence[float]], **kwargs) -> "CollapseAlarm":
        """The alarm run over the per-epoch ``history`` of a training (``History.history``, or the checkpoint's).

        Gives the same :attr:`message` and :attr:`epoch` as the live alarm over
        the same epochs, also for a run trained in several sessions (the
        ``tfcontrast`` command writes it into ``summary.json``). A history
        without ``proj_std`` and ``erank`` (a supervised method) gives no message.
        ``kwargs``: the constructor's (``projection_dim``, ``feature_dim``, ...).
        """
        alarm = cls(out=lambda message: None, **kwargs)
        alarm.on_train_begin()
        keys = [k for k in (cls.STD_KEY, cls.RANK_KEY) if history.get(k)]
        for epoch in range(max((len(history[k]) for k in keys), default=0)):
            alarm.on_epoch_end(epoch, {k: history[k][epoch] for k in keys if epoch < len(history[k])})
            if alarm.message is not None:
                break
        return alarm

    # Where healthy runs sit, as a fraction of the ceiling (digits runs of every packaged method: projection
    # std 0.5-0.99 x 1/sqrt(d), effective rank 0.34-0.7 x F); only drawn (bands), never alarmed on.
    HEALTHY_FROM = {"proj_std": 0.4, "erank": 0.1}

    def bands(self, projection_dim: int | None = None, feature_dim: int | None = None) -> dict[str, tuple[float, float, float]]:
        """``{key: (alarm floor, healthy from, ceiling)}`` of the indicators whose ceiling is known, for plots.

        ``proj_std``: ceiling ``1/sqrt(d)``; ``erank``: ceiling ``F``. Dims default to the alarm's.
        """
        d, f = projection_dim or self.projection_dim, feature_dim or self.feature_dim
        out = {}
        if d:
            ceiling = 1.0 / math.sqrt(d)
            out[self.STD_KEY] = (self.std_floor * ceiling, self.HEALTHY_FROM[self.STD_KEY] * ceiling, ceiling)
        if f:
            out[self.RANK_KEY] = (self.rank_floor * f, self.HEALTHY_FROM[self.RANK_KEY] * f, float(f))
        return out

    def ceilings(self) -> dict[str, tuple[float, str]]:
        """``{key: (floor value, how it was set)}`` from the ceilings that are known."""
        d = self.projection_dim or _positive_attribute(self.model, "projection_dim")
        f = self.feature_dim or _positive_attribute(self.model, "feature_dim")
        out = {}
        if d:
            out[self.STD_KEY] = (self.std_floor / math.sqrt(d), f"{self.std_floor:g} x its ceiling 1/sqrt({d}) = {1 / math.sqrt(d):.3g}")
        if f:
            out[self.RANK_KEY] = (self.rank_floor * f, f"{self.rank_floor:g} x its ceiling {f} (the feature width)")
        return out

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        values = {k: float(logs[k]) for k in (self.STD_KEY, self.RANK_KEY) if k in logs}
        if not values:
            raise ValueError(
                f"CollapseAlarm reads the logged {self.STD_KEY!r} and {self.RANK_KEY!r} of the self-supervised models "
                f"(collapse_metrics=True); this model logs {sorted(logs)}. Use CollapseMonitor to measure them on images."
            )
        for key, value in values.items():
            self._start.setdefault(key, value)
        if self.message is not None:
            return
        floors = self.ceilings()
        for key, value in values.items():
            if not math.isfinite(value):
                continue  # TerminateOnNonFinite's business
            start = self._start[key]
            reason = None
            if epoch > 0 or key in self.initial:
                if value < self.start_fraction * start:
                    reason = f"below {self.start_fraction:.0%} of its first-epoch value {start:.4g}"
            if reason is None and key in floors and value < floors[key][0]:
                reason = f"below {floors[key][1]}"
            if reason is not None:
                self._alarm(epoch, key, value, reason)
                return

    def _alarm(self, epoch: int, key: str, value: float, reason: str) -> None:
        what = {
            self.STD_KEY: "the projection std (spread of the normalised projections)",
            self.RANK_KEY: "the effective rank of the representations",
        }[key]
        meaning = {
            self.STD_KEY: "the projections are collapsing towards one point, so every input gets nearly the same embedding",
            self.RANK_KEY: "the representations are collapsing onto a few directions (dimensional collapse)",
        }[key]
        self.epoch = epoch + 1
        self.message = (
            f"collapse alarm at epoch {epoch + 1}: {what} fell to {value:.4g}, {reason}: {meaning}. "
            "Nearest neighbours and probes on such embeddings are poor. Try a lower learning rate, a larger "
            "tau_base (momentum methods), a stronger augmentation or a larger batch"
            + ("; training stops here (stop=True)." if self.stop else ".")
        )
        if self.out is None:
            warnings.warn(self.message, CollapseWarning, stacklevel=2)
        else:
            self.out(self.message)
        if self.stop and self.model is not None:
            self.model.stop_training = True


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or metric (:class:`TerminateOnNonFinite` with ``raise_error=True``)."""


class TerminateOnNonFinite(keras.callbacks.TerminateOnNaN):
    """Stops training at the first step whose loss, logged metrics or weights are not finite, naming the step.

    Keras' ``TerminateOnNaN`` looks at the loss only and reports the batch of the
    epoch. This one checks, after every step, every logged value (a
    self-supervised model logs ``loss``, ``proj_std`` and ``erank``) and, with
    ``check_weights`` (default), every weight of the model (one compiled
    reduction per step): a NaN can hide from the loss, e.g. a NaN pixel turns a
    convolution's weights NaN, BatchNorm and ReLU then output zeros, and the
    loss of the collapsed model stays finite. Steps are counted across epochs
    (``model.optimizer.iterations``); the message says what happened::

        non-finite loss/representations at step 37 (epoch 1, batch 37): loss nan, proj_std nan, erank nan. ...
        non-finite weights after step 5 (epoch 1, batch 5): conv2d/kernel, batch_normalization/gamma. ...

    The models keep such a step from failing elsewhere first (DirectPred's
    eigendecomposition and the effective rank return NaN for a non-finite
    matrix instead of raising "Self-adjoint eigen decomposition was not
    successful", :mod:`tfcontrast.linalg`), so this callback is what stops the run.

    Args:
        raise_error: ``False`` (default): print the message (``out``) and stop
            gracefully (``model.stop_training``; Keras still ends the epoch and
            calls every callback's ``on_epoch_end``). ``True``: raise
            :class:`NonFiniteError` at once, so no later callback (a checkpoint)
            sees the non-finite weights.
        check_weights: ``"step"`` (default): check every weight after every
            step; ``"epoch"``: at the end of every epoch only (list this callback
            before a checkpoint callback: it runs first); ``"never"``.
        out: callable receiving the message when not raising; default ``print``.

    Attributes:
        message: the message, once stopped (``None`` before).
        step: the step (1-based, counted over the whole ``fit``) after which values were not finite.

    Example:
        >>> stopper = TerminateOnNonFinite()                       # doctest: +SKIP
        >>> model.fit(views, epochs=10, callbacks=[stopper])       # doctest: +SKIP
        >>> stopper.step, stopper.message                          # doctest: +SKIP
    """

    WEIGHT_CHECKS = ("step", "epoch", "never")

    def __init__(self, raise_error: bool = False, check_weights: str = "step", out: Callable[[str], None] | None = None):
        super().__init__(raise_error=raise_error)
        if check_weights not in self.WEIGHT_CHECKS:
            raise ValueError(f"`check_weights` must be one of {self.WEIGHT_CHECKS}, got {check_weights!r}.")
        self.check_weights = check_weights
        self.out = out if out is not None else print
        self.message: str | None = None
        self.step: int | None = None
        self._epoch = 0
        self._finite_weights = None

    def on_train_begin(self, logs=None):
        self.message, self.step = None, None
        variables = [v for v in self.model.weights if "float" in str(v.dtype)] if self.check_weights != "never" else []
        self._names = [getattr(v, "path", None) or v.name for v in variables]
        if variables:
            self._finite_weights = tf.function(
                lambda: tf.stack([tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))) for v in variables])
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        self._check(f"step {{}} (epoch {self._epoch + 1}, batch {batch + 1})", logs, self.check_weights == "step")

    def on_epoch_end(self, epoch, logs=None):
        if self.check_weights == "epoch":
            self._check(f"step {{}} (end of epoch {epoch + 1})", {}, True)

    def _check(self, where: str, logs, weights: bool) -> None:
        logs = logs or {}
        values = {}
        for key, value in logs.items():
            try:
                values[key] = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                continue
        shown = ", ".join(f"{k} {v.ravel()[0]:.4g}" if v.size == 1 else k for k, v in values.items())
        bad_logs = not all(np.all(np.isfinite(v)) for v in values.values())
        finite = None
        if not bad_logs and weights and self._finite_weights is not None:
            finite = self._finite_weights().numpy()
            if np.all(finite):
                return
        elif not bad_logs:
            return
        self.step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        where = where.format(self.step)
        if bad_logs:
            what = f"non-finite loss/representations at {where}: {shown}."
        else:
            bad = list(dict.fromkeys(name for name, ok in zip(self._names, finite) if not ok))
            listed = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            logged = f"logged: {shown}; " if shown else ""
            what = f"non-finite weights after {where}: {listed} ({logged}BatchNorm and ReLU can hide a NaN from the loss)."
        self.message = (
            f"{what} The model is no longer usable from this step on. Look for NaN or inf in the inputs (one NaN "
            "pixel turns the weights NaN), or lower the learning rate."
        )
        if self.raise_error:
            raise NonFiniteError(self.message)
        self.out(self.message)
        self.model.stop_training = True


def _fraction(value, name: str, open_low: bool = False) -> float:
    low_ok = (lambda v: v > 0) if open_low else (lambda v: v >= 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low_ok(value) and value < 1):
        raise ValueError(f"`{name}` must be a number in {'(' if open_low else '['}0, 1), got {value!r}.")
    return float(value)


def _positive_attribute(model, name: str) -> int | None:
    value = getattr(model, name, None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
