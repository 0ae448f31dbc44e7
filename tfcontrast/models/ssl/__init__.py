"""Self-supervised multi-view methods trained with plain ``model.fit``.

All share :class:`TwoViewModel` (views, one encoder pass per resolution, the
step, collapse metrics); BYOL, DirectPred and MoCo share the EMA targets of
:class:`MomentumModel`; DirectPred is BYOL plus a predictor rule, MoCHi is MoCo
plus :class:`HardNegativeMixing`; PIRL keeps a memory bank instead of a target
network; Barlow Twins and VICReg share :class:`ProjectionLossModel` (a
projector and a loss of the two projections); SwAV is defined on any number of
views (multi-crop). Each method registers itself (:mod:`tfcontrast.registry`)
in its own module.
"""

from tfcontrast.models.ssl.barlow_twins import BarlowTwins
from tfcontrast.models.ssl.base import ProjectionLossModel, TwoViewModel
from tfcontrast.models.ssl.byol import BYOL
from tfcontrast.models.ssl.directpred import DirectPred
from tfcontrast.models.ssl.mochi import HardNegativeMixing
from tfcontrast.models.ssl.moco import MoCo
from tfcontrast.models.ssl.momentum import MomentumModel
from tfcontrast.models.ssl.pirl import PIRL
from tfcontrast.models.ssl.simclr import SimCLR
from tfcontrast.models.ssl.simsiam import SimSiam
from tfcontrast.models.ssl.swav import SwAV
from tfcontrast.models.ssl.vicreg import VICReg

__all__ = [
    "BYOL", "BarlowTwins", "DirectPred", "HardNegativeMixing", "MoCo", "MomentumModel", "PIRL", "ProjectionLossModel",
    "SimCLR", "SimSiam", "SwAV", "TwoViewModel", "VICReg",
]
