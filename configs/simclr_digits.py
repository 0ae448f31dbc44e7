"""SimCLR on the bundled digits.

    tfcontrast train --config simclr_digits --workdir runs/simclr

SimCLR (Chen et al., ICML 2020): the NT-Xent loss pulls the two views of an
image together against every other view of the batch. The other keys are the
shared setting (``tfcontrast configs show base``) and SimCLR's registered
defaults.
"""

from tfcontrast.config import base


def get_config():
    c = base("simclr")
    c.model.projection_dim = 64  # projector output width
    c.model.hidden_dim = 256  # projector hidden width
    c.model.temperature = 0.2  # NT-Xent temperature, > 0
    return c
