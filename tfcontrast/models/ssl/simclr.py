"""SimCLR (Chen, Kornblith, Norouzi and Hinton, ICML 2020).

Encoder -> projector (Linear-BN-ReLU-Linear); the NT-Xent loss pulls the two
views of an example together against every other view of the global batch
(gathered across replicas, :class:`tfcontrast.losses.NTXentLoss`).
``head_layers=3`` gives SimCLRv2's deeper projector (Linear-BN-ReLU twice,
then Linear; Chen et al., "Big Self-Supervised Models are Strong
Semi-Supervised Learners", NeurIPS 2020), whose first layer
:class:`tfcontrast.models.FineTuner` can keep (``from_layer=1``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import losses
from tfcontrast.fields import Float, Int
from tfcontrast.models.heads import mlp_head
from tfcontrast.models.ssl.base import TwoViewModel
from tfcontrast.registry import register_method


@keras.saving.register_keras_serializable(package="tfcontrast")
class SimCLR(TwoViewModel):
    """SimCLR trained with ``model.fit`` on unlabelled images or ``(view_1, view_2)`` batches.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``; kept after training.
        projection_dim: projector output width (paper: 128).
        hidden_dim: projector hidden width (default: the encoder's feature width).
        head_layers: Dense layers of the projector: 2 (SimCLR, the default), 3 (SimCLRv2), 1 (linear).
        temperature: NT-Xent temperature (> 0; paper: 0.1 to 0.5).
        augment, collapse_metrics: see :class:`tfcontrast.models.ssl.base.TwoViewModel`.
    """

    def __init__(
        self,
        encoder: keras.Model,
        projection_dim: int = 128,
        hidden_dim: int | None = None,
        temperature: float = 0.1,
        augment=None,
        collapse_metrics: bool = True,
        head_layers: int = 2,
        **kwargs,
    ):
        super().__init__(encoder, augment=augment, collapse_metrics=collapse_metrics, **kwargs)
        self.contrastive_loss = losses.NTXentLoss(temperature)
        self.temperature = self.contrastive_loss.temperature
        self.projection_dim = projection_dim
        self.hidden_dim = hidden_dim
        if not isinstance(head_layers, int) or isinstance(head_layers, bool) or head_layers < 1:
            raise ValueError(f"`head_layers` must be an int >= 1, got {head_layers!r}.")
        self.head_layers = head_layers
        self.projector = mlp_head(projection_dim, hidden_dim or self.feature_dim, head_layers, name="projector")
        self.projector.build((None, self.feature_dim))
        self.built = True  # every sublayer is built: fit, save and BackupAndRestore can start

    def two_view_loss(self, view_1, view_2, training):
        representations = self.encode_views(view_1, view_2, training)
        projections = self.projector(representations, training=training)
        z_1, z_2 = tf.split(projections, 2, axis=0)
        return self.contrastive_loss(z_1, z_2), projections, representations

    def get_config(self):
        return {
            **super().get_config(),
            "projection_dim": self.projection_dim,
            "hidden_dim": self.hidden_dim,
            "temperature": self.temperature,
            "head_layers": self.head_layers,
        }


register_method(
    "simclr",
    SimCLR,
    batch="two_views",
    summary="SimCLR (Chen et al., ICML 2020): NT-Xent between the two views of every image, the rest of the batch as negatives",
    fields={
        "projection_dim": Int(doc="projector output width", min=1),
        "hidden_dim": Int(doc="projector hidden width; None = the encoder's feature width", min=1, optional=True),
        "temperature": Float(doc="NT-Xent temperature, > 0", within="(0, inf)"),
        "head_layers": Int(doc="Dense layers of the projector: 2 (SimCLR), 3 (SimCLRv2's deeper head), 1 (linear)", min=1),
    },
    example={"projection_dim": 16, "hidden_dim": 32, "temperature": 0.2},
)
