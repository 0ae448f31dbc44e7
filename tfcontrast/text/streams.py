"""Training streams for the text methods: ``tf.data`` pipelines of token-id batches.

Each stream tokenises nothing at run time: it takes the documents' token ids
once (:func:`tfcontrast.text.tokenize`) and cuts views from them with
stateless random ops seeded by ``(seed, step)``, so

* the batch at step s is a pure function of ``(seed, s)``: two runs see the
  same batches, and ``skip(s)`` resumes a run exactly;
* the compiled train step sees only int32 ids (string ops stay out of XLA);
* a batch never holds two views of different documents under one index:
  the documents of a batch are distinct (drawn without replacement), so no
  in-batch negative is a copy of the positive's document.

Streams:

* :func:`simcse_batches`: ``ids [B, L]``, one random window per document
  (SimCSE's two views come from dropout in the encoder);
* :func:`declutr_batches`: ``(anchors [B*A, L], positives [B*A, P, L])``
  DeCLUTR spans (:func:`tfcontrast.text.views.declutr_spans`);
* :func:`pair_batches`: ``(queries [B, L], passages [B, L])``, the first
  ``L`` tokens of ``B`` distinct (query, passage) pairs
  (:class:`tfcontrast.models.DualEncoder`).

Batch kinds of ``tfcontrast train`` (data kind ``text``): ``text_windows``
(SimCSE) and ``text_spans`` (DeCLUTR), registered at the end of this module.

Under a ``tf.distribute`` strategy ``batch_size`` is the global batch; every
component has the same leading dimension, so Keras splits it across replicas
with anchors and their positives kept together.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfcontrast import data, validation
from tfcontrast.fields import Float, Int
from tfcontrast.registry import register_batch_kind
from tfcontrast.text import views


def simcse_batches(
    token_ids: tf.RaggedTensor,
    batch_size: int,
    sequence_length: int,
    seed: int = 0,
    steps: int | None = None,
    word_dropout: float = 0.0,
) -> tf.data.Dataset:
    """Batches ``int32 [batch_size, sequence_length]``: a random window of each of ``batch_size`` distinct documents.

    Args:
        token_ids: ``[documents, (tokens)]`` ragged ids of the training documents.
        batch_size: documents per batch (at most the number of documents).
        sequence_length: tokens per window (a shorter document is used whole).
        seed: the stream's seed.
        steps: batches to yield (``None``: endless; use ``steps_per_epoch`` in ``fit``).
        word_dropout: probability of replacing a token by the OOV id (0: SimCSE as published).

    Example:
        >>> ids = tokenize(vectorizer, train.texts)                     # doctest: +SKIP
        >>> model.fit(simcse_batches(ids, 64, 128), steps_per_epoch=500)  # doctest: +SKIP
    """
    token_ids, batch_size, sequence_length = _check(token_ids, batch_size, sequence_length)
    word_dropout = validation.check_fraction(word_dropout, "word_dropout")
    lengths = tf.cast(token_ids.row_lengths(), tf.int32)

    def batch(step):
        seed_s = _step_seed(seed, step)
        rows = _distinct_rows(views.derive_seed(seed_s, 0), tf.size(lengths), batch_size)
        starts, window = views.random_windows(views.derive_seed(seed_s, 1), tf.gather(lengths, rows), sequence_length)
        ids = views.gather_spans(token_ids, rows, starts, window, sequence_length)
        if word_dropout > 0:
            ids = views.word_dropout(views.derive_seed(seed_s, 2), ids, word_dropout)
        return tf.ensure_shape(ids, [batch_size, sequence_length])

    return _stream(batch, steps)


def declutr_batches(
    token_ids: tf.RaggedTensor,
    batch_size: int,
    sequence_length: int,
    num_anchors: int = 1,
    num_positives: int = 1,
    min_length: int = 32,
    max_length: int | None = None,
    seed: int = 0,
    steps: int | None = None,
) -> tf.data.Dataset:
    """DeCLUTR batches ``(anchors int32 [B*A, L], positives int32 [B*A, P, L])`` from ``B`` distinct documents.

    Anchor ``b * A + a`` is anchor ``a`` of document ``b``; ``positives[j]``
    are the ``P`` positives of anchor ``j``.

    Args:
        token_ids: ``[documents, (tokens)]`` ragged ids of the training documents.
        batch_size: documents per batch ``B``.
        sequence_length: ``L``, ids per span (a longer span is cut).
        num_anchors, num_positives: ``A`` anchors per document, ``P`` positives per anchor.
        min_length, max_length: ``l_min`` and ``l_max`` of the span lengths
            (default ``max_length = sequence_length``).
        seed, steps: as in :func:`simcse_batches`.
    """
    token_ids, batch_size, sequence_length = _check(token_ids, batch_size, sequence_length)
    num_anchors = validation.check_int(num_anchors, "num_anchors", 1)
    num_positives = validation.check_int(num_positives, "num_positives", 1)
    min_length = validation.check_int(min_length, "min_length", 1)
    max_length = sequence_length if max_length is None else validation.check_int(max_length, "max_length", min_length)
    lengths = tf.cast(token_ids.row_lengths(), tf.int32)

    def batch(step):
        seed_s = _step_seed(seed, step)
        rows = _distinct_rows(views.derive_seed(seed_s, 0), tf.size(lengths), batch_size)
        a_start, a_len, p_start, p_len = views.declutr_spans(
            views.derive_seed(seed_s, 1), tf.gather(lengths, rows), num_anchors, num_positives, min_length, max_length
        )
        anchors = views.gather_spans(token_ids, rows[:, None], a_start, a_len, sequence_length)
        positives = views.gather_spans(token_ids, rows[:, None, None], p_start, p_len, sequence_length)
        anchors = tf.reshape(anchors, [batch_size * num_anchors, sequence_length])
        positives = tf.reshape(positives, [batch_size * num_anchors, num_positives, sequence_length])
        return anchors, positives

    return _stream(batch, steps)


def pair_batches(
    query_ids: tf.RaggedTensor,
    passage_ids: tf.RaggedTensor,
    batch_size: int,
    sequence_length: int,
    seed: int = 0,
    steps: int | None = None,
) -> tf.data.Dataset:
    """Batches ``(queries int32 [B, L], passages int32 [B, L])`` of ``B`` distinct pairs, each cut to its first L tokens.

    Args:
        query_ids, passage_ids: ``[pairs, (tokens)]`` ragged ids; row i of each forms pair i.
        batch_size, sequence_length, seed, steps: as in :func:`simcse_batches`.

    Raises:
        ValueError: a different number of queries and passages, or the checks of :func:`simcse_batches`.
    """
    query_ids, batch_size, sequence_length = _check(query_ids, batch_size, sequence_length)
    passage_ids, _, _ = _check(passage_ids, batch_size, sequence_length)
    if int(query_ids.nrows()) != int(passage_ids.nrows()):
        raise ValueError(
            f"`query_ids` has {int(query_ids.nrows())} rows but `passage_ids` has {int(passage_ids.nrows())}."
        )
    query_lengths = tf.minimum(tf.cast(query_ids.row_lengths(), tf.int32), sequence_length)
    passage_lengths = tf.minimum(tf.cast(passage_ids.row_lengths(), tf.int32), sequence_length)

    def batch(step):
        rows = _distinct_rows(views.derive_seed(_step_seed(seed, step), 0), tf.size(query_lengths), batch_size)
        starts = tf.zeros_like(rows)
        queries = views.gather_spans(query_ids, rows, starts, tf.gather(query_lengths, rows), sequence_length)
        passages = views.gather_spans(passage_ids, rows, starts, tf.gather(passage_lengths, rows), sequence_length)
        return queries, passages

    return _stream(batch, steps)


def _stream(batch, steps: int | None) -> tf.data.Dataset:
    steps_ds = tf.data.Dataset.range(steps) if steps is not None else tf.data.Dataset.range(2**62)
    # steady_pipeline: a fixed prefetch with autotuning off, as every training pipeline (no wait at the end of fit)
    return data.steady_pipeline(steps_ds.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))


def _step_seed(seed: int, step) -> tf.Tensor:
    return tf.stack([tf.constant(int(seed), tf.int64), tf.cast(step, tf.int64)])


def _distinct_rows(seed, count, batch_size: int) -> tf.Tensor:
    """``batch_size`` distinct document indices in ``[0, count)``, uniformly at random."""
    keys = tf.random.stateless_uniform([count], seed)
    return tf.math.top_k(keys, k=batch_size, sorted=False).indices


def _check(token_ids, batch_size, sequence_length):
    if not isinstance(token_ids, tf.RaggedTensor) or token_ids.shape.rank != 2:
        raise ValueError(
            "`token_ids` must be a [documents, (tokens)] tf.RaggedTensor (tfcontrast.text.tokenize), "
            f"got {type(token_ids).__name__}."
        )
    if not token_ids.dtype.is_integer:
        raise ValueError(f"`token_ids` must hold integer ids, got dtype {token_ids.dtype.name}.")
    batch_size = validation.check_int(batch_size, "batch_size", 1)
    sequence_length = validation.check_int(sequence_length, "sequence_length", 1)
    documents = int(token_ids.nrows())
    if batch_size > documents:
        raise ValueError(f"`batch_size` {batch_size} exceeds the {documents} documents of `token_ids`.")
    if np.any(token_ids.row_lengths().numpy() == 0):
        raise ValueError("`token_ids` holds an empty document (no token in the vocabulary's split).")
    return token_ids, batch_size, sequence_length



# ------------------------------------------------------------ batch kinds of the text job
# ``run`` is the job's :class:`tfcontrast.text.TextData` (:mod:`tfcontrast.jobs.text`); the
# windows are ``data.sequence_length`` tokens; batch s is a pure function of (config.seed, s).


def _batch_fits(config, run) -> list:
    if config.train.batch_size > len(run.train):
        return [("config.train.batch_size", f"must be at most the {len(run.train)} training documents, got {config.train.batch_size}")]
    return []


def text_window_stream(config, run, views=None, start_step: int = 0) -> tf.data.Dataset:
    """:func:`simcse_batches` of the run's training documents, from step ``start_step``."""
    t = config.train
    stream = simcse_batches(
        run.token_ids, t.batch_size, config.data.sequence_length, seed=config.seed, steps=t.steps,
        word_dropout=t.word_dropout,
    )
    return stream.skip(start_step)


