"""Models with custom train steps that train with plain ``model.fit``."""

from tfcontrast.models import encoders, heads, normalization, siamese, ssl
from tfcontrast.models.normalization import BatchNormalization, fuse_batch_norm
from tfcontrast.models.siamese import EmbeddingModel, SiameseNetwork
from tfcontrast.models.ssl import BYOL, DirectPred, SimCLR, SimSiam

__all__ = [
    "BYOL",
    "BatchNormalization",
    "DirectPred",
    "EmbeddingModel",
    "SiameseNetwork",
    "SimCLR",
    "SimSiam",
    "encoders",
    "fuse_batch_norm",
    "heads",
    "normalization",
    "siamese",
    "ssl",
]
