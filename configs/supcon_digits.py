"""Supervised contrastive learning (SupCon) on the bundled digits.

    tfcontrast train --config supcon_digits --workdir runs/supcon

``triplet_digits`` with the supervised contrastive loss (Khosla et al.,
NeurIPS 2020, L_out) at its registered temperature 0.1: every other example of
the anchor's class is a positive. The same as
``--config triplet_digits --config.loss.name=supcon``.
"""

from tfcontrast.config import load


def get_config():
    return load("triplet_digits", {"loss.name": "supcon"})  # the loss section: SupCon's defaults