def text_span_stream(config, run, views=None, start_step: int = 0) -> tf.data.Dataset:
    """:func:`declutr_batches` of the run's training documents (``config.model``'s anchors and positives)."""
    t = config.train
    stream = declutr_batches(
        run.token_ids, t.batch_size, config.data.sequence_length, config.model.num_anchors, config.model.num_positives,
        min_length=t.min_span_tokens, seed=config.seed, steps=t.steps,
    )
    return stream.skip(start_step)


register_batch_kind(
    "text_windows",
    summary="ids [B, L]: a random window of sequence_length tokens of B distinct training documents",
    fields={
        "batch_size": Int(64, "documents per step (distinct; each is also a negative of the others)", min=2),
        "word_dropout": Float(0.0, "probability of replacing a token by the OOV id (0: SimCSE as published)", within="[0, 1)"),
    },
    stream=text_window_stream,
    examples_per_step=lambda train: train.batch_size,
    check=_batch_fits,
    example={"batch_size": 8},
    data="text",
)

register_batch_kind(
    "text_spans",
    summary="(anchors [B*A, L], positives [B*A, P, L]): DeCLUTR spans of B distinct training documents",
    fields={
        "batch_size": Int(64, "documents per step (distinct; A anchors and A*P positives each)", min=2),
        "min_span_tokens": Int(32, "shortest span in tokens (the paper: 32); longest: data.sequence_length", min=1),
    },
    stream=text_span_stream,
    examples_per_step=lambda train: train.batch_size,
    check=_batch_fits,
    example={"batch_size": 8, "min_span_tokens": 4},
    data="text",
)
