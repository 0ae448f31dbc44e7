"""Models with custom train steps that train with plain ``model.fit``."""

from tfcontrast.models import heads

__all__ = ["heads"]
