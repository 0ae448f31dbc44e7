"""NT-Xent (SimCLR) and supervised contrastive (SupCon) losses.

NT-Xent, Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations" (SimCLR), ICML 2020. With 2N L2-normalised views (two per
example), cosine similarity s and temperature t, view i's positive j(i) is the
other view of its example and every other view is a negative:

    L = 1/(2N) sum_i -log( exp(s(i, j(i))/t) / sum_{k != i} exp(s(i, k)/t) )

SupCon, Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020 (the
L_out form): every other view with the same label is a positive,

    L = mean over anchors i with |P(i)| >= 1 of
        -1/|P(i)| sum_{p in P(i)} log( exp(s(i, p)/t) / sum_{k != i} exp(s(i, k)/t) )

Under a ``tf.distribute`` strategy the keys (positives and negatives) are the
views of *every* replica, gathered with a gradient, and each replica returns
its share of the global mean: R replicas holding B/R pairs give the loss and
gradients of one device holding all B (see :mod:`tfcontrast.distribute`).

Both losses go through :func:`masked_logsumexp`, which has a hand-written
gradient (one matrix product forward, two backward, nothing stored but the
logits) and a row-blocked mode that never holds the whole similarity matrix:
2N = 65,536 views fit in well under 4 GiB where the dense matrix alone is 16 GiB.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distances, distribute, validation
from tfcontrast.losses import base, xbm
from tfcontrast.fields import Float
from tfcontrast.registry import register_loss


def nt_xent_loss(z_a, z_b, temperature: float = 0.1, block_size: int | None = None) -> tf.Tensor:
    """NT-Xent over two views ``z_a[i]``, ``z_b[i]`` of the same examples; scalar float32.

    Args:
        z_a: ``[n, dim]`` first views (normalised inside; any float dtype).
        z_b: ``[n, dim]`` second views.
        temperature: softmax temperature t > 0.
        block_size: ``None`` for the dense computation, or a number of rows
            per block: peak memory then grows with ``block_size * 2N`` instead
            of ``(2N)^2``, at the price of recomputing the logits in the
            backward pass. Same value and gradients.

    Returns:
        The loss (this replica's share of it under a strategy).

    Example:
        >>> z = tf.random.normal([8, 16])
        >>> float(nt_xent_loss(z, z, temperature=0.5)) < float(nt_xent_loss(z, -z, temperature=0.5))
        True
    """
    temperature = validation.check_positive(temperature, "temperature")
    block_size = _check_block_size(block_size)
    z_a, z_b = tf.convert_to_tensor(z_a), tf.convert_to_tensor(z_b)
    validation.check_rank(z_a, 2, "z_a")
    validation.check_rank(z_b, 2, "z_b")
    for axis in (0, 1):
        validation.check_same_dim(z_a, z_b, axis, ("z_a", "z_b"))

    z_a = distances.l2_normalize(z_a)
    z_b = tf.cast(distances.l2_normalize(z_b), z_a.dtype)
    keys_a, offset = distribute.gather(z_a)
    keys_b, _ = distribute.gather(z_b)
    keys = tf.concat([keys_a, keys_b], axis=0)
    queries = tf.concat([z_a, z_b], axis=0)

    n = tf.shape(z_a)[0]
    total = tf.shape(keys_a)[0]
    local = tf.range(n, dtype=tf.int32) + offset
    self_index = tf.concat([local, local + total], axis=0)
    positive_index = tf.concat([local + total, local], axis=0)

    # -log(e^{l_p} / (e^{l_p} + sum_neg e^{l_k})) = softplus(lse_neg - l_p): the
    # positive is left out of the log-sum-exp, so a small loss keeps its
    # relative precision instead of being the difference of two large numbers.
    positive_logit = tf.reduce_sum(queries * tf.gather(keys, positive_index), axis=1) / temperature
    excluded = tf.stack([self_index, positive_index], axis=1)
    lse_negatives = masked_logsumexp(queries, keys, excluded, temperature, block_size)
    local_sum = tf.reduce_sum(tf.nn.softplus(lse_negatives - positive_logit))
    return distribute.replica_share(local_sum, tf.cast(2 * n, local_sum.dtype))


def supcon_loss(labels, embeddings, temperature: float = 0.1) -> tf.Tensor:
    """Supervised contrastive loss (L_out) on labelled embeddings; scalar float32.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids (compared exactly, as int64).
        embeddings: ``[batch, dim]``, or ``[batch, views, dim]`` for several
            augmented views per example (each view is an anchor; the views of
            one example are positives of each other).
        temperature: softmax temperature t > 0.

    Returns:
        Mean over anchors with at least one positive; 0 (zero gradient) when
        no anchor has one. This replica's share under a strategy; NaN if an
        embedding is not finite.
    """
    temperature = validation.check_positive(temperature, "temperature")
    return supcon_from_candidates(base.anchor_batch(labels, embeddings, allow_views=True), temperature)


@base.zero_for_empty_batch
def supcon_from_candidates(candidates: base.Candidates, temperature: float) -> tf.Tensor:
    """:func:`supcon_loss` of the anchors of ``candidates`` against its keys (batch and any memory)."""
    queries = distances.l2_normalize(candidates.embeddings)
    keys = tf.cast(distances.l2_normalize(candidates.keys), queries.dtype)
    positive, _ = candidates.masks()
    positive = tf.cast(positive, queries.dtype)
    num_positives = tf.reduce_sum(positive, axis=1)
    # mean over P(i) of s(i, p)/t, as one product: q_i . (sum_p k_p) / |P(i)| / t
    positive_mean_key = tf.math.divide_no_nan(tf.matmul(positive, keys), num_positives[:, None])
    positive_logit = tf.reduce_sum(queries * positive_mean_key, axis=1) / temperature

    self_index = tf.range(tf.shape(queries)[0], dtype=tf.int32) + candidates.offset
    lse = masked_logsumexp(queries, keys, self_index[:, None], temperature, key_mask=candidates.key_mask)
    has_positive = num_positives > 0
    per_anchor = tf.where(has_positive, lse - positive_logit, tf.zeros_like(lse))
    return candidates.finish(
        distribute.replica_share(tf.reduce_sum(per_anchor), tf.reduce_sum(tf.cast(has_positive, per_anchor.dtype)))
    )


def masked_logsumexp(
    queries: tf.Tensor,
    keys: tf.Tensor,
    excluded: tf.Tensor,
    temperature: float,
    block_size: int | None = None,
    key_mask: tf.Tensor | None = None,
) -> tf.Tensor:
    """``lse_i = log sum_{k not in excluded[i]} exp(<q_i, k_k> / t)`` for every query row.

    ``excluded`` is ``[rows, e]``: the key columns each row leaves out (its
    own view; for NT-Xent also its positive). ``key_mask`` (``[keys]`` bool,
    dense mode only) leaves out the keys where it is false for every row (the
    empty slots of a cross-batch memory). The gradient is written by hand:
    with P the softmax of row i over its keys and upstream gradient g_i,

        dQ = diag(g / t) (P K),        dK = P^T (diag(g / t) Q),

    so the backward pass is exactly two matrix products (three with the
    forward one: the floor for this loss) and no elementwise pass over the
    ``[rows, keys]`` matrix. The forward pass uses TensorFlow's fused softmax
    and reads ``lse = max_k logit - log(max_k P)`` off it.

    With ``block_size`` the rows are processed in blocks of that many (padded
    to a multiple, so every shape stays static for XLA), forward and backward,
    and P is recomputed per block in the backward pass instead of stored.
    """
    # tf.constant, not tf.cast: casting a Python float goes through float32 (0.07 -> 0.0700000003).
    t = tf.cast(temperature, queries.dtype) if tf.is_tensor(temperature) else tf.constant(temperature, queries.dtype)
    if block_size is None:
        return _dense_masked_logsumexp(queries, keys, excluded, t, key_mask)
    if key_mask is not None:
        raise ValueError("`key_mask` is supported by the dense mode only (block_size=None).")
    return _blocked_masked_logsumexp(queries, keys, excluded, t, block_size)


def _masked_softmax(q, keys, excluded, t, key_mask=None):
    """Softmax P and log-sum-exp of ``<q_i, k_j> / t`` over the keys not excluded.

    Excluded entries get the dtype's lowest finite value: exp() makes them
    exactly 0, and a row with every key excluded stays finite (its ``lse`` is
    about -3.4e38; the losses give such rows a zero upstream gradient).
    """
    logits = tf.matmul(q / t, keys, transpose_b=True)
    rows = tf.broadcast_to(tf.range(tf.shape(excluded)[0])[:, None], tf.shape(excluded))
    where = tf.reshape(tf.stack([rows, excluded], axis=-1), [-1, 2])
    lowest = tf.fill(tf.shape(where)[:1], tf.constant(logits.dtype.min, logits.dtype))
    logits = tf.tensor_scatter_nd_update(logits, where, lowest)
    if key_mask is not None:
        logits = tf.where(key_mask[None, :], logits, tf.constant(logits.dtype.min, logits.dtype))
    p = tf.nn.softmax(logits)
    lse = tf.reduce_max(logits, axis=1) - tf.math.log(tf.reduce_max(p, axis=1))
    return p, lse


def _logsumexp_gradients(p, upstream, q, keys, t):
    """``(dQ, dK)`` for upstream gradients g of the row-wise log-sum-exp."""
    scale = (upstream / t)[:, None]
    return scale * tf.matmul(p, keys), tf.matmul(p, q * scale, transpose_a=True)


def _dense_masked_logsumexp(queries, keys, excluded, t, key_mask=None):
    @tf.custom_gradient
    def lse_rows(q, k):
        p, lse = _masked_softmax(q, k, excluded, t, key_mask)
        return lse, lambda upstream: _logsumexp_gradients(p, upstream, q, k, t)

    return lse_rows(queries, keys)


def _blocked_masked_logsumexp(queries, keys, excluded, t, block_size):
    rows = tf.shape(queries)[0]
    num_blocks = (rows + block_size - 1) // block_size
    padding = num_blocks * block_size - rows

    def blocks(x):
        return tf.pad(x, [[0, padding]] + [[0, 0]] * (x.shape.rank - 1))

    @tf.custom_gradient
    def lse_rows(q, k):
        q_padded = blocks(q)
        # Padded rows are zero queries excluding column 0: harmless, and discarded.
        excluded_padded = blocks(excluded)

        def block(x, i):
            return tf.slice(x, [i * block_size] + [0] * (x.shape.rank - 1), [block_size] + [-1] * (x.shape.rank - 1))

        def block_softmax(i):
            q_blk = block(q_padded, i)
            return q_blk, _masked_softmax(q_blk, k, block(excluded_padded, i), t)

        def forward(i, out):
            _, (_, lse) = block_softmax(i)
            return i + 1, out.write(i, lse)

        parts = tf.TensorArray(q.dtype, size=num_blocks, element_shape=[block_size])
        # parallel_iterations=1: one block's [block_size, 2N] matrices alive at a time (the default 10
        # would keep up to ten in flight, defeating the point of blocking).
        _, parts = tf.while_loop(lambda i, _: i < num_blocks, forward, (0, parts), parallel_iterations=1)
        lse = parts.concat()[:rows]

        def grad(upstream):
            upstream_padded = blocks(upstream)

            def backward(i, dq_parts, dk):
                q_blk, (p, _) = block_softmax(i)
                dq_blk, dk_blk = _logsumexp_gradients(p, block(upstream_padded, i), q_blk, k, t)
                return i + 1, dq_parts.write(i, dq_blk), dk + dk_blk

            dq_parts = tf.TensorArray(q.dtype, size=num_blocks, element_shape=[block_size, None])
            _, dq_parts, dk = tf.while_loop(
                lambda i, *_: i < num_blocks,
                backward,
                (0, dq_parts, tf.zeros_like(k)),
                parallel_iterations=1,
            )
            return dq_parts.concat()[:rows], dk

        return lse, grad

    return lse_rows(queries, keys)


def _check_block_size(block_size):
    if block_size is None:
        return None
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size <= 0:
        raise ValueError(f"`block_size` must be None or a positive int, got {block_size!r}.")
    return block_size


@keras.saving.register_keras_serializable(package="tfcontrast")
class NTXentLoss(keras.losses.Loss):
    """NT-Xent (normalised temperature-scaled cross entropy) of SimCLR.

    Called as ``loss(z_a, z_b)`` on the projections of two augmented views of
    the same batch: row i of ``z_a`` and row i of ``z_b`` form the positive
    pair, every other view (of every replica, under a strategy) is a negative.
    Views are L2-normalised inside.

    Args:
        temperature: softmax temperature t > 0 (SimCLR uses 0.1 to 0.5).
        block_size: ``None`` (dense) or rows per block for batches whose
            ``(2N)^2`` similarity matrix does not fit in memory.

    Raises:
        ValueError: ``temperature <= 0``, a bad ``block_size``, views that are
            not ``[n, dim]`` or whose shapes differ.

    Example:
        >>> loss = NTXentLoss(temperature=0.5)
        >>> z_a, z_b = tf.random.normal([32, 64]), tf.random.normal([32, 64])
        >>> loss(z_a, z_b).shape
        TensorShape([])
    """

    def __init__(
        self,
        temperature: float = 0.1,
        block_size: int | None = None,
        name: str = "nt_xent_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.temperature = validation.check_positive(temperature, "temperature")
        self.block_size = _check_block_size(block_size)

    def call(self, y_true, y_pred):
        return nt_xent_loss(y_true, y_pred, self.temperature, self.block_size)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="tfcontrast")
class SupConLoss(base.SimilarityLoss):
    """Supervised contrastive loss (Khosla et al. 2020, L_out) on ``(labels, embeddings)``.

    Every other sample with the same label is a positive; all others are
    negatives. Embeddings may be ``[batch, dim]`` or ``[batch, views, dim]``.
    Labels are compared exactly; the return contract is that of
    :mod:`tfcontrast.losses.base`.

    Args:
        temperature: softmax temperature t > 0 (the paper uses 0.1).

    Raises:
        ValueError: ``temperature <= 0``, embeddings of the wrong rank, labels
            of another length.
    """

    function = staticmethod(supcon_loss)
    from_candidates = staticmethod(supcon_from_candidates)
    accepts_views = True

    def __init__(self, temperature: float = 0.1, name: str = "supcon_loss", **kwargs):
        super().__init__(name=name, temperature=validation.check_positive(temperature, "temperature"), **kwargs)


register_loss(
    "supcon",
    SupConLoss,
    inputs="labels",
    summary="supervised contrastive loss, L_out (Khosla et al., NeurIPS 2020)",
    fields=xbm.memory_fields({"temperature": Float(doc="softmax temperature, > 0", within="(0, inf)")}),
    build=xbm.with_memory(SupConLoss),
)
