"""SavedModel export of a text model: raw strings in, embeddings or document names out.

:func:`export_text_model` writes, with ``keras.export.ExportArchive``, a
SavedModel whose signatures take ``tf.string [batch]``, so TF Serving,
``tf.saved_model.load`` or ``saved_model_cli`` use it with no tokeniser and no
tfcontrast installed:

* ``embed`` (also ``serving_default``): ``text`` -> ``{"embeddings": float32 [batch, dim]}``;
* ``lookup`` (with ``names`` and ``embeddings``): ``text`` ->
  ``{"names": string [batch, k], "scores": float32 [batch, k]}``, the ``k``
  documents with the highest cosine similarity, best first (an exact search
  in the graph through :class:`tfcontrast.index.NearestNeighbors`; ``k`` is
  clamped to the number of documents, as by every index; a text whose
  embedding is not finite gets name ``""``, score ``-inf``).

The directory is written to a temporary name and renamed into place, so an
interrupted export leaves any previous one intact.

Example:
    >>> model = string_encoder(vectorizer, encoder)                                   # doctest: +SKIP
    >>> export_text_model(model, "/tmp/text", names=docs.ids, embeddings=embed(docs.texts))  # doctest: +SKIP
    $ saved_model_cli run --dir /tmp/text --tag_set serve --signature_def lookup \\
        --input_exprs 'text=["eigenvalues of a symmetric matrix"]'
"""

from __future__ import annotations

import os
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfcontrast.index.nearest_neighbors import NearestNeighbors
from tfcontrast.index.persistence import atomic_directory

TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")


def export_text_model(
    model: keras.Model,
    path: str | os.PathLike,
    names: Sequence[str] | None = None,
    embeddings: np.ndarray | None = None,
    k: int = 10,
) -> str:
    """Writes a SavedModel with ``embed`` and (given ``names`` and ``embeddings``) ``lookup`` signatures.

    Args:
        model: a Keras model ``tf.string [batch] -> [batch, dim]``
            (:func:`tfcontrast.text.string_encoder`).
        path: the SavedModel directory (replaced atomically if it exists).
        names: the name of each indexed document (e.g. ``"numpy.linalg.eigh"``).
        embeddings: ``[len(names), dim]`` their embeddings by ``model``.
        k: documents returned by ``lookup``.

    Returns:
        The absolute path written.

    Raises:
        ValueError: only one of ``names`` / ``embeddings``, lengths that
            differ, or a dimension other than the model's.
    """
    if (names is None) != (embeddings is None):
        raise ValueError("`names` and `embeddings` go together: pass both for a lookup signature, or neither.")
    archive = keras.export.ExportArchive()
    archive.track(model)

    def embed(text):
        return {"embeddings": tf.cast(model(text, training=False), tf.float32)}

    archive.add_endpoint("embed", embed, input_signature=[TEXT_SPEC])
    if names is not None:
        names = [str(n) for n in names]
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.ndim != 2 or len(embeddings) != len(names):
            raise ValueError(
                f"`embeddings` must be [len(names)={len(names)}, dim], got shape {embeddings.shape}."
            )
        dim = int(model.compute_output_spec(keras.KerasTensor((None,), dtype="string")).shape[-1])
        if embeddings.shape[1] != dim:
            raise ValueError(f"`embeddings` are {embeddings.shape[1]}-d but the model outputs {dim}-d ones.")
        neighbors = NearestNeighbors(embeddings, k=int(k), metric="cosine")
        table = tf.constant(names + [""])  # id -1 (padding) reads the last entry
        archive.track(neighbors)

        def lookup(text):
            found = neighbors(tf.cast(model(text, training=False), tf.float32))
            ids = tf.where(found["ids"] < 0, tf.cast(len(names), tf.int64), found["ids"])
            scores = tf.where(found["ids"] < 0, -np.inf, 1.0 - found["distances"])
            return {"names": tf.gather(table, ids), "scores": scores}

        archive.add_endpoint("lookup", lookup, input_signature=[TEXT_SPEC])
    path = os.path.abspath(os.fspath(path))
    with atomic_directory(path) as tmp:
        archive.write_out(tmp, verbose=False)
    return path
