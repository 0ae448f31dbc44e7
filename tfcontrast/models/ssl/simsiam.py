"""SimSiam (Chen and He, "Exploring Simple Siamese Representation Learning", CVPR 2021).

Encoder -> projector (3 layers, BN after each, the last without ReLU) ->
predictor (bottleneck Linear-BN-ReLU-Linear). No target network and no
negatives: the stop-gradient alone prevents collapse,

    L = D(p_1, stopgrad(z_2)) / 2 + D(p_2, stopgrad(z_1)) / 2,   D = -cos.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import losses
from tfcontrast.fields import Int
from tfcontrast.models.heads import mlp_head
from tfcontrast.models.ssl.base import TwoViewModel
from tfcontrast.registry import register_method


@keras.saving.register_keras_serializable(package="tfcontrast")
class SimSiam(TwoViewModel):
    """SimSiam trained with ``model.fit`` on unlabelled images or ``(view_1, view_2)`` batches.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``; kept after training.
        projection_dim: projector output width (paper: 2048).
        predictor_hidden_dim: predictor bottleneck width (paper: 512, d/4).
        augment, collapse_metrics: see :class:`tfcontrast.models.ssl.base.TwoViewModel`.
    """

    def __init__(
        self,
        encoder: keras.Model,
        projection_dim: int = 2048,
        predictor_hidden_dim: int | None = None,
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        super().__init__(encoder, augment=augment, collapse_metrics=collapse_metrics, **kwargs)
        self.projection_dim = projection_dim
        self.predictor_hidden_dim = predictor_hidden_dim or max(projection_dim // 4, 1)
        self.projector = mlp_head(
            projection_dim, projection_dim, num_layers=3, output_batch_norm=True, name="projector"
        )
        self.predictor = mlp_head(projection_dim, self.predictor_hidden_dim, name="predictor")
        self.projector.build((None, self.feature_dim))
        self.predictor.build((None, projection_dim))
        self.regression_loss = losses.SimSiamLoss()
        self.built = True  # every sublayer is built: fit, save and BackupAndRestore can start

    def two_view_loss(self, view_1, view_2, training):
        representations = self.encode_views(view_1, view_2, training)
        projections = self.projector(representations, training=training)
        predictions = self.predictor(projections, training=training)
        z_1, z_2 = tf.split(projections, 2, axis=0)
        p_1, p_2 = tf.split(predictions, 2, axis=0)
        loss = 0.5 * self.regression_loss(p_1, z_2) + 0.5 * self.regression_loss(p_2, z_1)
        return loss, projections, representations

    def get_config(self):
        return {
            **super().get_config(),
            "projection_dim": self.projection_dim,
            "predictor_hidden_dim": self.predictor_hidden_dim,
        }


register_method(
    "simsiam",
    SimSiam,
    batch="two_views",
    summary="SimSiam (Chen and He, CVPR 2021): a predictor matches the stop-gradient projection of the other view",
    fields={
        "projection_dim": Int(doc="projector output width (3 layers, BatchNorm after each)", min=1),
        "predictor_hidden_dim": Int(doc="predictor bottleneck width; None = projection_dim // 4", min=1, optional=True),
    },
    # A 4-unit bottleneck (16 // 4) can zero a whole example after the ReLU: its prediction is then the
    # bias (0 at init) and the cosine's 1/||p|| gradient overflows float16 at any usable loss scale.
    example={"projection_dim": 16, "predictor_hidden_dim": 16},
)
