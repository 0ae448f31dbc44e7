"""Models with custom train steps that train with plain ``model.fit``."""

from tfcontrast.models import encoders, heads, ssl
from tfcontrast.models.ssl import BYOL, DirectPred, SimCLR, SimSiam

__all__ = ["BYOL", "DirectPred", "SimCLR", "SimSiam", "encoders", "heads", "ssl"]
