"""BYOL: Bootstrap Your Own Latent (Grill et al., NeurIPS 2020).

Online encoder -> projector -> predictor (MLPs: Linear(hidden)-BN-ReLU-Linear)
regresses the EMA target's projection of the other view with
``2 - 2 cos(q, stopgrad(z'))``, symmetrised; the target follows the online
weights with the cosine tau schedule. All the machinery lives in
:class:`tfcontrast.models.ssl.momentum.MomentumTwoViewModel`; BYOL only
chooses its heads.
"""

from __future__ import annotations

import keras

from tfcontrast.models.heads import mlp_head
from tfcontrast.models.ssl.momentum import MomentumTwoViewModel


@keras.saving.register_keras_serializable(package="tfcontrast")
class BYOL(MomentumTwoViewModel):
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
            predictor=mlp_head(projection_dim, hidden_dim, name="predictor"),
            tau_base=tau_base,
            total_steps=total_steps,
            augment=augment,
            collapse_metrics=collapse_metrics,
            **kwargs,
        )

    def get_config(self):
        return {**super().get_config(), "projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim}
