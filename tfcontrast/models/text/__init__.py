"""Contrastive sentence-embedding methods on token ids: SimCSE, DeCLUTR and a dual encoder for (query, passage) pairs."""

from tfcontrast.models.text.declutr import DeCLUTR
from tfcontrast.models.text.dual_encoder import DualEncoder
from tfcontrast.models.text.simcse import SimCSE

__all__ = ["DeCLUTR", "DualEncoder", "SimCSE"]
