"""The MLP heads: fused BatchNorm on one replica, global batch statistics under a strategy."""

import keras
import numpy as np
import tensorflow as tf

from tfcontrast.models import BatchNormalization
from tfcontrast.models.heads import mlp_head


def test_head_batch_norms_are_fused_on_one_replica():
    head = mlp_head(8, hidden_dim=16, num_layers=3, output_batch_norm=True)
    head.build((None, 4))
    norms = [layer for layer in head.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 3 and all(type(n) is BatchNormalization and n.synchronized for n in norms)
    assert not norms[-1].scale
    graph = tf.function(lambda x: head(x, training=True)).get_concrete_function(tf.TensorSpec((4, 4))).graph
    assert sum(op.type == "FusedBatchNormV3" for op in graph.get_operations()) == 3


def test_head_statistics_are_global_under_two_replicas(two_replicas):
    """Each replica holds half of the batch, the halves far apart: the moving mean must be the global one."""
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    x[4:] += 5.0
    with two_replicas.scope():
        head = mlp_head(3, hidden_dim=6)
        head.build((None, 4))
    dense, norm = head.layers[0], head.layers[1]
    values = two_replicas.experimental_distribute_values_from_function(
        lambda ctx: x[4 * ctx.replica_id_in_sync_group:][:4]
    )
    tf.function(lambda v: two_replicas.run(lambda t: head(t, training=True), args=(v,)))(values)
    hidden = x @ dense.kernel.numpy()  # no bias before a BatchNorm
    expected = (1.0 - norm.momentum) * hidden.mean(axis=0)  # from 0, with the statistics of all 8 rows
    np.testing.assert_allclose(norm.moving_mean.numpy(), expected, rtol=1e-5, atol=1e-6)
    local = (1.0 - norm.momentum) * hidden[:4].mean(axis=0)
    assert not np.allclose(norm.moving_mean.numpy(), local, atol=1e-3)
