"""PIRL with a jigsaw pretext on the bundled digits.

    tfcontrast train --config pirl_digits --workdir runs/pirl

PIRL (Misra and van der Maaten, CVPR 2020): an image and its shuffled jigsaw
tiles must both match the image's entry in a memory bank (one EMA
representation per training digit) against negatives drawn from the bank.
An 8 x 8 digit is cut into 2 x 2 tiles of 4 x 4 pixels, each resized to 8 x 8
for the encoder. The batches carry each image's index (batch kind
``indexed_views``); ``model.memory_size`` None sizes the bank to the training
split. The other keys are the shared setting (``tfcontrast configs show base``)
and PIRL's registered defaults.

One departure from the paper: the NCE noise level mu is re-estimated on every
step (``noise_momentum`` 0) instead of fixed on the first batch (1, NPID and
PIRL's practice). Digits' representations cluster by class, so the batch
estimate of log mu grows from 1.7 (random bank) to 9-12; with the first
batch's mu the 1,024 negatives outweigh the positive and the bank loses its
classes (kNN 0.803, nuisance kNN 0.292 in benchmarks/RESULTS.md section 14,
below the random encoder).
"""

from tfcontrast.config import base


def get_config():
    c = base("pirl")
    c.model.projection_dim = 64  # width of the heads f, g and the memory entries
    c.model.num_negatives = 1024  # N: memory entries drawn as negatives per step
    c.model.jigsaw_grid = 2  # tiles per side: 2 x 2 tiles of 4 x 4 px on 8 x 8 digits
    c.model.noise_momentum = 0.0  # NCE noise level re-estimated every step (1 = fixed on the first batch fails here)
    return c
