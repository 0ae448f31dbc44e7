"""tfcontrast: similarity learning for TensorFlow 2.16+ and Keras 3.

Losses (contrastive, triplet, NT-Xent, SupCon, BYOL/SimSiam), models with
custom train steps (siamese, embedding, SimCLR, BYOL, DirectPred, SimSiam),
tf.distribute with global-batch semantics, and similarity search.

    import tfcontrast as tfc
    loss = tfc.losses.TripletLoss(margin=0.2, mining="semi-hard")
"""

from tfcontrast.version import __version__
from tfcontrast import augment, callbacks, contract, data, distances, distribute, export, index, losses, models, plots, probe
from tfcontrast import fields, registry, text

__all__ = [
    "__version__", "augment", "callbacks", "contract", "data", "distances", "distribute", "export", "fields", "index",
    "losses", "models", "plots", "probe", "registry", "text",
]
