"""Triplet margin loss with online mining over the batch.

Schroff, Kalenichenko and Philbin, "FaceNet", CVPR 2015 (semi-hard mining);
Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for Person
Re-Identification", 2017 (batch-hard, batch-all, soft margin).

For an anchor a, a positive p (same label, p != a) and a negative n (other
label), with distances d(., .):

    hinge:  l(a, p, n) = max(d(a, p) - d(a, n) + margin, 0)
    soft:   l(a, p, n) = log(1 + exp(d(a, p) - d(a, n)))      (margin unused)

Mining rules (the batch gives every triplet; which ones count):

* ``"semi-hard"``: for every (anchor, positive) pair, the negative is the
  closest one *farther* than the positive; if there is none, the farthest
  negative. Mean over all (anchor, positive) pairs.
* ``"hard"``: per anchor, its farthest positive and closest negative. Mean
  over the anchors that have at least one positive and one negative.
* ``"all"``: every valid triplet; mean over the triplets whose loss is > 0.

A batch with no positive pair or no negative pair gives 0 with a zero
gradient. Under a ``tf.distribute`` strategy the positives and negatives of a
replica's anchors come from the *global* batch (gathered across replicas) and
the returned value is the replica's share of the global mean (see
:mod:`tfcontrast.distribute`).

``TripletSemiHardLoss`` and ``TripletHardLoss`` are drop-in replacements for
the TensorFlow Addons classes of the same names: same constructor, same values
(TensorFlow Addons cannot be imported on TensorFlow >= 2.16).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distances, distribute, validation
from tfcontrast.fields import Bool, Choice, Float
from tfcontrast.registry import register_loss

MINING = ("all", "hard", "semi-hard")

# TensorFlow Addons metric names -> the package's metric names.
TFA_METRICS = {"L2": "euclidean", "squared-L2": "sqeuclidean", "angular": "cosine"}


def triplet_loss(
    labels,
    embeddings,
    margin: float = 1.0,
    mining: str = "semi-hard",
    distance: str = "euclidean",
    soft: bool = False,
) -> tf.Tensor:
    """Batch triplet loss with online mining; scalar float32.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids.
        embeddings: ``[batch, dim]`` embeddings (any float dtype; computed in float32).
        margin: hinge margin (>= 0); unused when ``soft``.
        mining: ``"all"``, ``"hard"`` or ``"semi-hard"`` (rules in the module docstring).
        distance: a metric of :func:`tfcontrast.distances.pairwise_distances`.
        soft: replace the hinge by the soft margin ``softplus(d_ap - d_an)``.

    Returns:
        Scalar loss (this replica's share of it under a strategy).

    Example:
        >>> labels = [0, 0, 1, 1]
        >>> emb = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]]
        >>> round(float(triplet_loss(labels, emb, margin=1.0, mining="hard")), 4)
        0.8964
    """
    margin = validation.check_non_negative(margin, "margin")
    validation.check_choice(mining, MINING, "mining")
    validation.check_choice(distance, distances.METRICS, "distance")
    d, positive, negative = _anchor_candidate_distances(labels, embeddings, distance)

    if mining == "all":
        d_ap = d[:, :, None]
        d_an = d[:, None, :]
        losses = _triplet_margin(d_ap, d_an, margin, soft)
        counted = positive[:, :, None] & negative[:, None, :] & (losses > 0.0)
        local_sum = tf.reduce_sum(tf.where(counted, losses, tf.zeros_like(losses)))
        return distribute.replica_share(local_sum, tf.reduce_sum(tf.cast(counted, d.dtype)))

    if mining == "hard":
        hardest_positive = masked_max(d, positive)
        hardest_negative = masked_min(d, negative)
        losses = _triplet_margin(hardest_positive, hardest_negative, margin, soft)
        valid = tf.reduce_any(positive, axis=1) & tf.reduce_any(negative, axis=1)
        local_sum = tf.reduce_sum(tf.where(valid, losses, tf.zeros_like(losses)))
        return distribute.replica_share(local_sum, tf.reduce_sum(tf.cast(valid, d.dtype)))

    losses = _triplet_margin(d, semi_hard_negative_distances(d, negative), margin, soft)
    local_sum = tf.reduce_sum(tf.where(positive, losses, tf.zeros_like(losses)))
    local_count = tf.reduce_sum(tf.cast(positive, d.dtype))
    return _zero_if_degenerate(
        distribute.replica_share(local_sum, local_count), positive, negative
    )


def triplet_semihard_loss(y_true, y_pred, margin: float = 1.0, distance_metric: str = "L2"):
    """``tfa.losses.triplet_semihard_loss``: semi-hard mining, hinge, mean over positive pairs."""
    metric = _tfa_metric(distance_metric)
    return triplet_loss(y_true, y_pred, margin=margin, mining="semi-hard", distance=metric)


def triplet_hard_loss(
    y_true, y_pred, margin: float = 1.0, soft: bool = False, distance_metric: str = "L2"
) -> tf.Tensor:
    """``tfa.losses.triplet_hard_loss``: batch-hard mining, mean over *all* anchors.

    Follows TensorFlow Addons exactly, including its rule for an anchor with
    no positive in the batch: its "hardest positive" distance is the smallest
    distance of its row (0, its distance to itself), so it still contributes
    ``max(margin - d_an, 0)``. The one deviation: a batch with no positive
    pair or no negative pair at all returns 0 with a zero gradient.
    """
    margin = validation.check_non_negative(margin, "margin")
    metric = _tfa_metric(distance_metric)
    d, positive, negative = _anchor_candidate_distances(y_true, y_pred, metric)
    losses = _triplet_margin(masked_max(d, positive), masked_min(d, negative), margin, soft)
    anchors = tf.cast(tf.shape(d)[0], d.dtype)
    share = distribute.replica_share(tf.reduce_sum(losses), anchors)
    return _zero_if_degenerate(share, positive, negative)


def semi_hard_negative_distances(d: tf.Tensor, negative: tf.Tensor) -> tf.Tensor:
    """For each (anchor i, candidate j): the semi-hard negative distance for d[i, j].

    That is the smallest negative distance of row i strictly greater than
    ``d[i, j]``, or, if there is none, the largest negative distance of row i.
    Computed by sorting each row's negative distances and binary-searching
    every entry: O(n m log m) time and O(n m) memory (TensorFlow Addons tiles
    an ``[n, m, m]`` tensor instead). Sort and search both compile with XLA.
    """
    inf = tf.constant(float("inf"), d.dtype)
    sorted_negatives = tf.sort(tf.where(negative, d, inf), axis=1)
    num_negatives = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1, keepdims=True)
    first_farther = tf.searchsorted(sorted_negatives, d, side="right", out_type=tf.int32)
    has_farther = first_farther < num_negatives
    last = tf.shape(d)[1] - 1
    farther = tf.gather(sorted_negatives, tf.minimum(first_farther, last), batch_dims=1)
    farthest = masked_max(d, negative)[:, None]
    return tf.where(has_farther, farther, farthest)


def masked_max(d: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Row-wise max of ``d`` over ``mask``; the row minimum where the mask is empty."""
    fill = tf.reduce_min(d, axis=1, keepdims=True)
    return tf.reduce_max(tf.where(mask, d, fill), axis=1)


