"""Dual encoder for (query, passage) pairs with in-batch negatives (multiple negatives ranking loss).

Henderson et al., "Efficient Natural Language Response Suggestion for Smart
Reply", arXiv:1705.00652, 2017; the training of sentence-transformers' bi-encoders
with ``MultipleNegativesRankingLoss``. Queries and passages go through one
shared tower, or through a query tower and a passage tower; query i's positive
is passage i and every other passage of the global batch is a negative
(:func:`tfcontrast.losses.multiple_negatives_ranking_loss`).

Pairs can come from labelled data (question, answer) or from the structure of
documents: e.g. a docstring's first paragraph and the rest of it
(:func:`tfcontrast.text.evaluation.summary_task` builds such pairs), the
"inverse cloze task" of Lee, Chang and Toutanova (ACL 2019) in its
first-paragraph form.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import validation
from tfcontrast.losses.ranking import multiple_negatives_ranking_loss
from tfcontrast.models.ssl.base import encoder_feature_dim
from tfcontrast.models.text.base import TextContrastiveModel, unpack_batch


@keras.saving.register_keras_serializable(package="tfcontrast")
class DualEncoder(TextContrastiveModel):
    """Trains on ``(queries [B, L], passages [B, L'])`` token-id batches with ``model.fit``.

    Args:
        encoder: the query tower (and the passage tower when ``passage_encoder`` is None).
        passage_encoder: an optional separate passage tower with the same output size.
        scale: logits are ``scale * cos`` (20 as in sentence-transformers; a temperature of 1 / scale).
        collapse_metrics: see :class:`~tfcontrast.models.text.base.TextContrastiveModel`.

    ``predict`` / ``call`` embed with the query tower; :meth:`embed_passages`
    with the passage tower.

    Example:
        >>> from tfcontrast.models.encoders import text_transformer
        >>> model = DualEncoder(text_transformer(100, 16, dim=32, depth=1, heads=2))
        >>> model.compile(optimizer="adam")
        >>> q = np.random.randint(2, 100, size=(8, 16)); p = np.random.randint(2, 100, size=(8, 16))
        >>> model.fit(q, p, batch_size=8, verbose=0).history["loss"][0] > 0
        True
    """

    def __init__(
        self,
        encoder: keras.Model,
        passage_encoder: keras.Model | None = None,
        scale: float = 20.0,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        scale = validation.check_positive(scale, "scale")
        super().__init__(encoder, temperature=1.0 / scale, collapse_metrics=collapse_metrics, **kwargs)
        self.scale = scale
        if passage_encoder is not None and encoder_feature_dim(passage_encoder) != self.feature_dim:
            raise ValueError(
                f"`passage_encoder` outputs {encoder_feature_dim(passage_encoder)}-d embeddings but `encoder` "
                f"outputs {self.feature_dim}-d ones."
            )
        self.passage_encoder = passage_encoder
        self.built = True

    def embed_passages(self, passages, training: bool = False) -> tf.Tensor:
        """Passage embeddings (the passage tower, or the shared one)."""
        tower = self.encoder if self.passage_encoder is None else self.passage_encoder
        return tower(passages, training=training)

    def batch_loss(self, data, training):
        parts = unpack_batch(data)
        if len(parts) != 2:
            raise ValueError(f"DualEncoder expects (queries, passages) batches, got {len(parts)} tensors.")
        queries = self.encoder(parts[0], training=training)
        passages = self.embed_passages(parts[1], training=training)
        return multiple_negatives_ranking_loss(queries, passages, scale=self.scale), queries

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k != "temperature"}
        passage = self.passage_encoder
        return {
            **config,
            "passage_encoder": None if passage is None else keras.saving.serialize_keras_object(passage),
            "scale": self.scale,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("passage_encoder") is not None:
            config["passage_encoder"] = keras.saving.deserialize_keras_object(config["passage_encoder"])
        return super().from_config(config)
