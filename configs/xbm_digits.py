"""Cross-batch memory (XBM) around the multi-similarity loss on the bundled digits.

    tfcontrast train --config xbm_digits --workdir runs/xbm

``multisimilarity_digits`` whose loss also compares every anchor with the 640
most recent embeddings (8 batches; Wang et al., "Cross-Batch Memory for
Embedding Learning", CVPR 2020), after 100 steps without memory. Any loss that
takes extra candidates (triplet, supcon, multi_similarity, circle, pn,
soft_nearest_neighbor, lifted_struct) has the two keys; 0 turns the memory off.
"""

from tfcontrast.config import load


def get_config():
    return load("multisimilarity_digits", {
        "loss.xbm_memory_size": 640,  # embeddings kept as extra candidates (the current batch included)
        "loss.xbm_warmup_steps": 100,  # steps before the memory is read and filled
    })