def masked_min(d: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Row-wise min of ``d`` over ``mask``; the row maximum where the mask is empty."""
    fill = tf.reduce_max(d, axis=1, keepdims=True)
    return tf.reduce_min(tf.where(mask, d, fill), axis=1)


def _triplet_margin(d_ap, d_an, margin: float, soft: bool) -> tf.Tensor:
    if soft:
        return tf.nn.softplus(d_ap - d_an)
    return tf.maximum(d_ap - d_an + margin, 0.0)


def _zero_if_degenerate(value, positive, negative) -> tf.Tensor:
    """0 (and a zero gradient) unless the global batch has a positive and a negative pair."""
    counts = tf.stack(
        [tf.reduce_sum(tf.cast(positive, value.dtype)), tf.reduce_sum(tf.cast(negative, value.dtype))]
    )
    counts = tf.stop_gradient(distribute.all_reduce_sum(counts))
    usable = (counts[0] > 0) & (counts[1] > 0)
    return tf.where(usable, value, tf.zeros_like(value))


def _anchor_candidate_distances(labels, embeddings, metric: str):
    """Distances from this replica's anchors to every candidate of the global batch.

    Returns ``(d [n, m], positive [n, m], negative [n, m])`` where ``m`` counts
    the rows of all replicas (``m = n`` on one device); ``positive`` excludes
    each anchor itself and ``d`` is exactly 0 there.
    """
    embeddings = validation.to_float(embeddings, "embeddings")
    validation.check_rank(embeddings, 2, "embeddings")
    labels = validation.as_labels(labels, embeddings.shape[0])
    candidates, offset = distribute.gather(embeddings)
    candidate_labels, _ = distribute.gather(labels)
    d = distances.pairwise_distances(embeddings, candidates, metric=metric)
    rows = tf.range(tf.shape(embeddings)[0], dtype=tf.int32)[:, None] + offset
    cols = tf.range(tf.shape(candidates)[0], dtype=tf.int32)[None, :]
    is_self = tf.equal(rows, cols)
    d = tf.where(is_self, tf.zeros_like(d), d)
    same = tf.equal(labels[:, None], candidate_labels[None, :])
    return d, same & ~is_self, ~same


def _tfa_metric(distance_metric: str) -> str:
    validation.check_choice(distance_metric, tuple(TFA_METRICS), "distance_metric")
    return TFA_METRICS[distance_metric]


@keras.saving.register_keras_serializable(package="tfcontrast")
class TripletLoss(keras.losses.Loss):
    """Triplet margin loss with online mining, called on ``(labels, embeddings)``.

    Args:
        margin: hinge margin (>= 0); unused when ``soft``.
        mining: ``"semi-hard"`` (FaceNet), ``"hard"`` (batch-hard) or ``"all"``
            (batch-all, mean over triplets with a positive loss).
        distance: ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"`` or ``"inner_product"``.
        soft: soft margin ``log(1 + exp(d_ap - d_an))`` instead of the hinge.

    Batches need several samples per class, or there are no positives: use
    :func:`tfcontrast.data.class_balanced_batches` (P classes x K samples).

    Raises:
        ValueError: negative margin, unknown mining or distance, embeddings that
            are not ``[batch, dim]``, or labels of another length.

    Example:
        >>> model.compile(optimizer="adam", loss=TripletLoss(margin=0.2))  # doctest: +SKIP
        >>> model.fit(images, labels)  # doctest: +SKIP
    """

    def __init__(
        self,
        margin: float = 1.0,
        mining: str = "semi-hard",
        distance: str = "euclidean",
        soft: bool = False,
        name: str = "triplet_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.margin = validation.check_non_negative(margin, "margin")
        self.mining = validation.check_choice(mining, MINING, "mining")
        self.distance = validation.check_choice(distance, distances.METRICS, "distance")
        self.soft = bool(soft)

    def call(self, y_true, y_pred):
        return triplet_loss(y_true, y_pred, self.margin, self.mining, self.distance, self.soft)

    def get_config(self):
        return {
            **super().get_config(),
            "margin": self.margin,
            "mining": self.mining,
            "distance": self.distance,
            "soft": self.soft,
        }


register_loss(
    "triplet",
    TripletLoss,
    inputs="labels",
    summary="triplet margin loss with in-batch mining (Schroff et al., FaceNet, CVPR 2015)",
    fields={
        "margin": Float(doc="triplet margin, >= 0 (unused when soft)", within="[0, inf)"),
        "mining": Choice(MINING, doc="semi-hard | hard | all: which negatives (and positives) of the batch count"),
        "distance": Choice(distances.METRICS, doc="euclidean | sqeuclidean | cosine | inner_product"),
        "soft": Bool(doc="soft margin log(1 + exp(d_ap - d_an)) instead of the hinge"),
    },
)


@keras.saving.register_keras_serializable(package="tfcontrast")
class TripletSemiHardLoss(keras.losses.Loss):
    """Drop-in for ``tfa.losses.TripletSemiHardLoss``: same arguments, same values.

    Args:
        margin: hinge margin (>= 0).
        distance_metric: ``"L2"`` (Euclidean), ``"squared-L2"`` or ``"angular"`` (1 - cos).
    """

    def __init__(
        self, margin: float = 1.0, distance_metric: str = "L2", name: str = "triplet_semihard_loss", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.margin = validation.check_non_negative(margin, "margin")
        self.distance_metric = distance_metric
        _tfa_metric(distance_metric)

    def call(self, y_true, y_pred):
        return triplet_semihard_loss(y_true, y_pred, self.margin, self.distance_metric)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "distance_metric": self.distance_metric}


@keras.saving.register_keras_serializable(package="tfcontrast")
class TripletHardLoss(keras.losses.Loss):
    """Drop-in for ``tfa.losses.TripletHardLoss``: same arguments, same values.

    Args:
        margin: hinge margin (>= 0); unused when ``soft``.
        soft: soft margin ``log(1 + exp(d_ap - d_an))``.
        distance_metric: ``"L2"`` (Euclidean), ``"squared-L2"`` or ``"angular"`` (1 - cos).
    """

    def __init__(
        self,
        margin: float = 1.0,
        soft: bool = False,
        distance_metric: str = "L2",
        name: str = "triplet_hard_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.margin = validation.check_non_negative(margin, "margin")
        self.soft = bool(soft)
        self.distance_metric = distance_metric
        _tfa_metric(distance_metric)

    def call(self, y_true, y_pred):
        return triplet_hard_loss(y_true, y_pred, self.margin, self.soft, self.distance_metric)

    def get_config(self):
        return {
            **super().get_config(),
            "margin": self.margin,
            "soft": self.soft,
            "distance_metric": self.distance_metric,
        }
