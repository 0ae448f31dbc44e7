"""Models with custom train steps that train with plain ``model.fit``."""

from tfcontrast.models import encoders, heads, normalization, siamese, ssl
from tfcontrast.models.distill import Distiller
from tfcontrast.models.finetune import FineTuner
from tfcontrast.models.normalization import BatchNormalization, fuse_batch_norm
from tfcontrast.models.siamese import EmbeddingModel, SiameseNetwork
from tfcontrast.models.ssl import (
    BYOL, PIRL, BarlowTwins, DirectPred, HardNegativeMixing, MoCo, SimCLR, SimSiam, SwAV, VICReg,
)
from tfcontrast.models.text import DeCLUTR, DualEncoder, SimCSE

__all__ = [
    "BYOL",
    "BarlowTwins",
    "BatchNormalization",
    "DeCLUTR",
    "DirectPred",
    "Distiller",
    "DualEncoder",
    "EmbeddingModel",
    "FineTuner",
    "HardNegativeMixing",
    "MoCo",
    "PIRL",
    "SiameseNetwork",
    "SimCLR",
    "SimCSE",
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
