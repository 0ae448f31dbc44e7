"""VICReg (Bardes, Ponce and LeCun, ICLR 2022).

Encoder -> expander (three layers: Linear-BN-ReLU twice, then Linear, the
Barlow Twins architecture the paper uses); the loss keeps the two views'
projections close (invariance), every projection dimension's standard
deviation at 1 or more over the global batch (variance) and the dimensions
decorrelated (covariance):

    L = sim_weight * inv + var_weight * var + cov_weight * cov

(:class:`tfcontrast.losses.VICRegLoss`, the convention of the authors' code).
The variance hinge is what prevents complete collapse; without it
(``var_weight=0``) nothing stops every projection shrinking to one point.
"""

from __future__ import annotations

import keras

from tfcontrast import losses
from tfcontrast.fields import Float, Int
from tfcontrast.models.ssl.base import ProjectionLossModel
from tfcontrast.registry import register_method


@keras.saving.register_keras_serializable(package="tfcontrast")
class VICReg(ProjectionLossModel):
    """VICReg trained with ``model.fit`` on unlabelled images or ``(view_1, view_2)`` batches.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``; kept after training.
        projection_dim: expander output width (paper: 8192).
        hidden_dim: expander hidden width (paper: 8192).
        sim_weight: invariance weight (lambda in the paper: 25), >= 0.
        var_weight: variance weight (mu: 25), >= 0.
        cov_weight: covariance weight (nu: 1), >= 0.
        augment, collapse_metrics: see :class:`tfcontrast.models.ssl.base.TwoViewModel`.

    Raises:
        ValueError: a non-positive width or a negative weight.

    Example:
        >>> encoder = tfc.models.encoders.digits_cnn((8, 8, 1))
        >>> model = tfc.models.VICReg(encoder, projection_dim=256, hidden_dim=256)
        >>> model.compile(optimizer=keras.optimizers.AdamW(2e-3))
        >>> views = tfc.augment.TwoViewAugmentation("simclr", (8, 8), crop_scale=(0.5, 1.0))
        >>> model.fit(tfc.augment.two_view_dataset(tfc.data.load_digits().x_train, 256, views), epochs=1)  # doctest: +SKIP
    """

    def __init__(
        self,
        encoder: keras.Model,
        projection_dim: int = 2048,
        hidden_dim: int = 2048,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        loss = losses.VICRegLoss(sim_weight=sim_weight, var_weight=var_weight, cov_weight=cov_weight)
        self.sim_weight, self.var_weight, self.cov_weight = loss.sim_weight, loss.var_weight, loss.cov_weight
        super().__init__(
            encoder, loss, projection_dim, hidden_dim, augment=augment, collapse_metrics=collapse_metrics, **kwargs
        )

    def get_config(self):
        return {
            **super().get_config(),
            "sim_weight": self.sim_weight,
            "var_weight": self.var_weight,
            "cov_weight": self.cov_weight,
        }


register_method(
    "vicreg",
    VICReg,
    batch="two_views",
    summary="VICReg (Bardes et al., ICLR 2022): invariance, a variance hinge and decorrelation of the projections",
    fields={
        "projection_dim": Int(doc="expander output width (3 layers)", min=1),
        "hidden_dim": Int(doc="expander hidden width", min=1),
        "sim_weight": Float(doc="weight of the invariance (mean squared error) term, >= 0", within="[0, inf)"),
        "var_weight": Float(doc="weight of the variance hinge (std >= 1 per dimension), >= 0", within="[0, inf)"),
        "cov_weight": Float(doc="weight of the covariance (decorrelation) term, >= 0", within="[0, inf)"),
    },
    example={"projection_dim": 16, "hidden_dim": 32, "sim_weight": 1.0, "var_weight": 1.0, "cov_weight": 0.04},
)
