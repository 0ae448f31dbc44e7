"""MoCo v2 on the bundled digits.

    tfcontrast train --config moco_digits --workdir runs/moco

MoCo v2 (He et al., CVPR 2020; Chen et al. 2020): queries from an MLP-headed
encoder contrast with the keys of its EMA copy and a FIFO queue of past keys.
The queue (1,024 keys, four steps of the 256-image batches) stays below the
1,437 training digits, so it rarely holds a key of the query's own image. The
other keys are the shared setting (``tfcontrast configs show base``) and MoCo's
registered defaults.
"""

from tfcontrast.config import base


def get_config():
    c = base("moco")
    c.model.projection_dim = 64  # projector output width
    c.model.hidden_dim = 256  # projector hidden width
    c.model.queue_size = 1024  # K: past keys kept as negatives; keep it below the number of training images
    c.model.temperature = 0.2  # InfoNCE temperature, > 0
    return c
