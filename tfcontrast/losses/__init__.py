"""Similarity-learning losses: a pure function and a registered Keras ``Loss`` each.

Label-based losses (TF Addons and TF Similarity drop-ins included):

=============================  ==========================================  =================================
class                          called on                                   function
=============================  ==========================================  =================================
``ContrastiveLoss``            (pair label 1=similar, distance)            ``contrastive_loss``
``TripletLoss``                (labels, embeddings)                        ``triplet_loss``
``TripletSemiHardLoss``        (labels, embeddings), tfa drop-in           ``triplet_semihard_loss``
``TripletHardLoss``            (labels, embeddings), tfa drop-in           ``triplet_hard_loss``
``LiftedStructLoss``           (labels, embeddings), tfa drop-in           ``lifted_struct_loss``
``NpairsLoss``                 (labels, similarity matrix), tfa drop-in    ``npairs_loss``
``NpairsMultilabelLoss``       (multi-hot rows, similarity), tfa drop-in   ``npairs_multilabel_loss``
``MultiSimilarityLoss``        (labels, embeddings), TF Similarity         ``multisimilarity_loss``
``CircleLoss``                 (labels, embeddings), TF Similarity         ``circle_loss``
``PNLoss``                     (labels, embeddings), TF Similarity         ``pn_loss``
``SoftNearestNeighborLoss``    (labels, embeddings), TF Similarity         ``soft_nearest_neighbor_loss``
``XBM``                        wraps a label loss: cross-batch memory      (stateful; a class only)
``SupConLoss``                 (labels, embeddings)                        ``supcon_loss``
=============================  ==========================================  =================================

They share one wrapper, :class:`~tfcontrast.losses.base.SimilarityLoss`, and
one return contract (see :mod:`tfcontrast.losses.base`): a scalar that is this
replica's share of the global-batch loss; labels compared exactly (int64); NaN
when an embedding is not finite; invalid labels refused.

Losses with a trainable ``[num_classes, embedding_dim]`` matrix of proxies /
class weights are Keras layers, given to ``EmbeddingModel(..., loss_head=...)``
so that the matrix is trained, saved and mirrored with the model
(:mod:`tfcontrast.losses.class_weights`):

=============================  ==========================================  =================================
class (a Keras layer)          called on                                   function
=============================  ==========================================  =================================
``ProxyAnchorLoss``            (labels, embeddings)                        ``proxy_anchor_loss``
``ProxyNCALoss``               (labels, embeddings)                        ``proxy_nca_loss``
``ArcFaceLoss``                (labels, embeddings)                        ``arcface_loss``
``CosFaceLoss``                (labels, embeddings)                        ``cosface_loss``
=============================  ==========================================  =================================

Every label loss above except the N-pair losses (which take a similarity
matrix) is also registered by name for ``tfcontrast train``
(``--config.loss.name=multi_similarity``, ``arcface``, ...; the loss heads
become ``EmbeddingModel(..., loss_head=...)``), and every loss that compares
anchors with candidates takes the keys ``xbm_memory_size`` /
``xbm_warmup_steps`` there (``docs/losses.md``, "Losses by name").

Self-supervised and distillation losses:

=============================  ==========================================  =================================
class                          called on                                   function
=============================  ==========================================  =================================
``NTXentLoss``                 (view a, view b)                            ``nt_xent_loss``
``InfoNCELoss``                (queries, keys, negatives=None,             ``info_nce_loss``
                               extra_negatives=None): MoCo / MoCHi
``NCELoss``                    (queries, memory positives, memory          ``nce_loss``, ``nce_log_noise_mean``
                               negatives): PIRL
``BYOLLoss``                   (prediction, target projection)             ``byol_loss``
``SimSiamLoss``                (prediction, target projection)             ``negative_cosine_similarity``
``BarlowTwinsLoss``            (view a, view b)                            ``barlow_twins_loss``
``VICRegLoss``                 (view a, view b)                            ``vicreg_loss``, ``vicreg_terms``
``SwAVLoss``                   ([scores of each crop], queue_scores=None)  ``swav_loss``, ``sinkhorn``
``DistillationLoss``           (teacher logits, student logits)            ``distillation_loss``
=============================  ==========================================  =================================

Batch-level losses (triplet, NT-Xent, SupCon, InfoNCE and the other label
losses) gather candidates across replicas under a ``tf.distribute`` strategy,
and the batch statistics of Barlow Twins, VICReg and SwAV (means, variances,
cross-correlation and covariance matrices, Sinkhorn sums) are all-reduced over
the global batch; each returns the replica's share of the global loss.

Text losses:

=================================  ==========================================  ===================================
class                              called on                                   function
=================================  ==========================================  ===================================
``MultipleNegativesRankingLoss``   (queries, passages), in-batch negatives     ``multiple_negatives_ranking_loss``
``NegativeSamplingLoss``           (positive logits, negative logits)          ``negative_sampling_loss``
=================================  ==========================================  ===================================
"""

