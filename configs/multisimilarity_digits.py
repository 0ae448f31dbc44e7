"""Multi-similarity loss on the bundled digits (supervised, TF Similarity's MultiSimilarityLoss).

    tfcontrast train --config multisimilarity_digits --workdir runs/ms

``triplet_digits`` with the multi-similarity loss (Wang et al., CVPR 2019) at
its registered defaults (TF Similarity's: cosine distance, alpha 2, beta 40,
epsilon 0.1, lambda 0.5). The other TF Similarity and TF Addons pair losses
train the same way: ``--config.loss.name=circle`` (or ``pn``,
``soft_nearest_neighbor``, ``lifted_struct``).
"""

from tfcontrast.config import load


def get_config():
    return load("triplet_digits", {"loss.name": "multi_similarity"})  # the loss section: its registered defaults
