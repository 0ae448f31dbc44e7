"""Text views on token ids: DeCLUTR spans, random windows, word dropout and word deletion.

All functions are TensorFlow ops driven by stateless random seeds (a
``[2]`` int tensor), so a ``tf.data`` pipeline that derives the seed from the
step number gives the same views on every run and resumes exactly.

**DeCLUTR spans** (Giorgi, Nitski, Wang and Bader, "DeCLUTR: Deep Contrastive
Learning for Unsupervised Textual Representations", ACL 2021, section 2.1).
For a document of d tokens, each of its ``A`` anchors has length

    l_anchor = floor(p_anchor (l_max - l_min) + l_min),   p_anchor ~ Beta(4, 2)

(skewed long) and starts uniformly in ``{0, ..., d - l_anchor}``; each of
the ``P`` positives of an anchor has length ``l_positive`` from the same
formula with ``p_positive ~ Beta(2, 4)`` (skewed short) and starts uniformly
in ``{s_anchor - l_positive, ..., e_anchor}``, so a positive may overlap the
anchor, be adjacent to it or lie inside it. Here ``l_max`` is capped at d (a
short document gives shorter spans) and a positive's start is clipped to the
document, ``[0, d - l_positive]``.

**SimCSE** views need no text operation: the same ids go through the encoder
twice with dropout (:class:`tfcontrast.models.SimCSE`). :func:`random_windows`
picks the window of a long document that both passes see.

**Word dropout / deletion** are the discrete noise of e.g. CLEAR (Wu et al.
2020) and the SimCSE ablations: replace each token by the OOV id, or remove
it and close the gap.
"""

from __future__ import annotations

import tensorflow as tf

from tfcontrast.text.vectorizer import OOV_ID, PADDING_ID

ANCHOR_BETA = (4.0, 2.0)
POSITIVE_BETA = (2.0, 4.0)


def derive_seed(seed: tf.Tensor, stream: int) -> tf.Tensor:
    """An independent stateless seed for sub-stream ``stream`` of ``seed``."""
    seed = tf.cast(seed, tf.int64)
    return tf.stack([seed[0] * 1000003 + stream, seed[1]])


def beta_span_lengths(seed, doc_lengths, shape, min_length: int, max_length: int, concentration) -> tf.Tensor:
    """``floor(p (hi - lo) + lo)`` with ``p ~ Beta(a, b)``, ``hi = min(max_length, d)``, ``lo = min(min_length, hi)``.

    Args:
        seed: ``[2]`` stateless seed.
        doc_lengths: int32 ``[n]`` tokens per document.
        shape: ``[n, ...]`` the lengths drawn (broadcast over ``doc_lengths``).
        min_length, max_length: ``l_min`` and ``l_max`` of the paper.
        concentration: ``(a, b)`` of the Beta distribution.

    Returns:
        int32 lengths with ``lo <= l <= hi`` (``hi`` only when p = 1).
    """
    a, b = concentration
    x = tf.random.stateless_gamma(shape, derive_seed(seed, 0), alpha=a)
    y = tf.random.stateless_gamma(shape, derive_seed(seed, 1), alpha=b)
    p = x / (x + y)
    d = _expand_to(tf.cast(doc_lengths, tf.int32), len(shape))
    hi = tf.minimum(max_length, d)
    lo = tf.minimum(min_length, hi)
    span = tf.cast(tf.floor(p * tf.cast(hi - lo, tf.float32)), tf.int32) + lo
    return tf.clip_by_value(span, lo, hi)


def uniform_ints(seed, low: tf.Tensor, high: tf.Tensor) -> tf.Tensor:
    """Integers uniform in ``{low, ..., high}`` (inclusive, elementwise; ``high >= low``)."""
    u = tf.random.stateless_uniform(tf.shape(low), seed, dtype=tf.float32)
    count = tf.cast(high - low + 1, tf.float32)
    return low + tf.minimum(tf.cast(tf.floor(u * count), tf.int32), high - low)


