"""Proxy-Anchor loss on the bundled digits: one trainable proxy per class.

    tfcontrast train --config proxy_anchor_digits --workdir runs/proxy_anchor

``triplet_digits`` with the Proxy-Anchor loss (Kim et al., CVPR 2020) as the
model's loss head, at its registered defaults (margin 0.1, alpha 32; proxies
He-normal as in the authors' code). ``--config.loss.name=proxy_nca`` trains
ProxyNCA (ProxyNCA++ form) the same way.
"""

from tfcontrast.config import load


def get_config():
    return load("triplet_digits", {"loss.name": "proxy_anchor"})  # the loss section: its registered defaults
