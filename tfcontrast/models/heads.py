"""MLP projection and prediction heads.

The heads of the self-supervised methods differ only in depth, width and
where BatchNorm goes:

* SimCLR projector (Chen et al. 2020): Linear-BN-ReLU-Linear.
* BYOL projector and predictor (Grill et al. 2020): Linear(hidden)-BN-ReLU-Linear(out).
* SimSiam projector (Chen and He 2021): 3 layers, BN after every Linear,
  including the last; predictor: a bottleneck Linear-BN-ReLU-Linear.
* DirectPred predictor (Tian et al. 2021): one bias-free Linear layer whose
  kernel is *set* from the correlation matrix, not trained.

BatchNorm is ``synchronized``: under a ``tf.distribute`` strategy its batch
statistics are all-reduced over the global batch (plain Keras BatchNorm keeps
per-replica statistics, and the replicas' moving averages drift apart). On one
replica it is ordinary BatchNorm, run by TensorFlow's fused kernel
(:class:`tfcontrast.models.normalization.BatchNormalization`). The heads
follow the global mixed-precision policy; the losses upcast to float32.
"""

from __future__ import annotations

import keras

from tfcontrast.models.normalization import BatchNormalization


def mlp_head(
    output_dim: int,
    hidden_dim: int | None = None,
    num_layers: int = 2,
    batch_norm: bool = True,
    output_batch_norm: bool = False,
    name: str | None = None,
) -> keras.Sequential:
    """``num_layers`` Dense layers; BN + ReLU after each hidden one.

    Args:
        output_dim: width of the last layer.
        hidden_dim: width of the hidden layers (default: ``output_dim``).
        num_layers: number of Dense layers (>= 1); 1 gives a linear head.
        batch_norm: synchronized BatchNorm after each hidden Dense (its bias is then dropped).
        output_batch_norm: BatchNorm (without scale) after the last Dense, as in
            SimSiam's projector.
        name: Keras name of the head.

    Raises:
        ValueError: a non-positive width or layer count.

    Example:
        >>> head = mlp_head(64, hidden_dim=256)
        >>> head(keras.ops.ones([4, 32])).shape
        (4, 64)
    """
    for value, arg in ((output_dim, "output_dim"), (num_layers, "num_layers")):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{arg}` must be a positive int, got {value!r}.")
    hidden_dim = output_dim if hidden_dim is None else hidden_dim
    if not isinstance(hidden_dim, int) or isinstance(hidden_dim, bool) or hidden_dim < 1:
        raise ValueError(f"`hidden_dim` must be a positive int, got {hidden_dim!r}.")

    layers = []
    for _ in range(num_layers - 1):
        layers.append(keras.layers.Dense(hidden_dim, use_bias=not batch_norm))
        if batch_norm:
            layers.append(BatchNormalization(synchronized=True))
        layers.append(keras.layers.ReLU())
    layers.append(keras.layers.Dense(output_dim, use_bias=not output_batch_norm))
    if output_batch_norm:
        layers.append(BatchNormalization(scale=False, synchronized=True))
    return keras.Sequential(layers, name=name)


def linear_predictor(dim: int, name: str | None = None) -> keras.layers.Dense:
    """A bias-free ``dim x dim`` linear layer: DirectPred's predictor ``W_p``.

    Initialised to the identity, the value the DirectPred rule gives for a
    correlation matrix with equal eigenvalues (up to ``eps``).
    """
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"`dim` must be a positive int, got {dim!r}.")
    return keras.layers.Dense(dim, use_bias=False, kernel_initializer="identity", name=name)
