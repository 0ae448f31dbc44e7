"""Similarity-learning losses: a pure function and a registered Keras ``Loss`` each.

=========================  ==========================================  =================================
class                      called on                                   function
=========================  ==========================================  =================================
``ContrastiveLoss``        (pair label 1=similar, distance)            ``contrastive_loss``
``TripletLoss``            (labels, embeddings)                        ``triplet_loss``
``TripletSemiHardLoss``    (labels, embeddings), tfa drop-in           ``triplet_semihard_loss``
``TripletHardLoss``        (labels, embeddings), tfa drop-in           ``triplet_hard_loss``
``LiftedStructLoss``       (labels, embeddings), tfa drop-in           ``lifted_struct_loss``
``NpairsLoss``             (labels, similarity matrix), tfa drop-in    ``npairs_loss``
``NpairsMultilabelLoss``   (multi-hot rows, similarity), tfa drop-in   ``npairs_multilabel_loss``
``MultiSimilarityLoss``    (labels, embeddings), TF Similarity         ``multisimilarity_loss``
``CircleLoss``             (labels, embeddings), TF Similarity         ``circle_loss``
``PNLoss``                 (labels, embeddings), TF Similarity         ``pn_loss``
``SoftNearestNeighborLoss``  (labels, embeddings), TF Similarity     ``soft_nearest_neighbor_loss``
``XBM``                    wraps a label loss: cross-batch memory      (stateful; a class only)
``NTXentLoss``             (view a, view b)                            ``nt_xent_loss``
``SupConLoss``             (labels, embeddings)                        ``supcon_loss``
``BYOLLoss``               (prediction, target projection)             ``byol_loss``
``SimSiamLoss``            (prediction, target projection)             ``negative_cosine_similarity``
=========================  ==========================================  =================================

The label-based classes share one wrapper, :class:`~tfcontrast.losses.base.SimilarityLoss`,
and one return contract (see :mod:`tfcontrast.losses.base`): a scalar that is
this replica's share of the global-batch loss; labels compared exactly (int64);
NaN when an embedding is not finite; invalid labels refused. Batch-level losses
gather candidates across replicas under a ``tf.distribute`` strategy.
"""

from tfcontrast.losses.base import SimilarityLoss
from tfcontrast.losses.circle import CircleLoss, circle_loss
from tfcontrast.losses.contrastive import ContrastiveLoss, contrastive_loss
from tfcontrast.losses.lifted import LiftedStructLoss, lifted_struct_loss
from tfcontrast.losses.multisimilarity import MultiSimilarityLoss, multisimilarity_loss
from tfcontrast.losses.npairs import NpairsLoss, NpairsMultilabelLoss, npairs_loss, npairs_multilabel_loss
from tfcontrast.losses.ntxent import NTXentLoss, SupConLoss, nt_xent_loss, supcon_loss
from tfcontrast.losses.pn import PNLoss, pn_loss
from tfcontrast.losses.regression import BYOLLoss, SimSiamLoss, byol_loss, negative_cosine_similarity
from tfcontrast.losses.soft_nearest_neighbor import SoftNearestNeighborLoss, soft_nearest_neighbor_loss
from tfcontrast.losses.triplet import (
    TripletHardLoss,
    TripletLoss,
    TripletSemiHardLoss,
    triplet_hard_loss,
    triplet_loss,
    triplet_semihard_loss,
)
from tfcontrast.losses.xbm import XBM

__all__ = [
    "BYOLLoss",
    "CircleLoss",
    "ContrastiveLoss",
    "LiftedStructLoss",
    "MultiSimilarityLoss",
    "NTXentLoss",
    "NpairsLoss",
    "NpairsMultilabelLoss",
    "PNLoss",
    "SimSiamLoss",
    "SimilarityLoss",
    "SoftNearestNeighborLoss",
    "SupConLoss",
    "TripletHardLoss",
    "TripletLoss",
    "TripletSemiHardLoss",
    "XBM",
    "byol_loss",
    "circle_loss",
    "contrastive_loss",
    "lifted_struct_loss",
    "multisimilarity_loss",
    "negative_cosine_similarity",
    "npairs_loss",
    "npairs_multilabel_loss",
    "nt_xent_loss",
    "pn_loss",
    "soft_nearest_neighbor_loss",
    "supcon_loss",
    "triplet_hard_loss",
    "triplet_loss",
    "triplet_semihard_loss",
]
