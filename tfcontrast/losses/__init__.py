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

Batch-level losses (triplet, NT-Xent, SupCon) gather candidates across
replicas under a ``tf.distribute`` strategy and return the replica's share of
the global loss.

The last four own a trainable ``[num_classes, embedding_dim]`` matrix of
proxies / class weights: they are Keras layers, given to
``EmbeddingModel(..., loss_head=...)`` so that the matrix is trained, saved
and mirrored with the model (:mod:`tfcontrast.losses.class_weights`).
"""

from tfcontrast.losses.contrastive import ContrastiveLoss, contrastive_loss
from tfcontrast.losses.margin_softmax import ArcFaceLoss, CosFaceLoss, arcface_loss, cosface_loss
from tfcontrast.losses.ntxent import NTXentLoss, SupConLoss, nt_xent_loss, supcon_loss
from tfcontrast.losses.proxy import ProxyAnchorLoss, ProxyNCALoss, proxy_anchor_loss, proxy_nca_loss
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
    "ArcFaceLoss",
    "BYOLLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "NTXentLoss",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "SimSiamLoss",
    "SupConLoss",
    "TripletHardLoss",
    "TripletLoss",
    "TripletSemiHardLoss",
    "arcface_loss",
    "byol_loss",
    "contrastive_loss",
    "cosface_loss",
    "negative_cosine_similarity",
    "nt_xent_loss",
    "proxy_anchor_loss",
    "proxy_nca_loss",
    "supcon_loss",
    "triplet_hard_loss",
    "triplet_loss",
    "triplet_semihard_loss",
]
