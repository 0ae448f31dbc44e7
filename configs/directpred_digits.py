"""DirectPred on the bundled digits: the default run.

    tfcontrast train --config directpred_digits --workdir runs/demo

DirectPred (Tian, Chen and Ganguli, ICML 2021) is BYOL whose linear predictor
is set from the eigendecomposition of the projections' correlation matrix
instead of being trained. The tuned setting of benchmarks/bench_ssl_digits.py;
the other keys are the shared setting (``tfcontrast configs show base``) and
DirectPred's registered defaults (rho 0.3, eps 0.01, freq 1). Override any key
on the command line, e.g. ``--config.optimizer.lr=3e-3`` or ``--config.train.steps=1000``.
"""

from tfcontrast.config import base


def get_config():
    c = base("directpred")
    c.model.projection_dim = 64  # projector output width d (the predictor W_p is d x d)
    c.model.hidden_dim = 256  # projector hidden width
    c.model.tau_base = 0.98  # EMA rate of the target network at step 0, rising to 1 (cosine), in [0, 1)
    c.augment.crop_scale = (0.6, 1.0)  # random resized crop: (min, max) area fraction, in (0, 1]
    c.augment.jitter_prob = 0.0  # no colour jitter: crops, shifts and rotations only
    c.optimizer.lr = 4e-3  # peak learning rate, > 0
    c.optimizer.warmup_steps = 55  # linear warm-up from 0, < train.steps
    c.train.steps = 1100  # optimizer steps in all
    c.train.steps_per_epoch = 110  # an epoch: one progress bar, one log line, one checkpoint; divides steps
    c.train.batch_size = 64  # images per step (each seen as two views)
    return c
