"""SwAV with multi-crop on the bundled digits.

    tfcontrast train --config swav_digits --workdir runs/swav

SwAV (Caron, Misra, Mairal, Goyal, Bojanowski and Joulin, "Unsupervised
Learning of Visual Features by Contrasting Cluster Assignments", NeurIPS
2020): every crop predicts the equipartitioned Sinkhorn codes of the large
crops over trained prototypes. Multi-crop scaled down to 8x8 digits: 2 large
8x8 crops and 4 small 5x5 ones per image (the encoder is made
resolution-free, same weights); 30 prototypes (3 per class), prototypes
frozen for the first 100 steps. The other keys are the shared setting
(``tfcontrast configs show base``) and SwAV's registered defaults
(temperature 0.1, epsilon 0.05, 3 Sinkhorn iterations). A huge
``--config.model.epsilon`` makes the codes uniform: nothing is learnt (the
collapse benchmark, benchmarks/bench_collapse.py).
"""

from tfcontrast.config import base


def get_config():
    c = base("swav")
    c.model.projection_dim = 64  # width of the projection and of the prototypes
    c.model.hidden_dim = 256  # projector hidden width
    c.model.num_prototypes = 30  # K trained prototypes (clusters)
    c.model.freeze_prototypes_steps = 100  # the prototypes are not updated for these first steps
    c.augment.jitter_prob = 0.0  # no colour jitter: crops, shifts and rotations only
    c.train.steps = 1100  # optimizer steps in all
    c.train.steps_per_epoch = 110  # an epoch: one progress bar, one log line, one checkpoint; divides steps
    c.train.batch_size = 64  # images per step (each seen as num_global + num_local views)
    c.train.num_local = 4  # small crops per image
    c.train.local_size = 5  # side of the small crops in pixels
    c.train.global_scale = (0.6, 1.0)  # (min, max) area fraction of the large crops
    c.train.local_scale = (0.25, 0.6)  # (min, max) area fraction of the small crops
    c.optimizer.warmup_steps = 55  # linear warm-up from 0, < train.steps
    return c
