"""BYOL on the bundled digits.

    tfcontrast train --config byol_digits --workdir runs/byol

BYOL (Grill et al., NeurIPS 2020): an online network with a trained MLP
predictor regresses an EMA target network's projection of the other view. The
other keys are the shared setting (``tfcontrast configs show base``) and BYOL's
registered defaults (tau_base 0.99).
"""

from tfcontrast.config import base


def get_config():
    c = base("byol")
    c.model.projection_dim = 64  # projector and predictor output width
    c.model.hidden_dim = 256  # projector and predictor hidden width
    return c
