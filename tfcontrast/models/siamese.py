"""Supervised similarity models trained with plain ``model.fit``.

* :class:`SiameseNetwork`: one shared encoder (the "tower") applied to two or
  three inputs (Bromley et al., "Signature Verification using a Siamese Time
  Delay Neural Network", NIPS 1993). On pairs ``((x1, x2), y)`` it returns the
  pair distance and trains with a compiled pair loss, typically
  :class:`tfcontrast.losses.ContrastiveLoss` (Hadsell et al. 2006); on
  triplets ``((anchor, positive, negative),)`` it trains with the triplet
  margin loss ``max(d(a, p) - d(a, n) + margin, 0)`` (Schroff et al.,
  "FaceNet", 2015).
* :class:`EmbeddingModel`: encoder -> linear projection -> L2 normalisation,
  trained on ``(x, labels)`` with any label-based loss of the package
  (:class:`~tfcontrast.losses.TripletLoss`, :class:`~tfcontrast.losses.SupConLoss`,
  ...), mining its pairs or triplets inside each batch. Feed it P x K batches
  (:func:`tfcontrast.data.class_balanced_batches`) so that every batch holds
  positives. Or with a ``loss_head`` that owns trainable class weights
  (:class:`~tfcontrast.losses.ArcFaceLoss`, :class:`~tfcontrast.losses.CosFaceLoss`,
  :class:`~tfcontrast.losses.ProxyAnchorLoss`, :class:`~tfcontrast.losses.ProxyNCALoss`),
  which needs no positive pairs in the batch.

Both show, next to the loss, the mean distance of positive pairs
(``pos_dist``), of negative pairs (``neg_dist``) and their gap
(``dist_gap = neg_dist - pos_dist``): a gap that grows means the embedding
separates the classes. Under a ``tf.distribute`` strategy these are global:
sums and counts are all-reduced across replicas before dividing, and
:class:`EmbeddingModel` compares each anchor with every example of the global
batch. The train steps hold no Python state and compile with
``jit_compile=True``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import distances, distribute, validation
from tfcontrast.losses import base as losses_base
from tfcontrast.fields import Bool, Choice, Int
from tfcontrast.models.distributed_fit import DistributedFitMixin, multiworker_safe_logs
from tfcontrast.models.ssl.base import encoder_feature_dim
from tfcontrast.registry import register_method


def pair_distances(a, b, metric: str = "euclidean") -> tf.Tensor:
    """Row-wise distances ``d(a_i, b_i)``: ``[batch]`` float32 (smaller is closer).

    Same metrics and conventions as :func:`tfcontrast.distances.pairwise_distances`
    (the diagonal of its matrix, computed in O(batch * dim)); the Euclidean
    distance has a zero gradient at 0 instead of NaN.
    """
    validation.check_choice(metric, distances.METRICS, "metric")
    a, b = validation.to_float(a, "a"), validation.to_float(b, "b")
    b = tf.cast(b, a.dtype)
    validation.check_rank(a, 2, "a")
    validation.check_rank(b, 2, "b")
    validation.check_same_dim(a, b, -1, ("a", "b"))
    if metric == "inner_product":
        return -tf.reduce_sum(a * b, axis=1)
    if metric == "cosine":
        cos = tf.reduce_sum(distances.l2_normalize(a) * distances.l2_normalize(b), axis=1)
        return tf.clip_by_value(1.0 - cos, 0.0, 2.0)
    squared = tf.reduce_sum(tf.square(a - b), axis=1)
    return distances.safe_sqrt(squared) if metric == "euclidean" else squared


class _SimilarityModel(DistributedFitMixin, keras.Model):
    """Shared machinery: encoder checks, the train/test steps and the distance metrics.

    Subclasses implement :meth:`batch_loss`, returning the loss (this
    replica's share of the global loss) and the local sums and counts of
    positive and negative distances.
    """

    def __init__(self, encoder: keras.Model, distance: str = "euclidean", **kwargs):
        super().__init__(**kwargs)
        self.feature_dim = encoder_feature_dim(encoder)
        self.encoder = encoder
        self.distance = validation.check_choice(distance, distances.METRICS, "distance")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.pos_tracker = keras.metrics.Mean(name="pos_dist")
        self.neg_tracker = keras.metrics.Mean(name="neg_dist")
        self.gap_tracker = keras.metrics.Mean(name="dist_gap")

    def batch_loss(self, data, training: bool):
        """Returns ``(loss, [pos_sum, pos_count, neg_sum, neg_count])`` for one batch."""
        raise NotImplementedError

    @property
    def metrics(self):
        return [self.loss_tracker, self.pos_tracker, self.neg_tracker, self.gap_tracker]

    def fit(self, x=None, y=None, *args, **kwargs):
        _check_not_empty(x, "x")
        history = super().fit(x, y, *args, **kwargs)
        if history.epoch and not history.history:
            raise ValueError("`x` yielded no batch: the dataset is empty.")
        return history

    def train_step(self, data):
        self._check_compiled_metrics()
        with tf.GradientTape() as tape:
            loss, stats = self._checked_batch_loss(data, training=True)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return self._record(loss, stats)

    def test_step(self, data):
        self._check_compiled_metrics()
        loss, stats = self._checked_batch_loss(data, training=False)
        return self._record(loss, stats)

    def _checked_batch_loss(self, data, training: bool):
        """:meth:`batch_loss`, NaN when a floating input is not finite.

        A ReLU or a max-pool can hide a NaN pixel from the embeddings (the loss
        stays finite) while its gradient turns the weights NaN; a NaN loss makes
        that visible (``TerminateOnNaN`` stops). One reduction over the inputs.
        """
        loss, stats = self.batch_loss(data, training=training)
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return losses_base.nan_unless(validation.all_finite(x), loss), stats

    def _check_compiled_metrics(self) -> None:
        if getattr(self, "_compile_metrics", None) is not None:
            raise ValueError(
                f"{type(self).__name__} reports its own metrics (loss, pos_dist, neg_dist, dist_gap); "
                "compile(metrics=...) is not supported: compile with an optimizer and a loss only."
            )

    def _record(self, loss, stats) -> dict:
        self.loss_tracker.update_state(distribute.unscale_share(loss))
        sums = distribute.all_reduce_sum(tf.stop_gradient(tf.cast(tf.stack(stats), tf.float32)))
        pos_sum, pos_count, neg_sum, neg_count = tf.unstack(sums)
        pos, neg = tf.math.divide_no_nan(pos_sum, pos_count), tf.math.divide_no_nan(neg_sum, neg_count)
        has_pos, has_neg = tf.cast(pos_count > 0, tf.float32), tf.cast(neg_count > 0, tf.float32)
        self.pos_tracker.update_state(pos, sample_weight=has_pos)
        self.neg_tracker.update_state(neg, sample_weight=has_neg)
        self.gap_tracker.update_state(neg - pos, sample_weight=has_pos * has_neg)
        return multiworker_safe_logs({m.name: m.result() for m in self.metrics})

    def regularization_loss(self) -> tf.Tensor:
        """This replica's share of the layers' regularisation losses (as Keras scales them)."""
        if not self.losses:
            return tf.zeros([])
        return tf.add_n([tf.cast(tf.reduce_sum(l), tf.float32) for l in self.losses]) / distribute.num_replicas()

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "distance": self.distance,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfcontrast")
class SiameseNetwork(_SimilarityModel):
    """One shared encoder on pairs (contrastive) or triplets (triplet margin).

    The encoder is called once on the inputs concatenated along the batch
    axis (so BatchNorm sees all of them): there is a single set of weights,
    ``model.encoder``, which is what to keep after training
    (``model.embed(x)`` runs it).

    * **Pairs**: ``model((x1, x2))`` returns the ``[batch]`` distances
      ``d(encoder(x1), encoder(x2))``. Train on ``((x1, x2), y)`` with
      ``y = 1`` for similar pairs and 0 for dissimilar ones, with the pair
      loss given to ``compile`` (:class:`tfcontrast.losses.ContrastiveLoss`;
      batches from :func:`tfcontrast.data.pair_dataset`).
    * **Triplets**: ``model((anchor, positive, negative))`` returns ``[batch, 2]``
      distances ``(d(a, p), d(a, n))``. Train on ``((anchor, positive,
      negative),)`` batches (:func:`tfcontrast.data.triplet_dataset`; the outer
      1-tuple makes Keras read the triplet as ``x``) with the built-in loss
      ``mean_i max(d(a_i, p_i) - d(a_i, n_i) + margin, 0)``: the ``margin``
      given here; any loss given to ``compile`` is used for pairs only, and
      ``compile(optimizer)`` alone is enough for triplets. Labels riding along
      with triplets are ignored.

    Args:
        encoder: a built Keras model mapping inputs to ``[batch, features]``.
        distance: ``"euclidean"`` (default), ``"sqeuclidean"``, ``"cosine"``
            or ``"inner_product"`` (see :mod:`tfcontrast.distances`).
        margin: the triplet margin (>= 0), used for triplet batches.

    Metrics: ``loss``, ``pos_dist`` / ``neg_dist`` (mean distance of similar /
    dissimilar pairs, or of anchor-positive / anchor-negative) and ``dist_gap``.

    Raises:
        ValueError: an encoder that is not a built model with a ``[batch,
            features]`` output; inputs that are not a pair or a triplet, or
            whose shapes differ; pair batches without labels or without a
            compiled loss.

    Example:
        >>> model = SiameseNetwork(tfc.models.encoders.mlp_encoder((8, 8, 1), (64, 32)))  # doctest: +SKIP
        >>> model.compile(optimizer="adam", loss=tfc.losses.ContrastiveLoss(margin=1.0))
        >>> model.fit(tfc.data.pair_dataset(x, labels, batch_size=128, steps=500))
        >>> model.embed(x_test)
    """

    def __init__(self, encoder: keras.Model, distance: str = "euclidean", margin: float = 1.0, **kwargs):
        super().__init__(encoder, distance=distance, **kwargs)
        self.margin = validation.check_non_negative(margin, "margin")
        self.built = True  # the encoder is the only sublayer and it is built

    def embed(self, x, training: bool = False) -> tf.Tensor:
        """The shared tower's embeddings ``[batch, features]``."""
        return self.encoder(x, training=training)

    def call(self, inputs, training=False):
        towers = _towers(inputs)
        embeddings = self.encoder(tf.concat(towers, axis=0), training=training)
        parts = tf.split(embeddings, len(towers), axis=0)
        if len(parts) == 2:
            return pair_distances(parts[0], parts[1], self.distance)
        return tf.stack(
            [pair_distances(parts[0], parts[1], self.distance), pair_distances(parts[0], parts[2], self.distance)],
            axis=1,
        )

    def batch_loss(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        triplets = len(_towers(x)) == 3
        d = self(x, training=training)
        if triplets:
            d_ap, d_an = d[:, 0], d[:, 1]
            hinge = tf.maximum(d_ap - d_an + self.margin, 0.0)
            count = tf.cast(tf.shape(hinge)[0], tf.float32)
            loss = distribute.replica_share(tf.reduce_sum(hinge), count) + self.regularization_loss()
            return loss, [tf.reduce_sum(d_ap), count, tf.reduce_sum(d_an), count]
        if y is None:
            raise ValueError("pair batches must be ((x1, x2), y) with y = 1 for similar pairs, 0 otherwise; got no y.")
        if self.loss is None:
            raise ValueError(
                "pair batches need a pair loss: compile(optimizer, loss=tfcontrast.losses.ContrastiveLoss(...))."
            )
        y = _pair_labels(y, d)
        loss = self.compute_loss(x=x, y=y, y_pred=d, sample_weight=sample_weight, training=training)
        positive = tf.cast(y, tf.float32)
        return loss, [
            tf.reduce_sum(d * positive),
            tf.reduce_sum(positive),
            tf.reduce_sum(d * (1.0 - positive)),
            tf.reduce_sum(1.0 - positive),
        ]

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def fit(self, x=None, y=None, *args, **kwargs):
        if y is not None and isinstance(x, (tuple, list)) and len(x) == 2:
            validation.host_binary_labels(y, name="y")  # pair labels: 1 = similar, 0 = dissimilar
        return super().fit(x, y, *args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


@keras.saving.register_keras_serializable(package="tfcontrast")
class EmbeddingModel(_SimilarityModel):
    """Encoder -> linear projection -> L2 normalisation, trained from class labels.

    ``model(x)`` (and ``predict``) returns the embeddings
    ``e = normalize(W encoder(x) + b)``. ``fit(x, labels)`` minimises the
    compiled label-based loss on ``(labels, embeddings)``: any loss of
    :mod:`tfcontrast.losses` that mines the batch (``TripletLoss``,
    ``TripletSemiHardLoss``, ``TripletHardLoss``, ``SupConLoss``). Such losses
    need several examples per class in a batch: feed
    :func:`tfcontrast.data.class_balanced_batches`.

    A loss that owns trainable class weights (proxies) is given as
    ``loss_head`` instead (:class:`~tfcontrast.losses.ArcFaceLoss`,
    :class:`~tfcontrast.losses.CosFaceLoss`, :class:`~tfcontrast.losses.ProxyAnchorLoss`,
    :class:`~tfcontrast.losses.ProxyNCALoss`, or any Keras layer called as
    ``head(labels, embeddings)`` returning a scalar loss): the model tracks
    it, so its class weights are trained by the model's optimizer, saved in
    ``.keras`` and weights files, restored by ``keras.models.load_model`` and
    mirrored under a strategy (create the model, head included, inside
    ``strategy.scope()``). ``compile(optimizer)`` alone is then enough; a
    compiled loss, if any, is added to the head's loss (e.g. ArcFace plus a
    triplet loss). The head is used for the loss only: ``model(x)`` and
    ``predict`` return the embeddings.

    Args:
        encoder: a built Keras model mapping inputs to ``[batch, features]``;
            ``model.encoder`` after training.
        embedding_dim: width of the linear projection; ``None`` for no
            projection (the encoder's features are the embedding).
        normalize: L2-normalise the embeddings (unit sphere; the usual choice
            for triplet margins around 0.2 and for SupCon).
        distance: the metric of the ``pos_dist`` / ``neg_dist`` / ``dist_gap``
            training metrics (the loss uses its own).
        loss_head: ``None`` or a loss layer with trainable class weights,
            called as ``loss_head(labels, embeddings)``; its ``embedding_dim``
            must be the model's embedding width, or ``None``: the model then
            builds the head for its width (inside the current strategy scope).

    The ``pos_dist`` / ``neg_dist`` metrics average the distances between
    every anchor of the batch and every other example of the same / another
    class (the global batch under a strategy).

    Raises:
        ValueError: a bad encoder or ``embedding_dim``, a ``loss_head`` that is
            not a Keras layer, has another ``embedding_dim`` or was created
            outside the strategy scope the model is built in; at ``fit``:
            labels that are not integer class ids or do not match ``x`` (or,
            with a head, lie outside ``[0, num_classes)``), empty data, no
            compiled loss and no head, a loss with class weights given to
            ``compile`` instead of ``loss_head``, sample weights with a head.

    Example:
        >>> model = EmbeddingModel(tfc.models.encoders.digits_cnn(), embedding_dim=64)  # doctest: +SKIP
        >>> model.compile(optimizer="adam", loss=tfc.losses.TripletLoss(margin=0.2))
        >>> model.fit(tfc.data.class_balanced_batches(x, labels, 10, 8, steps=1000))
        >>> embeddings = model.predict(x_test)
        >>> model.save("embedder.keras")   # keras.models.load_model("embedder.keras") with `import tfcontrast`
        >>> face = EmbeddingModel(encoder, embedding_dim=512,  # doctest: +SKIP
        ...                       loss_head=tfc.losses.ArcFaceLoss(num_classes=10_000, embedding_dim=512))
        >>> face.compile(optimizer="adam")
        >>> face.fit(images, identities, batch_size=256)
        >>> model.export_embedder("embedder_savedmodel")   # any TensorFlow process, no tfcontrast

    Handing the model over: a ``.keras`` file (``model.save``) stores the
    class name ``EmbeddingModel``, so ``keras.models.load_model`` finds it
    only after ``import tfcontrast`` (else "Could not locate class
    'EmbeddingModel'"). For someone without tfcontrast, :meth:`export_embedder`
    writes a SavedModel (signatures ``embed``, ``lookup``...) that
    ``tf.saved_model.load``, ``saved_model_cli`` and TF Serving run alone.
    """

    def __init__(
        self,
        encoder: keras.Model,
        embedding_dim: int | None = None,
        normalize: bool = True,
        distance: str = "euclidean",
        loss_head: keras.layers.Layer | None = None,
        **kwargs,
    ):
        super().__init__(encoder, distance=distance, **kwargs)
        if embedding_dim is not None and (
            not isinstance(embedding_dim, (int, np.integer)) or isinstance(embedding_dim, bool) or embedding_dim < 1
        ):
            raise ValueError(f"`embedding_dim` must be a positive int or None, got {embedding_dim!r}.")
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.normalize = bool(normalize)
        self.projection = None
        if self.embedding_dim is not None:
            self.projection = keras.layers.Dense(self.embedding_dim, name="projection")
            self.projection.build((None, self.feature_dim))
        self.loss_head = _check_loss_head(loss_head, self.embedding_dim or self.feature_dim)
        self.built = True  # every sublayer is built: fit, save and load can start

    def call(self, inputs, training=False):
        h = self.encoder(inputs, training=training)
        if self.projection is not None:
            h = self.projection(h)
        return distances.l2_normalize(h) if self.normalize else tf.cast(h, tf.float32)

    def batch_loss(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("EmbeddingModel trains on (x, labels): got no labels.")
        self._check_losses(sample_weight)
        embeddings = self(x, training=training)
        labels = validation.as_labels(y, embeddings.shape[0], name="labels")
        # The loss gets the labels as fed (it checks and compares them exactly itself) and is told
        # whether this step trains, so that stateful losses (XBM's memory) change only in training.
        if self.loss is not None:
            with losses_base.training_phase(training):
                loss = self.compute_loss(x=x, y=y, y_pred=embeddings, sample_weight=sample_weight, training=training)
        if self.loss_head is not None:
            extra = loss if self.loss is not None else self.regularization_loss()
            loss = self.loss_head(labels, embeddings) + extra
        return loss, _in_batch_stats(labels, tf.stop_gradient(embeddings), self.distance)

    def _check_losses(self, sample_weight) -> None:
        if self.loss is None and self.loss_head is None:
            raise ValueError(
                "EmbeddingModel needs a label-based loss: compile(optimizer, loss=tfcontrast.losses.TripletLoss(...)), "
                "or a loss with class weights as EmbeddingModel(..., loss_head=tfcontrast.losses.ArcFaceLoss(...))."
            )
        if isinstance(self.loss, keras.layers.Layer):
            raise ValueError(
                f"{type(self.loss).__name__} owns trainable class weights: give it to "
                "EmbeddingModel(..., loss_head=...), not to compile(loss=...), so that they are trained and saved."
            )
        if self.loss_head is not None and sample_weight is not None:
            raise ValueError("sample weights are not supported with a `loss_head`.")

    def fit(self, x=None, y=None, *args, **kwargs):
        if y is not None and not isinstance(x, tf.data.Dataset):
            _check_labels_for(x, y)
            if self.loss_head is not None and hasattr(self.loss_head, "check_labels"):
                self.loss_head.check_labels(y)
        return super().fit(x, y, *args, **kwargs)

    def export_embedder(self, path, index=None, *, k=None, contract=None, input_signature=None) -> str:
        """Writes this model (inputs -> embeddings) as a SavedModel that needs no tfcontrast.

        A thin call of :func:`tfcontrast.export.export_saved_model` (see it for
        the arguments, signatures and errors) with this model as the encoder
        and, by default, the input signature of ``self.encoder``.
        """
        from tfcontrast import export

        spec = input_signature if input_signature is not None else export.input_spec(self.encoder)
        return export.export_saved_model(self, path, index, k=k, input_signature=spec, contract=contract)

    def get_config(self):
        config = {**super().get_config(), "embedding_dim": self.embedding_dim, "normalize": self.normalize}
        if self.loss_head is not None:
            config["loss_head"] = keras.saving.serialize_keras_object(self.loss_head)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("loss_head") is not None:
            config["loss_head"] = keras.saving.deserialize_keras_object(config["loss_head"])
        return super().from_config(config)


def _check_loss_head(head, width: int):
    """``head`` (None or a Keras layer whose ``embedding_dim``, if it has one, is ``width``)."""
    if head is None:
        return None
    if not isinstance(head, keras.layers.Layer):
        raise ValueError(
            "`loss_head` must be a Keras layer called as head(labels, embeddings), such as "
            f"tfcontrast.losses.ArcFaceLoss(num_classes, embedding_dim); got {type(head).__name__}."
        )
    if getattr(head, "embedding_dim", 0) is None and not head.built:
        head.build((None, width))  # a head created without a width (ArcFaceLoss(num_classes)) takes the model's
    strategy = tf.distribute.get_strategy()
    if any(not strategy.extended.variable_created_in_scope(getattr(v, "value", v)) for v in head.weights):
        raise ValueError(
            "`loss_head` was created outside the scope of the strategy the model is built in: create it inside "
            "`strategy.scope()` together with the model, so that its class weights are mirrored."
        )
    head_dim = getattr(head, "embedding_dim", None)
    if head_dim is not None and head_dim != width:
        raise ValueError(
            f"`loss_head` expects embeddings of width {head_dim} but the model's embeddings have width {width}: "
            "give the head embedding_dim equal to the model's embedding_dim (or encoder width)."
        )
    return head


def embedding_network(model: EmbeddingModel) -> keras.Model:
    """``model`` as a plain functional network (inputs -> normalised embeddings), to save and export."""
    inputs = keras.Input(model.encoder.input_shape[1:])
    return keras.Model(inputs, model(inputs), name="embedder")


register_method(
    "siamese",
    SiameseNetwork,
    batch="pairs",
    summary="siamese network: one shared encoder on labelled pairs, trained with a pair loss (config.loss)",
    fields={"distance": Choice(distances.METRICS, doc="pair distance: euclidean | sqeuclidean | cosine | inner_product")},
    loss="pairs",
    default_loss="contrastive",
)

register_method(
    "embedding",
    EmbeddingModel,
    batch="class_balanced",
    summary="encoder -> linear projection -> L2 normalisation, trained from labels with a metric loss (config.loss)",
    fields={
        "embedding_dim": Int(doc="width of the linear projection after the encoder; None = no projection", min=1,
                             optional=True),
        "normalize": Bool(doc="L2-normalise the embeddings (unit sphere)"),
        "distance": Choice(distances.METRICS, doc="distance of the pos_dist / neg_dist progress metrics (the loss has its own)"),
    },
    embedder=embedding_network,
    loss="labels",
    default_loss="triplet",
    example={"embedding_dim": 16},
)


def _towers(inputs) -> list:
    """The 2 or 3 input batches of a Siamese call, checked for matching shapes."""
    if isinstance(inputs, (tuple, list)) and len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):
        inputs = inputs[0]  # ((anchor, positive, negative),) as a whole
    if isinstance(inputs, dict) or not isinstance(inputs, (tuple, list)) or len(inputs) not in (2, 3):
        seen = type(inputs).__name__ if not hasattr(inputs, "shape") else f"a tensor of shape {inputs.shape}"
        raise ValueError(
            "SiameseNetwork takes a pair (x1, x2) or a triplet (anchor, positive, negative) as x; "
            f"got {seen}. A dataset of bare (anchor, positive, negative) tuples is read by Keras as "
            "(x, y, sample_weight): yield ((anchor, positive, negative),) as tfcontrast.data.triplet_dataset does."
        )
    towers = [tf.convert_to_tensor(t) for t in inputs]
    names = ("x1", "x2") if len(towers) == 2 else ("anchor", "positive", "negative")
    for name, tower in zip(names[1:], towers[1:]):
        first, this = towers[0].shape, tower.shape
        if first.rank != this.rank or not first[1:].is_compatible_with(this[1:]) or not first[:1].is_compatible_with(this[:1]):
            raise ValueError(f"`{names[0]}` and `{name}` must have the same shape, got {first} and {this}.")
    return towers


def _pair_labels(y, d) -> tf.Tensor:
    y = tf.convert_to_tensor(y)
    if y.shape.rank == 2 and y.shape[1] == 1:
        y = tf.reshape(y, [-1])
    if y.shape.rank != 1:
        raise ValueError(f"pair labels `y` must be [batch] or [batch, 1] (1 = similar, 0 = dissimilar), got shape {y.shape}.")
    validation.check_same_dim(y, d, 0, ("y", "x1"))
    if not (y.dtype.is_floating or y.dtype.is_integer or y.dtype == tf.bool):
        raise ValueError(f"pair labels `y` must be numbers 1 (similar) or 0, got dtype {y.dtype.name}.")
    return tf.cast(y, tf.float32)


def _in_batch_stats(labels, embeddings, metric: str) -> list:
    """Local sums and counts of positive / negative distances against the global batch."""
    candidates, offset = distribute.gather(embeddings)
    candidate_labels, _ = distribute.gather(labels)
    d = distances.pairwise_distances(embeddings, candidates, metric=metric)
    rows = tf.range(tf.shape(embeddings)[0])[:, None] + offset
    is_self = tf.equal(rows, tf.range(tf.shape(candidates)[0])[None, :])
    same = tf.equal(labels[:, None], candidate_labels[None, :])
    positive = tf.cast(same & ~is_self, d.dtype)
    negative = tf.cast(~same, d.dtype)
    return [
        tf.reduce_sum(d * positive),
        tf.reduce_sum(positive),
        tf.reduce_sum(d * negative),
        tf.reduce_sum(negative),
    ]


def _num_examples(x):
    """The number of examples of array-like ``x`` (its first leaf's first axis), or None if unknown."""
    if x is None or isinstance(x, tf.data.Dataset):
        return None
    leaves = tf.nest.flatten(x)
    shape = getattr(leaves[0], "shape", None) if leaves else None
    return int(shape[0]) if shape is not None and len(shape) and shape[0] is not None else None


def _check_not_empty(x, name: str) -> None:
    if isinstance(x, tf.data.Dataset):
        if int(x.cardinality()) == 0:
            raise ValueError(f"`{name}` is an empty dataset (cardinality 0): there is nothing to train on.")
        return
    if _num_examples(x) == 0:
        raise ValueError(f"`{name}` is empty (0 examples): there is nothing to train on.")


def _check_labels_for(x, y) -> None:
    """Eager check of array labels: integer class ids (any integer width), one per example of ``x``."""
    n = _num_examples(x)
    labels = np.asarray(y)
    expected = n if n is not None else (labels.shape[0] if labels.ndim else 0)
    validation.host_class_ids(labels, expected, name="y")
