"""Self-supervised two-view methods trained with plain ``model.fit``.

All share :class:`TwoViewModel` (views, one encoder pass, the step, collapse
metrics); BYOL, DirectPred and MoCo share the EMA targets of
:class:`MomentumModel`; DirectPred is BYOL plus a predictor rule, MoCHi is MoCo
plus :class:`HardNegativeMixing`; PIRL keeps a memory bank instead of a target
network. Each method registers itself (:mod:`tfcontrast.registry`) in its own
module.
"""

from tfcontrast.models.ssl.base import TwoViewModel
from tfcontrast.models.ssl.byol import BYOL
from tfcontrast.models.ssl.directpred import DirectPred
from tfcontrast.models.ssl.mochi import HardNegativeMixing
from tfcontrast.models.ssl.moco import MoCo
from tfcontrast.models.ssl.momentum import MomentumModel
from tfcontrast.models.ssl.pirl import PIRL
from tfcontrast.models.ssl.simclr import SimCLR
from tfcontrast.models.ssl.simsiam import SimSiam

__all__ = ["BYOL", "DirectPred", "HardNegativeMixing", "MoCo", "MomentumModel", "PIRL", "SimCLR", "SimSiam", "TwoViewModel"]
