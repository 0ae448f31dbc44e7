"""Self-supervised two-view methods trained with plain ``model.fit``.

All four share :class:`TwoViewModel` (views, one encoder pass, the step,
collapse metrics); BYOL and DirectPred share the EMA target of
:class:`MomentumTwoViewModel`; DirectPred is BYOL plus a predictor rule.
"""

from tfcontrast.models.ssl.base import TwoViewModel
from tfcontrast.models.ssl.byol import BYOL
from tfcontrast.models.ssl.directpred import DirectPred
from tfcontrast.models.ssl.momentum import MomentumTwoViewModel
from tfcontrast.models.ssl.simclr import SimCLR
from tfcontrast.models.ssl.simsiam import SimSiam

__all__ = ["BYOL", "DirectPred", "MomentumTwoViewModel", "SimCLR", "SimSiam", "TwoViewModel"]
