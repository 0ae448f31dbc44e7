"""Similarity-learning losses: a pure function and a registered Keras ``Loss`` each.

=========================  ===================================  ======================
class                      called on                            function
=========================  ===================================  ======================
``ContrastiveLoss``        (pair label 1=similar, distance)     ``contrastive_loss``
``TripletLoss``            (labels, embeddings)                 ``triplet_loss``
``TripletSemiHardLoss``    (labels, embeddings), tfa drop-in    ``triplet_semihard_loss``
``TripletHardLoss``        (labels, embeddings), tfa drop-in    ``triplet_hard_loss``
``NTXentLoss``             (view a, view b)                     ``nt_xent_loss``
``SupConLoss``             (labels, embeddings)                 ``supcon_loss``
``BYOLLoss``               (prediction, target projection)      ``byol_loss``
``SimSiamLoss``            (prediction, target projection)      ``negative_cosine_similarity``
=========================  ===================================  ======================

Text: ``MultipleNegativesRankingLoss`` on (queries, passages), function
``multiple_negatives_ranking_loss``; ``NegativeSamplingLoss`` on (positive
logits, negative logits), function ``negative_sampling_loss``.

Batch-level losses (triplet, NT-Xent, SupCon) gather candidates across
replicas under a ``tf.distribute`` strategy and return the replica's share of
the global loss.
"""

from tfcontrast.losses.contrastive import ContrastiveLoss, contrastive_loss
from tfcontrast.losses.negative_sampling import NegativeSamplingLoss, negative_sampling_loss
from tfcontrast.losses.ntxent import NTXentLoss, SupConLoss, nt_xent_loss, supcon_loss
from tfcontrast.losses.ranking import MultipleNegativesRankingLoss, multiple_negatives_ranking_loss
from tfcontrast.losses.regression import BYOLLoss, SimSiamLoss, byol_loss, negative_cosine_similarity
from tfcontrast.losses.triplet import (
    TripletHardLoss,
    TripletLoss,
    TripletSemiHardLoss,
    triplet_hard_loss,
    triplet_loss,
    triplet_semihard_loss,
)

__all__ = [
    "BYOLLoss",
    "ContrastiveLoss",
    "MultipleNegativesRankingLoss",
    "NegativeSamplingLoss",
    "NTXentLoss",
    "SimSiamLoss",
    "SupConLoss",
    "TripletHardLoss",
    "TripletLoss",
    "TripletSemiHardLoss",
    "byol_loss",
    "contrastive_loss",
    "multiple_negatives_ranking_loss",
    "negative_cosine_similarity",
    "negative_sampling_loss",
    "nt_xent_loss",
    "supcon_loss",
    "triplet_hard_loss",
    "triplet_loss",
    "triplet_semihard_loss",
]
