"""The text job's optional second stage: (summary, body) pairs of the training documents, in-batch negatives.

With ``pairs.steps > 0``, once the method (e.g. DeCLUTR) has trained its
``train.steps``, the text job (:mod:`tfcontrast.jobs.text`) trains the same
encoder ``pairs.steps`` more steps as a :class:`tfcontrast.models.DualEncoder`
with one shared tower: for ``train.batch_size`` distinct pairs per step, query
i is the first paragraph of a training document (its summary) and its positive
is the rest of that document (its body, first ``data.sequence_length`` tokens),
every other body of the batch a negative,

    L = -(1/B) sum_i log( exp(s * cos(q_i, p_i)) / sum_j exp(s * cos(q_i, p_j)) ),  s = ``pairs.scale``

(:func:`tfcontrast.losses.multiple_negatives_ranking_loss`; Henderson et al.,
"Efficient Natural Language Response Suggestion for Smart Reply",
arXiv:1705.00652, 2017). The pairs come from the layout of the documents,
not from labels: weak supervision, the first-paragraph form of the inverse
cloze task (Lee, Chang and Toutanova, "Latent Retrieval for Weakly Supervised
Open Domain Question Answering", ACL 2019). Only the *training* split gives
pairs (:func:`tfcontrast.text.evaluation.summary_task` of ``data.train``);
the evaluation's summary -> body task asks the same question of the held-out
documents, which the stage never sees. Documents without a blank line after
their first paragraph give no pair.

The stage has its own optimizer (``optimizer.name``, ``weight_decay`` and
``schedule`` of the run, peak ``pairs.lr`` after ``pairs.warmup_steps`` of
linear warm-up) and its own checkpoints in ``checkpoint_pairs/`` (the format of
:mod:`tfcontrast.jobs.checkpoint`: the encoder, the stage's optimizer and its
step, every ``train.steps_per_epoch`` steps). It starts only when the method's
``checkpoint/`` holds all ``train.steps``; a resumed run restores the method's
last checkpoint and then this stage's on top, so neither stage is repeated or
lost, and its batch at step s is a pure function of ``(seed, s)`` as in every
stream. ``train.stop_after_steps`` counts the steps of both stages.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import text
from tfcontrast.fields import Float, Int
from tfcontrast.jobs import checkpoint, components, workdir as workdir_lib
from tfcontrast.jobs.training import restore_checkpoint
from tfcontrast.models.text import DualEncoder

FOLDER = "checkpoint_pairs"
NAME = "pairs"

SECTION = {
    "steps": Int(0, "steps of the (summary, body) pair stage after the method's train.steps; 0: no stage", min=0),
    "scale": Float(20.0, "pair stage: logits = scale * cosine (MultipleNegativesRankingLoss; 1 / temperature)", within="(0, inf)"),
    "lr": Float(1e-3, "pair stage: peak learning rate (optimizer.name / weight_decay / schedule as the method's)", within="(0, inf)"),
    "warmup_steps": Int(0, "pair stage: linear warm-up steps, below pairs.steps", min=0),
}


def later_steps(c) -> int:
    """The stage's steps (the data kind's ``later_steps``: ``train.stop_after_steps`` may fall in them)."""
    return int(c["pairs"]["steps"])


def checks(c) -> list[tuple[str, str]]:
    """``pairs.steps`` is whole epochs of ``train.steps_per_epoch``; the warm-up is shorter than the stage."""
    p, spe = c["pairs"], c["train"]["steps_per_epoch"]
    if not p["steps"]:
        return []
    problems = []
    if p["steps"] % spe:
        problems.append(("config.pairs.steps", f"must be 0 (off) or a multiple of train.steps_per_epoch ({spe}), got {p['steps']}"))
    if p["warmup_steps"] >= p["steps"]:
        problems.append(("config.pairs.warmup_steps", f"must be below pairs.steps ({p['steps']}), got {p['warmup_steps']}"))
    return problems


def training_pairs(data: text.TextData) -> tuple[list[str], list[str]]:
    """``(summaries, bodies)`` of the training documents that have both, each with at least one token."""
    queries, passages, _, _ = _tokenized_pairs(data)
    return queries, passages


def _tokenized_pairs(data: text.TextData):
    """:func:`training_pairs` and their token ids (ragged ``[pairs, (tokens)]``; ``None`` without pairs), tokenized once."""
    task = text.evaluation.summary_task(data.train)
    queries, passages = list(task.queries), list(task.targets)
    if not queries:
        return [], [], None, None
    query_ids, passage_ids = text.tokenize(data.vectorizer, queries), text.tokenize(data.vectorizer, passages)
    keep = np.flatnonzero((query_ids.row_lengths().numpy() > 0) & (passage_ids.row_lengths().numpy() > 0))
    return (
        [queries[i] for i in keep], [passages[i] for i in keep],
        tf.gather(query_ids, keep), tf.gather(passage_ids, keep),
    )


def stream(config, data: text.TextData, start_step: int = 0):
    """:func:`tfcontrast.text.pair_batches` of :func:`training_pairs`, from step ``start_step``.

    Raises:
        ValueError: fewer pairs than ``train.batch_size``.
    """
    queries, _, query_ids, passage_ids = _tokenized_pairs(data)
    if len(queries) < config.train.batch_size:
        raise ValueError(
            f"the pair stage needs train.batch_size ({config.train.batch_size}) (summary, body) pairs, but only "
            f"{len(queries)} training documents have a first paragraph followed by a blank line and a body."
        )
    batches = text.pair_batches(
        query_ids, passage_ids, config.train.batch_size, config.data.sequence_length, seed=config.seed, steps=config.pairs.steps,
    )
    return batches.skip(start_step)


def build_model(config, encoder: keras.Model) -> DualEncoder:
    """A :class:`DualEncoder` sharing ``encoder`` (trained in place), compiled with the stage's optimizer."""
    p = config.pairs
    model = DualEncoder(encoder, scale=p.scale)
    model.compile(
        optimizer=components.build_optimizer(config, lr=p.lr, steps=p.steps, warmup_steps=p.warmup_steps),
        jit_compile=config.train.jit_compile,
    )
    return model


