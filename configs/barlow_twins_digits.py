"""Barlow Twins on the bundled digits.

    tfcontrast train --config barlow_twins_digits --workdir runs/barlow_twins

Barlow Twins (Zbontar, Jing, Misra, LeCun and Deny, "Barlow Twins:
Self-Supervised Learning via Redundancy Reduction", ICML 2021): the
cross-correlation matrix of the two views' standardised projections is driven
to the identity (invariance on the diagonal, decorrelated dimensions off it).
The paper's 3-layer projector, scaled down to 8x8 digits; the other keys are
the shared setting (``tfcontrast configs show base``) and Barlow Twins'
registered defaults (lambda_ 5e-3). ``--config.model.lambda_=0`` removes the
redundancy term: the dimensions then carry the same feature (the collapse
benchmark, benchmarks/bench_collapse.py).
"""

from tfcontrast.config import base


def get_config():
    c = base("barlow_twins")
    c.model.projection_dim = 256  # projector output width d (the loss's cost grows as d^2)
    c.model.hidden_dim = 256  # projector hidden width
    c.augment.crop_scale = (0.6, 1.0)  # random resized crop: (min, max) area fraction, in (0, 1]
    c.augment.jitter_prob = 0.0  # no colour jitter: crops, shifts and rotations only
    c.train.steps = 1100  # optimizer steps in all
    c.train.steps_per_epoch = 110  # an epoch: one progress bar, one log line, one checkpoint; divides steps
    c.train.batch_size = 64  # images per step (each seen as two views)
    c.optimizer.warmup_steps = 55  # linear warm-up from 0, < train.steps
    return c
