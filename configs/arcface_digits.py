"""ArcFace (additive angular margin) on the bundled digits: one trainable weight vector per class.

    tfcontrast train --config arcface_digits --workdir runs/arcface

``triplet_digits`` with the ArcFace loss (Deng et al., CVPR 2019) as the
model's loss head: a ``[classes, embedding_dim]`` matrix sized from the data
and the projection, trained, checkpointed and exported with the model. The
registered scale 64 suits thousands of identities; ten digit classes train
better at 16. ``--config.loss.name=cosface`` trains CosFace the same way.
"""

from tfcontrast.config import load


def get_config():
    return load("triplet_digits", {
        "loss.name": "arcface",  # the loss section starts from ArcFace's registered defaults (margin 0.5)
        "loss.scale": 16.0,  # logit scale s: smaller for a few classes
    })
