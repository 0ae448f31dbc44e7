"""Triplet loss with semi-hard mining on the bundled digits (supervised).

    tfcontrast train --config triplet_digits --workdir runs/triplet

Encoder -> linear projection -> L2 normalisation (the ``embedding`` method),
trained on P x K batches with the triplet loss (Schroff et al., FaceNet, CVPR
2015), mining the negatives inside each batch. Any registered label loss
trains the same model: ``--config.loss.name=supcon`` (the ``loss`` section
then starts from that loss's defaults).
"""

from tfcontrast.config import base


def get_config():
    c = base("embedding")
    c.model.embedding_dim = 64  # width of the linear projection after the encoder; None = no projection
    c.loss.name = "triplet"  # a registered loss called on (labels, embeddings)
    c.loss.margin = 0.2  # triplet margin, >= 0 (unused when soft)
    # The labelled setting: milder views (one per image and step), Adam without weight decay, fewer steps.
    c.augment.crop_scale = (0.8, 1.0)  # random resized crop: (min, max) area fraction, in (0, 1]
    c.augment.jitter_prob = 0.0  # no colour jitter
    c.augment.max_shift = 1  # integer shifts up to this many pixels per axis
    c.augment.max_degrees = 10.0  # rotations up to this many degrees
    c.optimizer.name = "adam"  # adamw | adam | sgd | lamb | lion
    c.optimizer.lr = 1e-3  # peak learning rate, > 0
    c.optimizer.weight_decay = 0.0  # no weight decay
    c.optimizer.warmup_steps = 20  # linear warm-up from 0, < train.steps
    c.train.steps = 300  # optimizer steps in all
    return c
