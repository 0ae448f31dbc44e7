"""PN loss (Ivis): a triplet loss whose negative must be far from the anchor *and* the positive.

Szubert, Cole, Monaco and Drozdov, "Structure-preserving visualisation of high
dimensional single-cell datasets", Scientific Reports 9, 8914 (2019), as
TensorFlow Similarity 0.17.1 implements it for labelled batches. For anchor i:

    positive p(i):  "hard" = farthest positive, "easy" = nearest positive
    negative n(i):  "hard" = nearest negative, "easy" = farthest negative,
                    "semi-hard" = nearest negative farther than the *farthest*
                    positive, or the farthest negative if none is
    d_n(i) = min(d(i, n(i)), d(p(i), n(i)))
    L_i = log(1 + exp(d(i, p(i)) - d_n(i)))          margin=None (soft margin)
    L_i = max(d(i, p(i)) - d_n(i) + margin, 0)         otherwise
    L   = mean_i L_i      (over every anchor of the global batch)

TF Similarity's rules for an anchor with no positive (or no negative) are
kept: the empty extreme is the row minimum - 1e-6 for a maximum, the row
maximum + 1e-6 for a minimum, with index 0 (see :mod:`tfcontrast.losses.tfsim`),
and such anchors count in the mean. Same argument names, defaults and values as
``tensorflow_similarity.losses.PNLoss``. Differences:

* a global batch with no positive pair or no negative pair gives 0 with a zero
  gradient (TF Similarity mines its fill values and returns some number);
* ``d(p(i), n(i))`` is the distance between those two candidates; TF
  Similarity reads it from the query x key matrix at row p(i), which is the
  same only when queries and keys coincide (it is wrong under its XBM);
* labels are compared exactly; under a strategy the candidates are the global batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.fields import Choice, Float
from tfcontrast.losses import base, tfsim, xbm
from tfcontrast.registry import register_loss

POSITIVE_MINING = ("hard", "easy")
NEGATIVE_MINING = ("hard", "semi-hard", "easy")


def pn_loss(
    labels,
    embeddings,
    distance: str = "cosine",
    positive_mining_strategy: str = "hard",
    negative_mining_strategy: str = "semi-hard",
    margin: float | None = None,
) -> tf.Tensor:
    """PN loss (formula in the module docstring); scalar float32.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids.
        embeddings: ``[batch, dim]`` embeddings, L2-normalised for ``"cosine"``.
        distance: ``"cosine"``, ``"l2"`` or ``"sql2"``.
        positive_mining_strategy: ``"hard"`` or ``"easy"``.
        negative_mining_strategy: ``"hard"``, ``"semi-hard"`` or ``"easy"``.
        margin: ``None`` for the soft margin ``softplus(d_ap - d_n)``, else the hinge margin (>= 0).

    Example:
        >>> emb = tf.math.l2_normalize([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], axis=1)
        >>> float(pn_loss([0, 0, 1, 1], emb, margin=0.1))
        0.0
    """
    arguments = _check_arguments(distance, positive_mining_strategy, negative_mining_strategy, margin)
    return pn_from_candidates(base.anchor_batch(labels, embeddings), *arguments)


@base.zero_for_empty_batch
def pn_from_candidates(
    candidates: base.Candidates, distance, positive_mining_strategy, negative_mining_strategy, margin
) -> tf.Tensor:
    """:func:`pn_loss` of the anchors of ``candidates`` against its keys."""
    metric = tfsim.canonical_distance(distance)
    d = tfsim.pairwise(candidates.embeddings, candidates.keys, metric)
    positive, negative = candidates.masks()
    exists = candidates.exists()

    if positive_mining_strategy == "hard":
        d_ap, positive_index = tfsim.masked_max(d, positive, exists)
    else:
        d_ap, positive_index = tfsim.masked_min(d, positive, exists)

    if negative_mining_strategy == "hard":
        d_an, negative_index = tfsim.masked_min(d, negative, exists)
    elif negative_mining_strategy == "easy":
        d_an, negative_index = tfsim.masked_max(d, negative, exists)
    else:
        farthest_positive, _ = tfsim.masked_max(d, positive, exists)
        _, farthest_negative = tfsim.masked_max(d, negative, exists)
        fallback = tf.one_hot(farthest_negative, tf.shape(d)[1], on_value=True, off_value=False)
        semi_hard = tf.where(d > farthest_positive[:, None], negative, fallback)
        d_an, negative_index = tfsim.masked_min(d, semi_hard, exists)

    d_pn = tfsim.rowwise(
        tf.gather(candidates.keys, positive_index), tf.gather(candidates.keys, negative_index), metric
    )
    gap = d_ap - tf.minimum(d_pn, d_an)
    per_anchor = tf.nn.softplus(gap) if margin is None else tf.maximum(gap + margin, 0.0)
    anchors = tf.cast(tf.shape(d)[0], d.dtype)
    share = distribute.replica_share(tf.reduce_sum(per_anchor), anchors)
    return candidates.finish(base.zero_if_degenerate(share, positive, negative))


def _check_arguments(distance, positive_mining_strategy, negative_mining_strategy, margin):
    tfsim.canonical_distance(distance)
    validation.check_choice(positive_mining_strategy, POSITIVE_MINING, "positive_mining_strategy")
    validation.check_choice(negative_mining_strategy, NEGATIVE_MINING, "negative_mining_strategy")
    margin = None if margin is None else validation.check_non_negative(margin, "margin")
    return distance, positive_mining_strategy, negative_mining_strategy, margin


@keras.saving.register_keras_serializable(package="tfcontrast")
class PNLoss(base.SimilarityLoss):
    """PN loss (Ivis, Szubert et al. 2019), drop-in for TF Similarity's ``PNLoss``.

    Called on ``(labels, embeddings)``; formula, mining rules and differences
    in :mod:`tfcontrast.losses.pn`.

    Args:
        distance: ``"cosine"`` (default; embeddings L2-normalised), ``"l2"`` or ``"sql2"``.
        positive_mining_strategy: ``"hard"`` (default) or ``"easy"``.
        negative_mining_strategy: ``"semi-hard"`` (default), ``"hard"`` or ``"easy"``.
        margin: ``None`` (default, soft margin) or a hinge margin >= 0.

    Raises:
        ValueError: an unknown distance or strategy, a negative margin.

    Example:
        >>> model.compile(optimizer="adam", loss=tfc.losses.PNLoss(margin=0.2))  # doctest: +SKIP
    """

    function = staticmethod(pn_loss)
    from_candidates = staticmethod(pn_from_candidates)

    def __init__(
        self,
        distance: str = "cosine",
        positive_mining_strategy: str = "hard",
        negative_mining_strategy: str = "semi-hard",
        margin: float | None = None,
        name: str = "pn_loss",
        **kwargs,
    ):
        arguments = _check_arguments(distance, positive_mining_strategy, negative_mining_strategy, margin)
        names = ("distance", "positive_mining_strategy", "negative_mining_strategy", "margin")
        super().__init__(name=name, **dict(zip(names, arguments)), **kwargs)


register_loss(
    "pn",
    PNLoss,
    inputs="labels",
    summary="PN loss (Ivis, Szubert et al., Scientific Reports 2019), TF Similarity's PNLoss",
    fields=xbm.memory_fields({
        "distance": tfsim.DISTANCE_FIELD,
        "positive_mining_strategy": Choice(POSITIVE_MINING, doc="hard (farthest positive) | easy (nearest positive)"),
        "negative_mining_strategy": Choice(
            NEGATIVE_MINING, doc="semi-hard | hard (nearest negative) | easy (farthest negative)"
        ),
        "margin": Float(doc="hinge margin, >= 0; None = soft margin log(1 + exp(.))", within="[0, inf)", optional=True),
    }),
    build=xbm.with_memory(PNLoss),
)
