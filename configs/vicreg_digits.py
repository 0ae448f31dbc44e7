"""VICReg on the bundled digits.

    tfcontrast train --config vicreg_digits --workdir runs/vicreg

VICReg (Bardes, Ponce and LeCun, "VICReg: Variance-Invariance-Covariance
Regularization for Self-Supervised Learning", ICLR 2022): the two views'
projections are pulled together (invariance) while a hinge keeps every
dimension's standard deviation at 1 or more (variance) and the dimensions are
decorrelated (covariance). The paper's weights (25, 25, 1) and 3-layer
expander, scaled down to 8x8 digits; the other keys are the shared setting
(``tfcontrast configs show base``). ``--config.model.var_weight=0`` removes
the variance hinge: the projections then shrink to a point (the collapse
benchmark, benchmarks/bench_collapse.py).
"""

from tfcontrast.config import base


def get_config():
    c = base("vicreg")
    c.model.projection_dim = 256  # expander output width
    c.model.hidden_dim = 256  # expander hidden width
    c.augment.crop_scale = (0.6, 1.0)  # random resized crop: (min, max) area fraction, in (0, 1]
    c.augment.jitter_prob = 0.0  # no colour jitter: crops, shifts and rotations only
    c.train.steps = 1100  # optimizer steps in all
    c.train.steps_per_epoch = 110  # an epoch: one progress bar, one log line, one checkpoint; divides steps
    c.train.batch_size = 64  # images per step (each seen as two views)
    c.optimizer.warmup_steps = 55  # linear warm-up from 0, < train.steps
    return c
