"""The shared base of the contrastive sentence-embedding methods (SimCSE, DeCLUTR).

A method turns one batch of token ids into its loss and the embeddings it
compared (:meth:`TextContrastiveModel.batch_loss`); the base owns the rest:

* the step: gradient of the loss, loss scaling for mixed precision
  (``optimizer.scale_loss``), the optimizer update; TF ops only, no Python
  control flow on tensors, so ``compile(jit_compile=True)`` compiles it with XLA;
* metrics in the progress bar: the loss (global under a strategy), the
  per-dimension std of the normalised embeddings and their effective rank
  (:mod:`tfcontrast.models.ssl.collapse`);
* ``predict`` / ``call``: the encoder's embeddings of token ids.

Inputs are token ids (int32 ``[batch, length]``), as the streams of
:mod:`tfcontrast.text.streams` yield them: string ops (tokenisation) run in
``tf.data``, outside the compiled step. For raw strings wrap the trained
encoder with :func:`tfcontrast.text.string_encoder`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.models.distributed_fit import DistributedFitMixin, multiworker_safe_logs
from tfcontrast.models.ssl import collapse
from tfcontrast.models.ssl.base import encoder_feature_dim


class TextContrastiveModel(DistributedFitMixin, keras.Model):
    """Base class: an encoder of token ids and a method-specific contrastive loss.

    Args:
        encoder: a built Keras model, ``int ids [batch, length] -> [batch, dim]``
            (e.g. :func:`tfcontrast.models.encoders.text_transformer`).
        temperature: the softmax temperature of the method's loss (> 0).
        collapse_metrics: log embedding std and effective rank every step.
    """

    def __init__(self, encoder: keras.Model, temperature: float = 0.05, collapse_metrics: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim = encoder_feature_dim(encoder)
        self.encoder = encoder
        self.temperature = validation.check_positive(temperature, "temperature")
        self.collapse_metrics = bool(collapse_metrics)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.std_tracker = keras.metrics.Mean(name="emb_std")
        self.rank_tracker = keras.metrics.Mean(name="erank")

    def batch_loss(self, data, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """``(loss, embeddings [n, dim])`` of one batch; ``loss`` is this replica's share."""
        raise NotImplementedError

    def call(self, inputs, training=False):
        """Embeddings of token ids: what ``predict`` returns."""
        return self.encoder(inputs, training=training)

    @property
    def metrics(self):
        trackers = [self.loss_tracker]
        if self.collapse_metrics:
            trackers += [self.std_tracker, self.rank_tracker]
        return trackers

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, embeddings = self.batch_loss(data, training=True)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return self._record(loss, embeddings)

    def test_step(self, data):
        loss, embeddings = self.batch_loss(data, training=False)
        return self._record(loss, embeddings)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, (tuple, list)):
            x = x[0]
        return self(x, training=False)

    def _record(self, loss, embeddings) -> dict:
        self.loss_tracker.update_state(distribute.unscale_share(loss))
        if self.collapse_metrics:
            embeddings = tf.stop_gradient(tf.cast(embeddings, tf.float32))
            self.std_tracker.update_state(collapse.projection_std(embeddings))
            self.rank_tracker.update_state(collapse.effective_rank(embeddings))
        return multiworker_safe_logs({m.name: m.result() for m in self.metrics})

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "temperature": self.temperature,
            "collapse_metrics": self.collapse_metrics,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def unpack_batch(data) -> tuple:
    """The tensors of a batch as a flat tuple, whether Keras packed it as ``x``, ``(x,)`` or ``(x, y)``."""
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    parts = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    return parts if y is None else parts + (y,)
