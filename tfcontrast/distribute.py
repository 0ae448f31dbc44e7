"""Cross-replica helpers that give losses and models global-batch semantics.

Under a ``tf.distribute`` strategy each replica holds a slice of the global
batch. Contrastive losses need every view of the global batch as a negative
and statistics (means, correlation matrices) must be global, so:

* :func:`gather` concatenates a tensor across replicas (with a gradient: the
  upstream gradients of all replicas are summed, then sliced back) and says
  where this replica's rows start;
* :func:`all_reduce_sum` / :func:`all_reduce_mean` reduce across replicas;
* :func:`replica_share` turns a local sum over anchors into this replica's
  *share* of the global mean, ``local_sum / global_count``;
* :func:`global_count` and :func:`global_mean` give batch statistics over the
  global batch (redundancy-reduction losses standardise with them), and
  :func:`replicated_share` turns a value every replica computes identically
  from such statistics into this replica's share of it.

Replica shares follow Keras' own convention for losses under a strategy: the
value a replica returns is scaled so that **summing over replicas gives the
global loss**, and the gradients the optimizer sums across replicas are the
gradients of the global loss. (Keras scales per-sample losses by
1/num_replicas itself but leaves scalar losses alone, which is why the
batch-level losses of this package scale themselves.)

Outside a strategy (or with one replica) every function is the identity /
plain reduction, so the same code runs on one device, several GPUs, several
workers or a TPU. Everything is a TF op: no host callbacks, XLA-compilable.
"""

from __future__ import annotations

import tensorflow as tf


def _replica_context():
    """The replica context, or ``None`` in a cross-replica context."""
    if tf.distribute.in_cross_replica_context():
        return None
    return tf.distribute.get_replica_context()


def num_replicas() -> int:
    """Replicas in sync in the current replica context (1 outside a strategy)."""
    ctx = _replica_context()
    return 1 if ctx is None else int(ctx.num_replicas_in_sync)


def gather(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """All-gathers ``x`` along axis 0 across replicas.

    Returns:
        ``(gathered, offset)``: the global tensor and the int32 row at which
        this replica's rows begin in it (0 on a single replica). Replicas may
        hold different numbers of rows (not on TPU, where shapes must match).
    """
    ctx = _replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x, tf.constant(0, tf.int32)
    return ctx.all_gather(x, axis=0), row_offset(tf.shape(x, out_type=tf.int32)[0])


def row_offset(rows) -> tf.Tensor:
    """The int32 row at which this replica's ``rows`` rows begin in the global batch (0 on one replica).

    Replica r's rows follow those of replicas 0 .. r-1, the order of
    :func:`gather` (and of a dataset's batch split by ``MirroredStrategy``).
    A value drawn per global row (a random number of example i) is then the
    same on R replicas as on one device holding the whole batch.
    """
    ctx = _replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.constant(0, tf.int32)
    sizes = ctx.all_gather(tf.reshape(tf.cast(rows, tf.int32), [1]), axis=0)
    replica_id = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    before = tf.range(ctx.num_replicas_in_sync, dtype=tf.int32) < replica_id
    return tf.reduce_sum(tf.where(before, sizes, tf.zeros_like(sizes)))


def all_reduce_sum(x: tf.Tensor) -> tf.Tensor:
    """Sum of ``x`` over replicas (``x`` itself on a single replica)."""
    ctx = _replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)


def all_reduce_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean of ``x`` over replicas (``x`` itself on a single replica)."""
    ctx = _replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, x)


def replica_share(local_sum: tf.Tensor, local_count: tf.Tensor) -> tf.Tensor:
    """This replica's share of a global mean: ``local_sum / sum_r count_r``.

    Summed over replicas this is the exact global mean, even when replicas hold
    different numbers of valid anchors. A global count of 0 gives 0 (never NaN)
    and, because the count carries no gradient, a zero gradient.
    """
    local_count = tf.cast(local_count, local_sum.dtype)
    global_count = tf.stop_gradient(all_reduce_sum(local_count))
    return tf.math.divide_no_nan(local_sum, global_count)



def global_count(x: tf.Tensor) -> tf.Tensor:
    """Rows of ``x`` summed over replicas: the global batch size, a float32 scalar without gradient."""
    return all_reduce_sum(tf.cast(tf.shape(x)[0], tf.float32))


def global_mean(x: tf.Tensor, count: tf.Tensor | None = None) -> tf.Tensor:
    """Mean of ``x`` over axis 0 of the *global* batch (``count``: its size, from :func:`global_count`).

    The gradient reaches every replica's rows, as for one device holding the
    whole batch (the gradient of an all-reduce sum is an all-reduce sum).
    """
    count = global_count(x) if count is None else count
    return all_reduce_sum(tf.reduce_sum(x, axis=0)) / tf.cast(count, x.dtype)


def replicated_share(value: tf.Tensor) -> tf.Tensor:
    """``value / num_replicas`` for a loss every replica computes identically from global statistics.

    Summed over replicas it is ``value``; because the statistics came through
    all-reduces, the gradients the optimizer sums are those of ``value`` on
    one device holding the global batch.
    """
    r = num_replicas()
    return value if r == 1 else value / tf.cast(r, value.dtype)


def unscale_share(share: tf.Tensor) -> tf.Tensor:
    """``share * num_replicas``: a value whose mean over replicas is the global loss (for metrics)."""
    r = num_replicas()
    return share if r == 1 else share * tf.cast(r, share.dtype)


def assign_on_every_replica(variables, values) -> None:
    """Assigns ``values[i]`` to ``variables[i]`` on every replica, with no communication.

    For state that every replica computes identically from global quantities
    (an EMA target network, DirectPred's correlation matrix and predictor,
    step counters). Called from a replica context it steps into the
    cross-replica context and updates each replica's copy with that replica's
    value, the way Keras optimizers apply their updates; outside a strategy,
    or in a cross-replica context, it is a plain assign. Keras and ``tf.Variable`` objects are both accepted.
    """
    _update_on_every_replica(
        variables, [(value,) for value in values], lambda var, val: var.assign(tf.cast(val, var.dtype))
    )


def scatter_on_every_replica(variable, indices, rows) -> None:
    """``variable[indices[i]] = rows[i]`` in place on every replica, with no communication.

    For a queue or a memory bank (MoCo, PIRL) whose new rows every replica
    computed identically from gathered values: only the rows written move
    (no copy of the whole variable). ``indices`` are ``[n]`` ints, distinct
    (the order of writes to one row is undefined); ``rows`` are ``[n, ...]``.
    """
    indices = tf.reshape(tf.cast(indices, tf.int64), [-1, 1])
    _update_on_every_replica(
        [variable], [(indices, rows)], lambda var, idx, val: var.scatter_nd_update(idx, tf.cast(val, var.dtype))
    )


def _update_on_every_replica(variables, args, update_fn) -> None:
    """``update_fn(variable, *args[i])`` on each replica's copy of ``variables[i]`` (see :func:`assign_on_every_replica`)."""
    variables = [getattr(v, "value", v) if hasattr(v, "path") else v for v in variables]
    if _replica_context() is None:  # cross-replica context (e.g. Keras' symbolic build): one update sets every copy
        for variable, a in zip(variables, args):
            update_fn(variable, *a)
        return

    def update(strategy, variables, args):
        for variable, a in zip(variables, args):
            strategy.extended.update(variable, update_fn, args=a, group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(update, tf.distribute.get_strategy(), variables, args)
