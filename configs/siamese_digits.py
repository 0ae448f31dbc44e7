"""A siamese network with the contrastive loss on the bundled digits (supervised).

    tfcontrast train --config siamese_digits --workdir runs/siamese

One shared encoder embeds both images of a labelled pair; the contrastive loss
(Hadsell, Chopra and LeCun, CVPR 2006) pulls same-class pairs together and
pushes other pairs at least ``loss.margin`` (1.0) apart. The embedding is the
encoder's output. The views, optimizer and schedule are those of ``triplet_digits``.
"""

from tfcontrast.config import base, load


def get_config():
    c = base("siamese")
    labelled = load("triplet_digits")  # the labelled setting
    c.augment = labelled.augment  # milder views than the self-supervised ones, one per image and step
    c.optimizer = labelled.optimizer  # Adam at 1e-3, no weight decay, 20 warm-up steps
    c.train.steps = labelled.train.steps  # 300 optimizer steps
    return c
