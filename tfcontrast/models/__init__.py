"""Models with custom train steps that train with plain ``model.fit``."""

from tfcontrast.models import encoders, heads, siamese, ssl
from tfcontrast.models.siamese import EmbeddingModel, SiameseNetwork
from tfcontrast.models.ssl import BYOL, DirectPred, SimCLR, SimSiam
from tfcontrast.models.text import DeCLUTR, DualEncoder, SimCSE

__all__ = [
    "BYOL",
    "DeCLUTR",
    "DirectPred",
    "DualEncoder",
    "EmbeddingModel",
    "SiameseNetwork",
    "SimCLR",
    "SimCSE",
    "SimSiam",
    "encoders",
    "heads",
    "siamese",
    "ssl",
]
