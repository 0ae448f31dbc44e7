"""MoCHi (MoCo v2 with hard negative mixing) on the bundled digits.

    tfcontrast train --config mochi_digits --workdir runs/mochi

MoCHi (Kalantidis et al., NeurIPS 2020): MoCo v2 (``configs/moco_digits.py``)
plus, for every query, synthetic negatives mixed from the ``top_k`` queue
entries most similar to it: ``num_mixed`` mixtures of two of them and
``num_query_mixed`` mixtures of the query itself with one (coefficient < 0.5),
from step ``mixing_start_step`` on (after the warm-up).
"""

import ml_collections

from tfcontrast.config import base, load


def get_config():
    c = base("mochi")
    for key, value in load("moco_digits").items():  # every key of moco_digits (MoCo's model keys included)
        if isinstance(value, ml_collections.ConfigDict):
            c[key].update(value.to_dict())
        elif key != "method":
            c[key] = value
    c.model.top_k = 128  # N: the hardest queue entries mixed from, <= queue_size
    c.model.num_mixed = 128  # s: mixtures of two hard negatives per query
    c.model.num_query_mixed = 32  # s': mixtures of the query with a hard negative per query
    c.model.mixing_start_step = 50  # first step with mixing: after the warm-up
    return c
