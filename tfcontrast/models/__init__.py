"""Models with custom train steps that train with plain ``model.fit``."""

from tfcontrast.models import encoders, heads, normalization, siamese, ssl
from tfcontrast.models.distill import Distiller
from tfcontrast.models.finetune import FineTuner
from tfcontrast.models.normalization import BatchNormalization, fuse_batch_norm
from tfcontrast.models.siamese import EmbeddingModel, SiameseNetwork
from tfcontrast.models.ssl import BYOL, BarlowTwins, DirectPred, SimCLR, SimSiam, SwAV, VICReg

__all__ = [
    "BYOL",
    "BarlowTwins",
    "BatchNormalization",
    "DirectPred",
    "Distiller",
    "EmbeddingModel",
    "FineTuner",
    "SiameseNetwork",
    "SimCLR",
    "SimSiam",
    "SwAV",
    "VICReg",
    "encoders",
    "fuse_batch_norm",
    "heads",
    "normalization",
    "siamese",
    "ssl",
]
