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
``InfoNCELoss``            (queries, keys, negatives=None,      ``info_nce_loss``
                           extra_negatives=None), MoCo/MoCHi
``BarlowTwinsLoss``        (view a, view b)                     ``barlow_twins_loss``
``VICRegLoss``             (view a, view b)                     ``vicreg_loss``, ``vicreg_terms``
``SwAVLoss``               ([scores of each crop],              ``swav_loss``, ``sinkhorn``
                           queue_scores=None)
``DistillationLoss``       (teacher logits, student logits)     ``distillation_loss``
=========================  ===================================  ======================

Batch-level losses (triplet, NT-Xent, SupCon, InfoNCE) gather candidates
across replicas under a ``tf.distribute`` strategy, and the batch statistics
of Barlow Twins, VICReg and SwAV (means, variances, cross-correlation and
covariance matrices, Sinkhorn sums) are all-reduced over the global batch;
each returns the replica's share of the global loss.

=========================  ===================================  ======================
class (a Keras layer)      called on                            function
=========================  ===================================  ======================
``ProxyAnchorLoss``        (labels, embeddings)                 ``proxy_anchor_loss``
``ProxyNCALoss``           (labels, embeddings)                 ``proxy_nca_loss``
``ArcFaceLoss``            (labels, embeddings)                 ``arcface_loss``
``CosFaceLoss``            (labels, embeddings)                 ``cosface_loss``
=========================  ===================================  ======================

These four own a trainable ``[num_classes, embedding_dim]`` matrix of
proxies / class weights: they are Keras layers, given to
``EmbeddingModel(..., loss_head=...)`` so that the matrix is trained, saved
and mirrored with the model (:mod:`tfcontrast.losses.class_weights`).
"""

from tfcontrast.losses.barlow_twins import BarlowTwinsLoss, barlow_twins_loss
from tfcontrast.losses.contrastive import ContrastiveLoss, contrastive_loss
from tfcontrast.losses.distillation import DistillationLoss, distillation_loss
from tfcontrast.losses.infonce import InfoNCELoss, info_nce_loss
from tfcontrast.losses.margin_softmax import ArcFaceLoss, CosFaceLoss, arcface_loss, cosface_loss
from tfcontrast.losses.ntxent import NTXentLoss, SupConLoss, nt_xent_loss, supcon_loss
from tfcontrast.losses.proxy import ProxyAnchorLoss, ProxyNCALoss, proxy_anchor_loss, proxy_nca_loss
from tfcontrast.losses.regression import BYOLLoss, SimSiamLoss, byol_loss, negative_cosine_similarity
from tfcontrast.losses.swav import SwAVLoss, sinkhorn, swav_loss
from tfcontrast.losses.triplet import (
    TripletHardLoss,
    TripletLoss,
    TripletSemiHardLoss,
    triplet_hard_loss,
    triplet_loss,
    triplet_semihard_loss,
)
from tfcontrast.losses.vicreg import VICRegLoss, vicreg_loss, vicreg_terms

__all__ = [
    "ArcFaceLoss",
    "BYOLLoss",
    "BarlowTwinsLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "DistillationLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "SimSiamLoss",
    "SupConLoss",
    "SwAVLoss",
    "TripletHardLoss",
    "TripletLoss",
    "TripletSemiHardLoss",
    "VICRegLoss",
    "arcface_loss",
    "barlow_twins_loss",
    "byol_loss",
    "contrastive_loss",
    "cosface_loss",
    "distillation_loss",
    "info_nce_loss",
    "negative_cosine_similarity",
    "nt_xent_loss",
    "proxy_anchor_loss",
    "proxy_nca_loss",
    "sinkhorn",
    "supcon_loss",
    "swav_loss",
    "triplet_hard_loss",
    "triplet_loss",
    "triplet_semihard_loss",
    "vicreg_loss",
    "vicreg_terms",
]