def declutr_spans(
    seed,
    doc_lengths,
    num_anchors: int = 1,
    num_positives: int = 1,
    min_length: int = 32,
    max_length: int = 512,
):
    """Anchor and positive spans of DeCLUTR for each document (lengths in tokens).

    Returns:
        ``(anchor_starts [n, A], anchor_lengths [n, A], positive_starts [n, A, P],
        positive_lengths [n, A, P])``, int32; every span lies inside its
        document, and every positive starts no earlier than ``l_positive``
        tokens before its anchor and no later than the anchor's end.
    """
    d = tf.cast(doc_lengths, tf.int32)
    n = tf.shape(d)[0]
    anchor_len = beta_span_lengths(derive_seed(seed, 0), d, [n, num_anchors], min_length, max_length, ANCHOR_BETA)
    anchor_start = uniform_ints(derive_seed(seed, 1), tf.zeros_like(anchor_len), d[:, None] - anchor_len)
    positive_len = beta_span_lengths(
        derive_seed(seed, 2), d, [n, num_anchors, num_positives], min_length, max_length, POSITIVE_BETA
    )
    s_anchor = tf.broadcast_to(anchor_start[..., None], tf.shape(positive_len))
    e_anchor = s_anchor + anchor_len[..., None]
    last_start = d[:, None, None] - positive_len
    low = tf.clip_by_value(s_anchor - positive_len, 0, last_start)
    high = tf.clip_by_value(e_anchor, low, last_start)
    positive_start = uniform_ints(derive_seed(seed, 3), low, high)
    return anchor_start, anchor_len, positive_start, positive_len


def random_windows(seed, doc_lengths, window: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``(starts, lengths)``: a uniformly placed window of ``min(window, d)`` tokens per document."""
    d = tf.cast(doc_lengths, tf.int32)
    lengths = tf.minimum(d, window)
    return uniform_ints(seed, tf.zeros_like(d), d - lengths), lengths


def gather_spans(token_ids: tf.RaggedTensor, rows, starts, lengths, sequence_length: int) -> tf.Tensor:
    """Spans of documents as padded ids: int32 ``[..., sequence_length]``.

    Args:
        token_ids: ``[documents, (tokens)]`` ragged ids (:func:`tfcontrast.text.tokenize`).
        rows: the document of each span (any shape S).
        starts, lengths: the spans (shape S); a span longer than
            ``sequence_length`` is cut to its first ``sequence_length`` tokens.

    Returns:
        ``[*S, sequence_length]``: each span's ids then padding (0).
    """
    offsets = tf.cast(tf.gather(token_ids.row_starts(), rows), tf.int32) + tf.cast(starts, tf.int32)
    position = tf.range(sequence_length, dtype=tf.int32)
    inside = position < tf.cast(lengths, tf.int32)[..., None]
    flat = tf.cast(token_ids.flat_values, tf.int32)
    index = tf.where(inside, offsets[..., None] + position, 0)
    return tf.where(inside, tf.gather(flat, index), PADDING_ID)


def word_dropout(seed, ids: tf.Tensor, rate: float, replacement: int = OOV_ID) -> tf.Tensor:
    """Replaces each non-padding token by ``replacement`` with probability ``rate``."""
    drop = tf.random.stateless_uniform(tf.shape(ids), seed) < rate
    return tf.where(drop & tf.not_equal(ids, PADDING_ID), tf.cast(replacement, ids.dtype), ids)


def word_deletion(seed, ids: tf.Tensor, rate: float) -> tf.Tensor:
    """Deletes each non-padding token with probability ``rate``; the rest move left, padding fills the end.

    The relative order of the kept tokens is unchanged; ``[batch, length]`` in and out.
    """
    keep = (tf.random.stateless_uniform(tf.shape(ids), seed) >= rate) & tf.not_equal(ids, PADDING_ID)
    # A stable sort on "not kept" moves the kept tokens to the front in order.
    order = tf.argsort(tf.cast(~keep, tf.int32), axis=-1, stable=True)
    packed = tf.gather(ids, order, batch_dims=1)
    packed_keep = tf.gather(keep, order, batch_dims=1)
    return tf.where(packed_keep, packed, tf.cast(PADDING_ID, ids.dtype))


def _expand_to(x: tf.Tensor, rank: int) -> tf.Tensor:
    for _ in range(rank - 1):
        x = x[..., None]
    return x
