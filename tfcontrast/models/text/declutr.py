"""DeCLUTR (Giorgi, Nitski, Wang and Bader, "DeCLUTR: Deep Contrastive Learning for Unsupervised Textual Representations", ACL 2021).

From each of N documents, A anchor spans are sampled and, for each anchor,
P positive spans that may overlap it, be adjacent to it or lie inside it
(:func:`tfcontrast.text.views.declutr_spans`, the paper's Beta(4, 2) /
Beta(2, 4) span lengths). The P positive embeddings of an anchor are
averaged, and the NT-Xent loss (eq. 2 of the paper, SimCLR's) runs over the
2AN embeddings: each anchor's positive is its averaged positive, every other
anchor and positive of the global batch is a negative
(:func:`tfcontrast.losses.nt_xent_loss`, gathered across replicas).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import validation
from tfcontrast.losses.ntxent import nt_xent_loss
from tfcontrast.fields import Float, Int
from tfcontrast.models.text.base import TextContrastiveModel, unpack_batch
from tfcontrast.registry import register_method
from tfcontrast.text.streams import declutr_batches


@keras.saving.register_keras_serializable(package="tfcontrast")
class DeCLUTR(TextContrastiveModel):
    """DeCLUTR trained with ``model.fit`` on ``(anchors [N*A, L], positives [N*A, P, L])`` batches.

    Args:
        encoder: built Keras model, ``int ids [batch, length] -> [batch, dim]``.
        num_anchors: A, anchors per document (paper: 2).
        num_positives: P, positives per anchor (paper: 2).
        temperature: NT-Xent temperature (> 0).
        collapse_metrics: see :class:`~tfcontrast.models.text.base.TextContrastiveModel`.

    :meth:`batches` builds the matching stream from tokenised documents.

    Example:
        >>> from tfcontrast.text import build_vectorizer, tokenize
        >>> from tfcontrast.models.encoders import text_transformer
        >>> texts = [" ".join(f"w{(i * 7 + j) % 50}" for j in range(60)) for i in range(16)]
        >>> vectorizer = build_vectorizer(texts, vocab_size=60, sequence_length=32)
        >>> model = DeCLUTR(text_transformer(60, 32, dim=32, depth=1, heads=2), num_anchors=1, num_positives=2)
        >>> model.compile(optimizer="adam")
        >>> stream = model.batches(tokenize(vectorizer, texts), batch_size=8, sequence_length=32, min_length=8)
        >>> model.fit(stream, steps_per_epoch=2, verbose=0).history["loss"][0] > 0
        True
    """

    def __init__(
        self,
        encoder: keras.Model,
        num_anchors: int = 1,
        num_positives: int = 1,
        temperature: float = 0.05,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        super().__init__(encoder, temperature=temperature, collapse_metrics=collapse_metrics, **kwargs)
        self.num_anchors = validation.check_int(num_anchors, "num_anchors", 1)
        self.num_positives = validation.check_int(num_positives, "num_positives", 1)
        self.built = True

    def batches(self, token_ids, batch_size: int, sequence_length: int, **options) -> tf.data.Dataset:
        """:func:`tfcontrast.text.declutr_batches` with this model's ``num_anchors`` and ``num_positives``."""
        return declutr_batches(
            token_ids, batch_size, sequence_length, self.num_anchors, self.num_positives, **options
        )

    def embed_pairs(self, anchors, positives, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """``(anchor embeddings [M, dim], mean positive embeddings [M, dim])``, float32, one encoder pass."""
        anchors = tf.convert_to_tensor(anchors)
        positives = tf.convert_to_tensor(positives)
        if positives.shape.rank != 3 or (positives.shape[1] is not None and positives.shape[1] != self.num_positives):
            raise ValueError(
                f"`positives` must be [anchors, num_positives={self.num_positives}, length], got {positives.shape}."
            )
        m = tf.shape(anchors)[0]
        flat_positives = tf.reshape(positives, [-1, tf.shape(positives)[2]])
        h = tf.cast(self.encoder(tf.concat([anchors, flat_positives], axis=0), training=training), tf.float32)
        anchor_embeddings = h[:m]
        positive_embeddings = tf.reshape(h[m:], [m, self.num_positives, -1])
        return anchor_embeddings, tf.reduce_mean(positive_embeddings, axis=1)

    def batch_loss(self, data, training):
        parts = unpack_batch(data)
        if len(parts) != 2:
            raise ValueError(f"DeCLUTR expects (anchors, positives) batches, got {len(parts)} tensors.")
        anchor_embeddings, positive_embeddings = self.embed_pairs(*parts, training=training)
        return nt_xent_loss(anchor_embeddings, positive_embeddings, self.temperature), anchor_embeddings

    def get_config(self):
        return {**super().get_config(), "num_anchors": self.num_anchors, "num_positives": self.num_positives}


register_method(
    "declutr",
    DeCLUTR,
    batch="text_spans",
    summary="DeCLUTR (Giorgi et al., ACL 2021): NT-Xent between anchor spans and nearby spans of the same document",
    fields={
        "num_anchors": Int(doc="A, anchor spans per document", min=1),
        "num_positives": Int(doc="P, positive spans per anchor (their embeddings are averaged)", min=1),
        "temperature": Float(doc="NT-Xent temperature", within="(0, inf)"),
    },
)
