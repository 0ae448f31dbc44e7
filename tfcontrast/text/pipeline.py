"""The text workflow in four calls, from plain arguments (what a config or a registry entry passes).

1. :func:`prepare_text_data`: load documents, split them, adapt the
   vectorizer on the training part and tokenise it -> :class:`TextData`;
2. :func:`text_encoder`: an encoder by name (``"transformer"``, ``"cnn"``);
   wrap it in :class:`tfcontrast.models.SimCSE` / :class:`tfcontrast.models.DeCLUTR`
   and ``fit`` on :func:`tfcontrast.text.simcse_batches` / ``model.batches(...)``;
3. :func:`evaluate_text_encoder`: span -> span and summary -> body retrieval
   on the held-out documents, with baselines in the same table;
4. :func:`export_text_index`: a SavedModel whose ``lookup`` takes raw strings
   and returns the names of the nearest documents.

Example:
    >>> data = prepare_text_data("docstrings", vocab_size=20000, sequence_length=512)      # doctest: +SKIP
    >>> model = tfc.models.DeCLUTR(text_encoder("transformer", data.vocab_size, 512, dim=512, depth=0))  # doctest: +SKIP
    >>> model.compile(optimizer="adam")                                                     # doctest: +SKIP
    >>> model.fit(model.batches(data.token_ids, 64, 512, min_length=8), steps_per_epoch=1200)  # doctest: +SKIP
    >>> evaluate_text_encoder(model.encoder, data)["trained"]["span/recall@1"]             # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import tensorflow as tf

from tfcontrast.text.corpus import Documents, load_documents
from tfcontrast.text.encoders import text_cnn, text_transformer
from tfcontrast.text.evaluation import evaluate_text_retrieval, retrieval_tasks, tfidf_embedder
from tfcontrast.text.export import export_text_model
from tfcontrast.text.vectorizer import build_vectorizer, embedder, string_encoder, tokenize

ENCODERS: dict[str, Callable[..., keras.Model]] = {"transformer": text_transformer, "cnn": text_cnn}


@dataclass(frozen=True)
class TextData:
    """A corpus split for training and evaluation, with the vectorizer adapted on the training part.

    Attributes:
        documents: every document (train + held out), e.g. for the export index.
        train: the documents the vectorizer, the baselines and the models are fitted on.
        held_out: the documents of the evaluation.
        vectorizer: ``TextVectorization`` adapted on ``train`` (padding / truncating to ``sequence_length``).
        token_ids: ``[len(train), (tokens)]`` whole training documents as ragged ids (the streams' input).
    """

    documents: Documents
    train: Documents
    held_out: Documents
    vectorizer: keras.layers.TextVectorization
    token_ids: tf.RaggedTensor

    @property
    def vocab_size(self) -> int:
        return int(self.vectorizer.vocabulary_size())

    @property
    def sequence_length(self) -> int:
        return int(self.vectorizer.get_config()["output_sequence_length"])

    def metadata(self) -> dict:
        """JSON-ready facts for a run folder: the source (package versions...), split sizes, vocabulary."""
        return {
            **{k: v for k, v in self.documents.metadata.items() if k != "split"},
            "documents": len(self.documents),
            "train": len(self.train),
            "held_out": len(self.held_out),
            "split": self.held_out.metadata.get("split"),
            "vocab_size": self.vocab_size,
            "sequence_length": self.sequence_length,
        }


def prepare_text_data(
    source="docstrings",
    vocab_size: int = 20000,
    sequence_length: int = 128,
    test_fraction: float = 0.2,
    seed: int = 0,
    **loader_options,
) -> TextData:
    """Loads ``source`` (:func:`tfcontrast.text.load_documents`), splits it and prepares the training tokens.

    Args:
        source: ``"docstrings"``, a folder of ``.txt`` files, a ``.jsonl``
            file, a list of strings or :class:`Documents`.
        vocab_size, sequence_length: of the vectorizer (:func:`tfcontrast.text.build_vectorizer`).
        test_fraction, seed: the split (:meth:`Documents.split`).
        **loader_options: for the loader, e.g. ``packages=("numpy",)``,
            ``min_words=80`` or ``text_field="body"``.
    """
    documents = load_documents(source, **loader_options)
    train, held_out = documents.split(test_fraction, seed)
    vectorizer = build_vectorizer(train.texts, vocab_size, sequence_length)
    return TextData(documents, train, held_out, vectorizer, tokenize(vectorizer, train.texts))


def text_encoder(kind: str, vocab_size: int, sequence_length: int, **options) -> keras.Model:
    """``ENCODERS[kind](vocab_size, sequence_length, **options)``: ``"transformer"`` or ``"cnn"``.

    Raises:
        ValueError: an unknown ``kind`` (the known ones are listed), or the builder's own errors.
    """
    if kind not in ENCODERS:
        raise ValueError(f"`kind` must be one of {sorted(ENCODERS)}, got {kind!r}.")
    return ENCODERS[kind](vocab_size, sequence_length, **options)


def evaluate_text_encoder(
    encoder: keras.Model,
    data: TextData,
    seed: int = 0,
    baselines: Sequence[str] = ("tfidf",),
    extra: dict[str, Callable] | None = None,
) -> dict[str, dict[str, float]]:
    """Retrieval metrics of ``encoder`` (row ``"trained"``) and baselines on ``data.held_out``, one task draw.

    Args:
        encoder: token ids -> embeddings (the ``encoder`` of a trained model).
        data: from :func:`prepare_text_data`.
        seed: the span draw (every row sees the same queries and targets).
        baselines: ``"tfidf"`` (fitted on ``data.train``).
        extra: more rows, ``name -> embed(texts)`` (e.g. a random encoder, word2vec means).

    Returns:
        ``{row: {"span/recall@1": ..., ...}}`` (:func:`tfcontrast.text.evaluate_text_retrieval`).
    """
    tasks = retrieval_tasks(data.held_out, seed)
    rows: dict[str, Callable] = {}
    if "tfidf" in baselines:
        rows["tfidf"] = tfidf_embedder(data.train.texts)
    rows.update(extra or {})
    rows["trained"] = embedder(string_encoder(data.vectorizer, encoder))
    return {name: evaluate_text_retrieval(embed, tasks) for name, embed in rows.items()}


def export_text_index(
    encoder: keras.Model, data: TextData, path: str | os.PathLike, k: int = 10, documents: Documents | None = None
) -> str:
    """A SavedModel (:func:`tfcontrast.text.export_text_model`) whose ``lookup`` returns the names of ``documents``.

    ``documents`` defaults to every document of ``data`` (train and held out).
    """
    model = string_encoder(data.vectorizer, encoder)
    documents = data.documents if documents is None else documents
    embeddings = embedder(model)(list(documents.texts))
    return export_text_model(model, path, names=documents.ids, embeddings=embeddings, k=k)
