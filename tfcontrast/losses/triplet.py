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

A batch with no positive pair or no negative pair (an empty batch included)
gives 0 with a zero gradient. Labels are compared exactly as int64 and a
non-finite embedding makes the loss NaN (the contract of
:mod:`tfcontrast.losses.base`). Under a ``tf.distribute`` strategy the positives and negatives of a
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
from tfcontrast.losses import base, xbm
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
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids (compared exactly, as int64).
        embeddings: ``[batch, dim]`` embeddings (any float dtype; computed in float32).
        margin: hinge margin (>= 0); unused when ``soft``.
        mining: ``"all"``, ``"hard"`` or ``"semi-hard"`` (rules in the module docstring).
        distance: a metric of :func:`tfcontrast.distances.pairwise_distances`.
        soft: replace the hinge by the soft margin ``softplus(d_ap - d_an)``.

    Returns:
        Scalar loss (this replica's share of it under a strategy); NaN if an
        embedding is not finite (the return contract of :mod:`tfcontrast.losses.base`).

    Example:
        >>> labels = [0, 0, 1, 1]
        >>> emb = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]]
        >>> round(float(triplet_loss(labels, emb, margin=1.0, mining="hard")), 4)
        0.8964
    """
    margin, mining, distance = _check_arguments(margin, mining, distance)
    return triplet_from_candidates(base.anchor_batch(labels, embeddings), margin, mining, distance, soft)


@base.zero_for_empty_batch
def triplet_from_candidates(
    candidates: base.Candidates, margin: float, mining: str, distance: str, soft: bool = False
) -> tf.Tensor:
    """:func:`triplet_loss` of the anchors of ``candidates`` against its keys (batch and any memory)."""
    d, positive, negative = _anchor_candidate_distances(candidates, distance)

    if mining == "all":
        d_ap = d[:, :, None]
        d_an = d[:, None, :]
        losses = _triplet_margin(d_ap, d_an, margin, soft)
        counted = positive[:, :, None] & negative[:, None, :] & (losses > 0.0)
        local_sum = tf.reduce_sum(tf.where(counted, losses, tf.zeros_like(losses)))
        value = distribute.replica_share(local_sum, tf.reduce_sum(tf.cast(counted, d.dtype)))
    elif mining == "hard":
        hardest_positive = masked_max(d, positive)
        hardest_negative = masked_min(d, negative)
        losses = _triplet_margin(hardest_positive, hardest_negative, margin, soft)
        valid = tf.reduce_any(positive, axis=1) & tf.reduce_any(negative, axis=1)
        local_sum = tf.reduce_sum(tf.where(valid, losses, tf.zeros_like(losses)))
        value = distribute.replica_share(local_sum, tf.reduce_sum(tf.cast(valid, d.dtype)))
    else:
        losses = _triplet_margin(d, semi_hard_negative_distances(d, negative), margin, soft)
        local_sum = tf.reduce_sum(tf.where(positive, losses, tf.zeros_like(losses)))
        local_count = tf.reduce_sum(tf.cast(positive, d.dtype))
        value = base.zero_if_degenerate(distribute.replica_share(local_sum, local_count), positive, negative)
    return candidates.finish(value)


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
    return _tfa_hard_from_candidates(base.anchor_batch(y_true, y_pred), margin, soft, distance_metric)


def _tfa_semihard_from_candidates(candidates, margin, distance_metric):
    return triplet_from_candidates(candidates, margin, "semi-hard", _tfa_metric(distance_metric))


@base.zero_for_empty_batch
def _tfa_hard_from_candidates(candidates, margin, soft, distance_metric):
    d, positive, negative = _anchor_candidate_distances(candidates, _tfa_metric(distance_metric))
    exists = candidates.exists()
    losses = _triplet_margin(masked_max(d, positive, exists), masked_min(d, negative, exists), margin, soft)
    anchors = tf.cast(tf.shape(d)[0], d.dtype)
    share = distribute.replica_share(tf.reduce_sum(losses), anchors)
    return candidates.finish(base.zero_if_degenerate(share, positive, negative))


def semi_hard_negative_distances(d: tf.Tensor, negative: tf.Tensor) -> tf.Tensor:
    """For each (anchor i, candidate j): the semi-hard negative distance for d[i, j].

    That is the smallest negative distance of row i strictly greater than
    ``d[i, j]``, or, if there is none, the largest negative distance of row i.
    Computed by sorting each row's negative distances and binary-searching
    every entry: O(n m log m) time and O(n m) memory (TensorFlow Addons tiles
    an ``[n, m, m]`` tensor instead). Sort and search both compile with XLA.
    """
    inf = tf.constant(float("inf"), d.dtype)
    negatives_or_inf = tf.where(negative, d, inf)
    # argsort + gather, not tf.sort: sort's gradient fails on an empty batch ("Requires delta != 0 [Op:Range]").
    order = tf.argsort(negatives_or_inf, axis=1, stable=True)
    sorted_negatives = tf.gather(negatives_or_inf, order, batch_dims=1)
    num_negatives = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1, keepdims=True)
    first_farther = tf.searchsorted(sorted_negatives, d, side="right", out_type=tf.int32)
    has_farther = first_farther < num_negatives
    last = tf.shape(d)[1] - 1
    farther = tf.gather(sorted_negatives, tf.minimum(first_farther, last), batch_dims=1)
    farthest = masked_max(d, negative)[:, None]
    return tf.where(has_farther, farther, farthest)


def masked_max(d: tf.Tensor, mask: tf.Tensor, exists: tf.Tensor | None = None) -> tf.Tensor:
    """Row-wise max of ``d`` over ``mask``; the row minimum (over ``exists``) where the mask is empty."""
    inf = tf.constant(float("inf"), d.dtype)
    fill = tf.reduce_min(d if exists is None else tf.where(exists, d, inf), axis=1, keepdims=True)
    return tf.reduce_max(tf.where(mask, d, fill), axis=1)


def masked_min(d: tf.Tensor, mask: tf.Tensor, exists: tf.Tensor | None = None) -> tf.Tensor:
    """Row-wise min of ``d`` over ``mask``; the row maximum (over ``exists``) where the mask is empty."""
    inf = tf.constant(float("inf"), d.dtype)
    fill = tf.reduce_max(d if exists is None else tf.where(exists, d, -inf), axis=1, keepdims=True)
    return tf.reduce_min(tf.where(mask, d, fill), axis=1)


def _triplet_margin(d_ap, d_an, margin: float, soft: bool) -> tf.Tensor:
    if soft:
        return tf.nn.softplus(d_ap - d_an)
    return tf.maximum(d_ap - d_an + margin, 0.0)


def _anchor_candidate_distances(candidates: base.Candidates, metric: str):
    """Distances from this replica's anchors to every candidate (the global batch, any memory).

    Returns ``(d [n, m], positive [n, m], negative [n, m])``; ``positive``
    excludes each anchor itself (``d`` is exactly 0 there) and both masks
    leave out memory slots that are not filled yet.
    """
    d = distances.pairwise_distances(candidates.embeddings, candidates.keys, metric=metric)
    d = tf.where(candidates.is_self(), tf.zeros_like(d), d)
    positive, negative = candidates.masks()
    return d, positive, negative


def _check_arguments(margin, mining, distance):
    margin = validation.check_non_negative(margin, "margin")
    validation.check_choice(mining, MINING, "mining")
    validation.check_choice(distance, distances.METRICS, "distance")
    return margin, mining, distance


def _tfa_metric(distance_metric: str) -> str:
    validation.check_choice(distance_metric, tuple(TFA_METRICS), "distance_metric")
    return TFA_METRICS[distance_metric]


@keras.saving.register_keras_serializable(package="tfcontrast")
class TripletLoss(base.SimilarityLoss):
    """Triplet margin loss with online mining, called on ``(labels, embeddings)``.

    Args:
        margin: hinge margin (>= 0); unused when ``soft``.
        mining: ``"semi-hard"`` (FaceNet), ``"hard"`` (batch-hard) or ``"all"``
            (batch-all, mean over triplets with a positive loss).
        distance: ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"`` or ``"inner_product"``.
        soft: soft margin ``log(1 + exp(d_ap - d_an))`` instead of the hinge.

    Batches need several samples per class, or there are no positives: use
    :func:`tfcontrast.data.class_balanced_batches` (P classes x K samples).
    Labels are compared exactly (int64 ids such as product ids are fine);
    the return contract (NaN on non-finite embeddings, errors on
    non-integer labels) is that of :mod:`tfcontrast.losses.base`.

    Raises:
        ValueError: negative margin, unknown mining or distance, embeddings that
            are not ``[batch, dim]``, or labels of another length.

    Example:
        >>> model.compile(optimizer="adam", loss=TripletLoss(margin=0.2))  # doctest: +SKIP
        >>> model.fit(images, labels)  # doctest: +SKIP
    """

    function = staticmethod(triplet_loss)
    from_candidates = staticmethod(triplet_from_candidates)

    def __init__(
        self,
        margin: float = 1.0,
        mining: str = "semi-hard",
        distance: str = "euclidean",
        soft: bool = False,
        name: str = "triplet_loss",
        **kwargs,
    ):
        margin, mining, distance = _check_arguments(margin, mining, distance)
        super().__init__(name=name, margin=margin, mining=mining, distance=distance, soft=bool(soft), **kwargs)


register_loss(
    "triplet",
    TripletLoss,
    inputs="labels",
    summary="triplet margin loss with in-batch mining (Schroff et al., FaceNet, CVPR 2015)",
    fields=xbm.memory_fields({
        "margin": Float(doc="triplet margin, >= 0 (unused when soft)", within="[0, inf)"),
        "mining": Choice(MINING, doc="semi-hard | hard | all: which negatives (and positives) of the batch count"),
        "distance": Choice(distances.METRICS, doc="euclidean | sqeuclidean | cosine | inner_product"),
        "soft": Bool(doc="soft margin log(1 + exp(d_ap - d_an)) instead of the hinge"),
    }),
    build=xbm.with_memory(TripletLoss),
)


@keras.saving.register_keras_serializable(package="tfcontrast")
class TripletSemiHardLoss(base.SimilarityLoss):
    """Drop-in for ``tfa.losses.TripletSemiHardLoss``: same arguments, same values.

    Args:
        margin: hinge margin (>= 0).
        distance_metric: ``"L2"`` (Euclidean), ``"squared-L2"`` or ``"angular"`` (1 - cos).
    """

    function = staticmethod(triplet_semihard_loss)
    from_candidates = staticmethod(_tfa_semihard_from_candidates)

    def __init__(
        self, margin: float = 1.0, distance_metric: str = "L2", name: str = "triplet_semihard_loss", **kwargs
    ):
        margin = validation.check_non_negative(margin, "margin")
        _tfa_metric(distance_metric)
        super().__init__(name=name, margin=margin, distance_metric=distance_metric, **kwargs)


@keras.saving.register_keras_serializable(package="tfcontrast")
class TripletHardLoss(base.SimilarityLoss):
    """Drop-in for ``tfa.losses.TripletHardLoss``: same arguments, same values.

    Args:
        margin: hinge margin (>= 0); unused when ``soft``.
        soft: soft margin ``log(1 + exp(d_ap - d_an))``.
        distance_metric: ``"L2"`` (Euclidean), ``"squared-L2"`` or ``"angular"`` (1 - cos).
    """

    function = staticmethod(triplet_hard_loss)
    from_candidates = staticmethod(_tfa_hard_from_candidates)

    def __init__(
        self,
        margin: float = 1.0,
        soft: bool = False,
        distance_metric: str = "L2",
        name: str = "triplet_hard_loss",
        **kwargs,
    ):
        margin = validation.check_non_negative(margin, "margin")
        _tfa_metric(distance_metric)
        super().__init__(name=name, margin=margin, soft=bool(soft), distance_metric=distance_metric, **kwargs)
