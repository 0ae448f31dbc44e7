"""Models with custom train steps that train with plain ``model.fit``."""

from tfcontrast.models import encoders, heads, siamese, ssl
from tfcontrast.models.distill import Distiller
from tfcontrast.models.finetune import FineTuner
from tfcontrast.models.siamese import EmbeddingModel, SiameseNetwork
from tfcontrast.models.ssl import BYOL, DirectPred, SimCLR, SimSiam

__all__ = [
    "BYOL",
    "DirectPred",
    "Distiller",
    "EmbeddingModel",
    "FineTuner",
    "SiameseNetwork",
    "SimCLR",
    "SimSiam",
    "encoders",
    "heads",
    "siamese",
    "ssl",
]
