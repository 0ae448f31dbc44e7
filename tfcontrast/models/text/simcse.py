"""SimCSE, unsupervised (Gao, Yao and Chen, "SimCSE: Simple Contrastive Learning of Sentence Embeddings", EMNLP 2021).

Each text goes through the encoder twice in training mode; the two passes
differ only by their dropout masks, and that noise is the whole augmentation.
With h_i, h_i' the two embeddings of text i, a batch of N texts and
temperature t (eq. 4 of the paper),

    L = 1/N sum_i -log( exp(cos(h_i, h_i') / t) / sum_j exp(cos(h_i, h_j') / t) ),

the in-batch softmax over the second views, i.e.
:func:`tfcontrast.losses.multiple_negatives_ranking_loss` with
``scale = 1 / t``: under a ``tf.distribute`` strategy the second views of
every replica are negatives.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distances
from tfcontrast.fields import Float
from tfcontrast.losses.ranking import multiple_negatives_ranking_loss
from tfcontrast.models.text.base import TextContrastiveModel, unpack_batch
from tfcontrast.registry import register_method


@keras.saving.register_keras_serializable(package="tfcontrast")
class SimCSE(TextContrastiveModel):
    """Unsupervised SimCSE trained with ``model.fit`` on batches of token ids.

    Args:
        encoder: built Keras model with dropout, ``int ids [batch, length] ->
            [batch, dim]`` (:func:`tfcontrast.models.encoders.text_transformer`);
            without dropout both views are equal and nothing is learned.
        temperature: t (paper: 0.05).
        collapse_metrics: see :class:`~tfcontrast.models.text.base.TextContrastiveModel`.

    Example:
        >>> from tfcontrast.text import build_vectorizer, tokenize, simcse_batches
        >>> from tfcontrast.models.encoders import text_transformer
        >>> texts = ["the first document about eigenvalues", "a second one about sparse matrices"] * 8
        >>> vectorizer = build_vectorizer(texts, vocab_size=100, sequence_length=16)
        >>> model = SimCSE(text_transformer(100, 16, dim=32, depth=1, heads=2))
        >>> model.compile(optimizer="adam")
        >>> stream = simcse_batches(tokenize(vectorizer, texts), batch_size=8, sequence_length=16)
        >>> model.fit(stream, steps_per_epoch=2, verbose=0).history["loss"][0] > 0
        True
    """

    def __init__(self, encoder: keras.Model, temperature: float = 0.05, collapse_metrics: bool = True, **kwargs):
        super().__init__(encoder, temperature=temperature, collapse_metrics=collapse_metrics, **kwargs)
        self.built = True

    def dropout_views(self, ids, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
        """The two embeddings ``(h, h')`` of ``ids``: one encoder pass over the batch twice, ``[B, dim]`` each."""
        h = self.encoder(tf.concat([ids, ids], axis=0), training=training)
        return tf.split(h, 2, axis=0)

    def view_logits(self, ids, training: bool = True) -> tf.Tensor:
        """``[B, B]`` logits ``cos(h_i, h_j') / t``; the diagonal holds the positives."""
        h, h_prime = self.dropout_views(ids, training)
        return tf.matmul(distances.l2_normalize(h), distances.l2_normalize(h_prime), transpose_b=True) / self.temperature

    def batch_loss(self, data, training):
        (ids,) = unpack_batch(data)[:1]
        h, h_prime = self.dropout_views(ids, training)
        loss = multiple_negatives_ranking_loss(h, h_prime, scale=1.0 / self.temperature)
        return loss, h


register_method(
    "simcse",
    SimCSE,
    batch="text_windows",
    summary="SimCSE (Gao, Yao and Chen, EMNLP 2021): in-batch NT-Xent between two dropout passes of each text",
    fields={"temperature": Float(doc="softmax temperature t of cos(h, h') / t", within="(0, inf)")},
)