from tfcontrast.losses.barlow_twins import BarlowTwinsLoss, barlow_twins_loss
from tfcontrast.losses.base import SimilarityLoss
from tfcontrast.losses.circle import CircleLoss, circle_loss
from tfcontrast.losses.contrastive import ContrastiveLoss, contrastive_loss
from tfcontrast.losses.distillation import DistillationLoss, distillation_loss
from tfcontrast.losses.infonce import InfoNCELoss, info_nce_loss
from tfcontrast.losses.lifted import LiftedStructLoss, lifted_struct_loss
from tfcontrast.losses.margin_softmax import ArcFaceLoss, CosFaceLoss, arcface_loss, cosface_loss
from tfcontrast.losses.multisimilarity import MultiSimilarityLoss, multisimilarity_loss
from tfcontrast.losses.negative_sampling import NegativeSamplingLoss, negative_sampling_loss
from tfcontrast.losses.nce import NCELoss, nce_log_noise_mean, nce_loss
from tfcontrast.losses.npairs import NpairsLoss, NpairsMultilabelLoss, npairs_loss, npairs_multilabel_loss
from tfcontrast.losses.ntxent import NTXentLoss, SupConLoss, nt_xent_loss, supcon_loss
from tfcontrast.losses.pn import PNLoss, pn_loss
from tfcontrast.losses.proxy import ProxyAnchorLoss, ProxyNCALoss, proxy_anchor_loss, proxy_nca_loss
from tfcontrast.losses.ranking import MultipleNegativesRankingLoss, multiple_negatives_ranking_loss
from tfcontrast.losses.regression import BYOLLoss, SimSiamLoss, byol_loss, negative_cosine_similarity
from tfcontrast.losses.soft_nearest_neighbor import SoftNearestNeighborLoss, soft_nearest_neighbor_loss
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
from tfcontrast.losses.xbm import XBM

__all__ = [
    "ArcFaceLoss", "BYOLLoss", "BarlowTwinsLoss", "CircleLoss", "ContrastiveLoss", "CosFaceLoss",
    "DistillationLoss", "InfoNCELoss", "LiftedStructLoss", "MultiSimilarityLoss", "MultipleNegativesRankingLoss",
    "NCELoss", "NegativeSamplingLoss", "NTXentLoss", "NpairsLoss",
    "NpairsMultilabelLoss", "PNLoss", "ProxyAnchorLoss", "ProxyNCALoss", "SimSiamLoss", "SimilarityLoss",
    "SoftNearestNeighborLoss", "SupConLoss", "SwAVLoss", "TripletHardLoss", "TripletLoss", "TripletSemiHardLoss",
    "VICRegLoss", "XBM",
    "arcface_loss", "barlow_twins_loss", "byol_loss", "circle_loss", "contrastive_loss", "cosface_loss",
    "distillation_loss", "info_nce_loss", "lifted_struct_loss", "multiple_negatives_ranking_loss", "multisimilarity_loss",
    "nce_log_noise_mean", "nce_loss", "negative_cosine_similarity", "negative_sampling_loss",
    "npairs_loss", "npairs_multilabel_loss", "nt_xent_loss", "pn_loss", "proxy_anchor_loss", "proxy_nca_loss",
    "sinkhorn", "soft_nearest_neighbor_loss", "supcon_loss", "swav_loss", "triplet_hard_loss", "triplet_loss",
    "triplet_semihard_loss", "vicreg_loss", "vicreg_terms",
]
