"""Barlow Twins (Zbontar, Jing, Misra, LeCun and Deny, ICML 2021).

Encoder -> projector (the paper's three layers: Linear-BN-ReLU twice, then
Linear); the loss standardises every projection dimension over the global
batch and drives the two views' cross-correlation matrix to the identity:

    L = sum_i (1 - C_ii)^2 + lambda_ * sum_{i != j} C_ij^2

(:class:`tfcontrast.losses.BarlowTwinsLoss`). The diagonal makes the
projection invariant to the augmentations; the off-diagonal term decorrelates
its dimensions, which is what keeps them from all carrying the same feature.
No negatives, no predictor, no momentum encoder.
"""

from __future__ import annotations

import keras

from tfcontrast import losses
from tfcontrast.fields import Float, Int
from tfcontrast.models.ssl.base import ProjectionLossModel
from tfcontrast.registry import register_method


@keras.saving.register_keras_serializable(package="tfcontrast")
class BarlowTwins(ProjectionLossModel):
    """Barlow Twins trained with ``model.fit`` on unlabelled images or ``(view_1, view_2)`` batches.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``; kept after training.
        projection_dim: projector output width d (paper: 8192; the loss's cost grows as d^2).
        hidden_dim: projector hidden width (paper: 8192).
        lambda_: weight of the off-diagonal (redundancy) term, >= 0 (paper: 5e-3).
        augment, collapse_metrics: see :class:`tfcontrast.models.ssl.base.TwoViewModel`.

    Raises:
        ValueError: a non-positive width or a negative ``lambda_``.

    The collapse indicators in the progress bar: ``proj_std`` and ``erank``
    as for every two-view method, and ``proj_erank``, the effective rank of the
    projections: with ``lambda_=0`` nothing decorrelates the dimensions and it
    falls (on digits, 256-d: 9 against 40 for the packaged run) while
    ``proj_std`` (of standardised dimensions) does not move
    (:class:`~tfcontrast.models.ssl.base.ProjectionLossModel`; benchmarks/bench_collapse.py).
    :func:`tfcontrast.losses.barlow_twins.cross_correlation` of the two views'
    projections shows how close C is to the identity.

    Example:
        >>> encoder = tfc.models.encoders.digits_cnn((8, 8, 1))
        >>> model = tfc.models.BarlowTwins(encoder, projection_dim=256, hidden_dim=256)
        >>> model.compile(optimizer=keras.optimizers.AdamW(2e-3))
        >>> views = tfc.augment.TwoViewAugmentation("simclr", (8, 8), crop_scale=(0.5, 1.0))
        >>> model.fit(tfc.augment.two_view_dataset(tfc.data.load_digits().x_train, 256, views), epochs=1)  # doctest: +SKIP
    """

    def __init__(
        self,
        encoder: keras.Model,
        projection_dim: int = 2048,
        hidden_dim: int = 2048,
        lambda_: float = 5e-3,
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        loss = losses.BarlowTwinsLoss(lambda_=lambda_)
        self.lambda_ = loss.lambda_
        super().__init__(
            encoder, loss, projection_dim, hidden_dim, augment=augment, collapse_metrics=collapse_metrics, **kwargs
        )

    def get_config(self):
        return {**super().get_config(), "lambda_": self.lambda_}


register_method(
    "barlow_twins",
    BarlowTwins,
    batch="two_views",
    summary="Barlow Twins (Zbontar et al., ICML 2021): the two views' cross-correlation matrix is driven to the identity",
    fields={
        "projection_dim": Int(doc="projector output width (3 layers; the loss costs d^2)", min=1),
        "hidden_dim": Int(doc="projector hidden width", min=1),
        "lambda_": Float(doc="weight of the off-diagonal (redundancy reduction) term, >= 0", within="[0, inf)"),
    },
    example={"projection_dim": 8, "hidden_dim": 32},
)
