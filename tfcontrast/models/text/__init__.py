"""Contrastive sentence-embedding methods on token ids: SimCSE and DeCLUTR."""

from tfcontrast.models.text.declutr import DeCLUTR
from tfcontrast.models.text.simcse import SimCSE

__all__ = ["DeCLUTR", "SimCSE"]