def train(
    config, data: text.TextData, encoder: keras.Model, wd: workdir_lib.Workdir, callbacks: list,
    out: Callable[[str], None] = print,
) -> dict | None:
    """Runs (or resumes, or skips when finished) the stage on ``encoder``; its checkpoint state, ``None`` when off.

    ``encoder`` must hold the method's final weights (the caller restored or
    trained them). When this stage's checkpoints hold ``pairs.steps`` steps, the
    encoder gets their weights and nothing is trained.

    Raises:
        RunError: the stage's checkpoints cannot be restored.
        ValueError: too few pairs for a batch (see :func:`stream`).
    """
    p, spe = config.pairs, config.train.steps_per_epoch
    if not p.steps:
        return None
    model = build_model(config, encoder)
    folder = wd.path(FOLDER)
    state = restore_checkpoint(model, wd, out, directory=folder)
    start_epoch = state["epoch"] if state else 0
    if start_epoch * spe >= p.steps:
        return state
    batches = stream(config, data, start_epoch * spe)
    out(f"{'resuming' if start_epoch else 'training'} the (summary, body) pair stage at step {start_epoch * spe} of {p.steps}")
    stop = config.train.stop_after_steps - config.train.steps
    stopper = checkpoint.StopAfter(stop if stop > start_epoch * spe else 0, spe)
    model.fit(
        batches, epochs=p.steps // spe, steps_per_epoch=spe, initial_epoch=start_epoch,
        callbacks=[checkpoint.Checkpoint(folder, spe, state), stopper, *callbacks], verbose=1,
    )
    return checkpoint.read_state(folder)
