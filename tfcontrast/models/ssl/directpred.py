"""DirectPred (Tian, Chen and Ganguli, "Understanding Self-Supervised Learning
Dynamics without Contrastive Pairs", ICML 2021) and its DirectCopy variant
(Wang et al., 2021).

BYOL whose predictor is *set*, not trained: a linear, bias-free ``W_p``
computed from the correlation of the online projections f:

    F  <- rho F + (1 - rho) E[f f^T]            (every step; global batch)
    F  =  U diag(s) U^T                         (every ``freq`` steps; eigh)
    p_j = sqrt(max(s_j, 0) / max_j s_j) + eps
    W_p = U diag(p) U^T                         (DirectPred)
    W_p = F / ||F||_F + eps I                   (DirectCopy)

E[f f^T] averages over both views of every replica (all-reduced), so every
replica holds the same F and W_p. The eigendecomposition runs in float32 on a
``d x d`` matrix. F, W_p and the step counter are model variables:
checkpointed and restored with the weights. Everything else is BYOL
(:class:`tfcontrast.models.ssl.byol.BYOL`): DirectPred only chooses its
predictor and the rule that sets it after every step; the EMA of the target
follows through ``super().after_update``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.fields import Choice, Float, Int
from tfcontrast.linalg import symmetric_eigh
from tfcontrast.models.heads import linear_predictor
from tfcontrast.models.ssl.byol import BYOL, BYOL_FIELDS
from tfcontrast.models.ssl.momentum import scheduled_builder
from tfcontrast.registry import register_method

VARIANTS = ("directpred", "directcopy")


def directpred_predictor(correlation: tf.Tensor, eps: float) -> tf.Tensor:
    """``U diag(sqrt(max(s, 0) / max s) + eps) U^T`` for ``F = U diag(s) U^T``; all zero F gives ``eps I``.

    A non-finite F (NaN projections, e.g. from a NaN pixel) gives a NaN kernel:
    the loss turns NaN and :class:`tfcontrast.callbacks.TerminateOnNonFinite`
    names the step, instead of ``eigh`` failing inside the step.
    """
    s, u = symmetric_eigh(tf.cast(correlation, tf.float32))  # NaN, not an error, for a non-finite F
    s = tf.maximum(s, 0.0)
    p = tf.sqrt(tf.math.divide_no_nan(s, tf.reduce_max(s))) + eps
    return tf.matmul(u * p[None, :], u, transpose_b=True)


def directcopy_predictor(correlation: tf.Tensor, eps: float) -> tf.Tensor:
    """``F / ||F||_F + eps I``."""
    f = tf.cast(correlation, tf.float32)
    return tf.math.divide_no_nan(f, tf.norm(f)) + eps * tf.eye(tf.shape(f)[0])


@keras.saving.register_keras_serializable(package="tfcontrast")
class DirectPred(BYOL):
    """BYOL with a predictor set from the eigendecomposition of the projection correlation.

    Args:
        encoder: built Keras model, images -> ``[batch, features]``; kept after training.
        projection_dim: projector output width d (W_p is d x d).
        hidden_dim: projector hidden width.
        tau_base, total_steps: the EMA schedule (as BYOL).
        rho: EMA rate of the correlation matrix F (paper: 0.3), in [0, 1).
        eps: added to the predictor's eigenvalues (paper: 0.01), >= 0.
        freq: recompute W_p every ``freq`` steps (F is updated every step).
        variant: ``"directpred"`` or ``"directcopy"``.
        augment, collapse_metrics: see :class:`tfcontrast.models.ssl.base.TwoViewModel`.
    """

    def __init__(
        self,
        encoder: keras.Model,
        projection_dim: int = 256,
        hidden_dim: int = 4096,
        tau_base: float = 0.99,
        total_steps: int | None = None,
        rho: float = 0.3,
        eps: float = 0.01,
        freq: int = 1,
        variant: str = "directpred",
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        self.rho = validation.check_fraction(rho, "rho")
        self.eps = validation.check_non_negative(eps, "eps")
        if not isinstance(freq, int) or isinstance(freq, bool) or freq < 1:
            raise ValueError(f"`freq` must be a positive int, got {freq!r}.")
        self.freq = freq
        self.variant = validation.check_choice(variant, VARIANTS, "variant")
        super().__init__(
            encoder,
            projection_dim=projection_dim,
            hidden_dim=hidden_dim,
            tau_base=tau_base,
            total_steps=total_steps,
            augment=augment,
            collapse_metrics=collapse_metrics,
            **kwargs,
        )
        self.predictor.trainable = False
        self.correlation = self.add_weight(
            shape=(self.projection_dim, self.projection_dim), initializer="zeros", trainable=False,
            dtype="float32", name="correlation",
        )

    def make_predictor(self, projection_dim: int, hidden_dim: int) -> keras.layers.Layer:
        """The linear, bias-free predictor ``W_p`` (identity at first), set by :meth:`after_update`."""
        return linear_predictor(projection_dim, name="predictor")

    def predictor_from(self, correlation: tf.Tensor) -> tf.Tensor:
        """The closed-form predictor kernel for a correlation matrix (this model's variant)."""
        if self.variant == "directcopy":
            return directcopy_predictor(correlation, self.eps)
        return directpred_predictor(correlation, self.eps)

    def after_update(self, projections, state) -> None:
        """F and (every ``freq`` steps, counted before this step's EMA) W_p; then the EMA (``super()``)."""
        f = tf.cast(projections, tf.float32)
        count = distribute.all_reduce_sum(tf.cast(tf.shape(f)[0], tf.float32))
        batch_correlation = distribute.all_reduce_sum(tf.matmul(f, f, transpose_a=True)) / count
        correlation = self.rho * self.correlation + (1.0 - self.rho) * batch_correlation
        kernel = self.predictor.kernel
        refresh = tf.equal(self.step % self.freq, 0)
        new_kernel = tf.cond(
            refresh,
            lambda: tf.cast(self.predictor_from(correlation), kernel.dtype),
            lambda: tf.identity(kernel),
        )
        distribute.assign_on_every_replica([self.correlation, kernel], [correlation, new_kernel])
        super().after_update(projections, state)

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "eps": self.eps,
            "freq": self.freq,
            "variant": self.variant,
        }


register_method(
    "directpred",
    DirectPred,
    batch="two_views",
    summary="DirectPred (Tian, Chen and Ganguli, ICML 2021): BYOL with a predictor set from the projections' correlation",
    fields={
        **BYOL_FIELDS,
        "projection_dim": Int(doc="projector output width d (the predictor W_p is d x d)", min=1),
        "hidden_dim": Int(doc="projector hidden width", min=1),
        "rho": Float(doc="EMA rate of the correlation matrix F, in [0, 1) (paper: 0.3)", within="[0, 1)"),
        "eps": Float(doc="added to the predictor's eigenvalues, >= 0 (paper: 0.01)", within="[0, inf)"),
        "freq": Int(doc="recompute W_p from F every `freq` steps", min=1),
        "variant": Choice(VARIANTS, doc="directpred (U diag(sqrt(s/max s) + eps) U^T) | directcopy (F/||F|| + eps I)"),
    },
    build=scheduled_builder(DirectPred),
    example={"projection_dim": 16, "hidden_dim": 32, "tau_base": 0.9},
)
