"""SimSiam on the bundled digits.

    tfcontrast train --config simsiam_digits --workdir runs/simsiam

SimSiam (Chen and He, CVPR 2021): no negatives and no target network; a
predictor and a stop-gradient alone keep the representation from collapsing.
The other keys are the shared setting (``tfcontrast configs show base``).
"""

from tfcontrast.config import base


def get_config():
    c = base("simsiam")
    c.model.projection_dim = 256  # projector output width (3 layers, BatchNorm after each)
    c.model.predictor_hidden_dim = 64  # predictor bottleneck width
    return c
