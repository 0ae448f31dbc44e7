"""BYOL: Bootstrap Your Own Latent (Grill et al., NeurIPS 2020).

Online encoder -> projector -> predictor (MLPs: Linear(hidden)-BN-ReLU-Linear)
regresses the EMA target's projection of the other view, symmetrised over the
two view orders:

    L = ||q(v1)~ - z'(v2)~||^2 + ||q(v2)~ - z'(v1)~||^2,   x~ = x / ||x||,

i.e. ``(2 - 2 cos) + (2 - 2 cos)`` (:class:`tfcontrast.losses.BYOLLoss`). The
EMA target and its tau schedule are the momentum base's
(:class:`tfcontrast.models.ssl.momentum.MomentumModel`); BYOL chooses its heads
and its loss.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import losses
from tfcontrast.fields import Float, Int
from tfcontrast.models.heads import mlp_head
from tfcontrast.models.ssl.momentum import MomentumModel, scheduled_builder
from tfcontrast.registry import register_method


@keras.saving.register_keras_serializable(package="tfcontrast")
class BYOL(MomentumModel):
    """BYOL trained with ``model.fit`` on unlabelled images or ``(view_1, view_2)`` batches.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``; kept after training.
        projection_dim: output width of projector and predictor (paper: 256).
        hidden_dim: hidden width of both MLPs (paper: 4096).
        tau_base: EMA rate at step 0 (paper: 0.996 for long runs; 0.99 here).
        total_steps: planned steps K of the tau schedule; default: from ``fit``.
        augment: callable drawing a view in-step when ``fit`` gets plain images.
        collapse_metrics: log projection std and effective rank.

    Example:
        >>> model = BYOL(encoder, projection_dim=64, hidden_dim=256)  # doctest: +SKIP
        >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3))      # doctest: +SKIP
        >>> model.fit(two_view_dataset, epochs=10)                     # doctest: +SKIP
    """

    def __init__(
        self,
        encoder: keras.Model,
        projection_dim: int = 256,
        hidden_dim: int = 4096,
        tau_base: float = 0.99,
        total_steps: int | None = None,
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        self.hidden_dim = hidden_dim
        super().__init__(
            encoder,
            projector=mlp_head(projection_dim, hidden_dim, name="projector"),
            predictor=self.make_predictor(projection_dim, hidden_dim),
            tau_base=tau_base,
            total_steps=total_steps,
            augment=augment,
            collapse_metrics=collapse_metrics,
            **kwargs,
        )
        self.regression_loss = losses.BYOLLoss()

    def make_predictor(self, projection_dim: int, hidden_dim: int) -> keras.layers.Layer:
        """The predictor head (called before the base is initialised): an MLP like the projector."""
        return mlp_head(projection_dim, hidden_dim, name="predictor")

    def predict_head(self, projections: tf.Tensor, training: bool) -> tf.Tensor:
        return self.predictor(projections, training=training)

    def two_view_loss(self, view_1, view_2, training):
        representations = self.encode_views(view_1, view_2, training)
        projections = self.projector(representations, training=training)
        predictions = self.predict_head(projections, training)
        targets = self.target_projections(view_1, view_2, training)
        q_1, q_2 = tf.split(predictions, 2, axis=0)
        t_1, t_2 = tf.split(targets, 2, axis=0)
        loss = self.regression_loss(q_1, t_2) + self.regression_loss(q_2, t_1)
        return loss, projections, representations

    def get_config(self):
        return {**super().get_config(), "projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim}


BYOL_FIELDS = {
    "projection_dim": Int(doc="projector and predictor output width", min=1),
    "hidden_dim": Int(doc="projector and predictor hidden width", min=1),
    "tau_base": Float(doc="EMA rate of the target network at step 0, rising to 1 (cosine), in [0, 1)", within="[0, 1)"),
}

register_method(
    "byol",
    BYOL,
    batch="two_views",
    summary="BYOL (Grill et al., NeurIPS 2020): a predictor regresses an EMA target's projection of the other view",
    fields=BYOL_FIELDS,
    build=scheduled_builder(BYOL),
    example={"projection_dim": 16, "hidden_dim": 32, "tau_base": 0.9},
)
