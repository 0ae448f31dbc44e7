"""PIRL: Pretext-Invariant Representation Learning (Misra and van der Maaten, CVPR 2020).

The representation of an image should not change when a pretext transform
(a jigsaw shuffle) is applied to it. Two heads share one encoder:

* f(v_I): the image (view 1) -> encoder -> a linear head;
* g(v_It): the jigsaw of the image (view 2 cut into ``jigsaw_grid`` x
  ``jigsaw_grid`` tiles, shuffled, each tile through the encoder on its own,
  the tile features concatenated in the shuffled order) -> a linear head.

A memory bank holds one entry per training image, m_I, the exponential
moving average of its f(v_I) (renormalised after each update):

    m_I <- (mu m_I + (1 - mu) f~(v_I)) / ||mu m_I + (1 - mu) f~(v_I)||,   f~ = f / ||f||,

with mu = ``memory_momentum`` (paper: 0.5). The loss contrasts both heads
with the image's memory entry against N = ``num_negatives`` entries drawn
uniformly from the bank (PIRL's NCE, :class:`tfcontrast.losses.NCELoss`):

    L = lambda L_NCE(m_I, g(v_It)) + (1 - lambda) L_NCE(m_I, f(v_I)),   lambda = ``loss_weight``.

The NCE's noise level mu (the expected ``exp(x.m'/t)`` over memory entries
m', so that ``N mu`` stands for PIRL's sum over the negatives) is tracked as

    mu_0 = mu_batch(0),   mu_k = rho mu_{k-1} + (1 - rho) mu_batch(k),   rho = ``noise_momentum``,

with mu_batch(k) the mean of ``exp(x.n_j/t)`` over step k's queries and
negatives (global batch, no gradient). rho = 1 (the default) is NPID's and
PIRL's practice (Wu et al., CVPR 2018; VISSL's ``NCELossWithMemory``): mu
is estimated on the first batch, while the bank is still random, and then
kept. That assumes the representations stay as spread out as random
vectors. When they do not (a small dataset with few classes: on digits the
batch estimate of log mu grows from 1.7 at step 0 to 9-12 once the bank
holds trained entries), the fixed mu is too small by a factor of thousands:
every negative closer than ``cos ~ t log(N mu_0)`` gets a weight near 1 in
the gradient, the N negatives outweigh the single positive by two to three
orders of magnitude, the same-class entries are pushed apart and the bank
loses its structure (``benchmarks/RESULTS.md``, section 14). rho < 1 keeps
``N mu`` near the current sum over the negatives, so their total weight
stays about 1, as in the softmax (InfoNCE) form; ``configs/pirl_digits.py``
uses rho = 0 (this step's estimate).

Batches carry each image's index (the row of its memory entry):
``((view_1, view_2), index)`` from :func:`tfcontrast.data.indexed_dataset`,
the batch kind ``indexed_views`` registered here for the ``tfcontrast``
command.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfcontrast import data, distribute, losses, validation
from tfcontrast.fields import Float, Int
from tfcontrast.models.ssl import sampling
from tfcontrast.models.ssl.base import TwoViewModel
from tfcontrast.registry import register_batch_kind, register_method

_PERMUTATIONS, _NEGATIVES = 0, 1  # the random streams of a step


def jigsaw_tiles(images, grid: int, permutations, tile_size=None) -> tf.Tensor:
    """The shuffled jigsaw tiles of ``images``: ``[B * grid^2, *tile_size, C]``, image b's tiles consecutive.

    Each ``[H, W, C]`` image is cut into ``grid x grid`` tiles of
    ``(H // grid) x (W // grid)`` pixels (the centre ``grid * (H // grid)``
    rows and columns; a remainder of fewer than ``grid`` pixels is left out at
    the borders), numbered row by row. Slot t of image b holds tile
    ``permutations[b, t]``. With ``tile_size = (h, w)`` every tile is resized
    to it (bilinear), so that an encoder with a fixed input size reads it.

    Args:
        images: ``[B, H, W, C]``.
        grid: tiles per side (>= 1).
        permutations: ``[B, grid^2]`` ints, a permutation of ``0 .. grid^2 - 1`` per image.
        tile_size: ``None`` (keep the tiles' size) or ``(height, width)``.
    """
    images = tf.convert_to_tensor(images)
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    th, tw = height // grid, width // grid
    if th < 1 or tw < 1:
        raise ValueError(f"a {grid} x {grid} jigsaw needs images of at least {grid} px a side, got {height} x {width}.")
    top, left = (height - grid * th) // 2, (width - grid * tw) // 2
    x = images[:, top:top + grid * th, left:left + grid * tw, :]
    x = tf.reshape(x, [-1, grid, th, grid, tw, channels])
    x = tf.reshape(tf.transpose(x, [0, 1, 3, 2, 4, 5]), [-1, grid * grid, th, tw, channels])
    x = tf.gather(x, tf.cast(permutations, tf.int32), batch_dims=1)
    x = tf.reshape(x, [-1, th, tw, channels])
    if tile_size is not None and tuple(tile_size) != (th, tw):
        x = tf.cast(tf.image.resize(x, tuple(tile_size), method="bilinear"), images.dtype)
    return x


@keras.saving.register_keras_serializable(package="tfcontrast")
class PIRL(TwoViewModel):
    """PIRL with a jigsaw pretext, trained with ``model.fit`` on ``((view_1, view_2), index)`` batches.

    **Data.** Every batch carries the row of each image in the training set
    (:func:`tfcontrast.data.indexed_dataset`): ``((view_1, view_2), index)``,
    or ``(images, index)`` with ``augment`` drawing the views in the step.
    View 1 feeds f, view 2 the jigsaw; ``index`` must lie in ``[0, memory_size)``.

    **State.** The memory bank ``memory`` ``[memory_size, projection_dim]``
    (float32, started with random unit vectors as NPID does), the noise
    level ``log_noise_mean`` (log mu of the NCE: estimated on the first
    training batch, then kept or tracked as ``noise_momentum`` says; see the
    module docstring), the step and the seed of the random draws are model
    variables: checkpointed and restored with the weights.

    **Draws.** Every step draws one jigsaw permutation per image and N
    negative indices uniformly from the bank (with replacement, shared by the
    batch; an index equal to a query's own image is masked out of that
    query's sum), as a pure function of the seed, the step and the image's
    row in the global batch (:mod:`tfcontrast.models.ssl.sampling`).

    **Small images.** A tile of an 8 x 8 digit is 4 x 4 (grid 2) or 2 x 2
    (grid 3) pixels. Tiles are resized (bilinear) to the encoder's input size,
    so any encoder with a fixed input shape reads them and a tile shows its
    strokes at the scale the encoder sees whole digits at; zero-padding them
    instead would leave most of each input blank. Use ``jigsaw_grid=2`` on
    8 x 8 digits (``configs/pirl_digits.py``); the paper's 3 x 3 is for
    images of 64 px and more. (The paper augments each tile on its own; here
    view 2 is augmented as a whole before it is cut.)

    **Under a strategy** the memory updates (indices and projections of every
    replica, gathered in replica order) are applied identically on every
    replica, so the banks stay the same; the noise estimate and the loss are
    over the global batch: R replicas equal one device. The encoder's
    BatchNorm should be synchronized for that (the built-in encoders' is).

    Args:
        encoder: built Keras model, images ``[batch, H, W, C]`` -> ``[batch, features]``.
        projection_dim: width of f, g and the memory entries (paper: 128).
        memory_size: entries of the bank: the number of training images (required).
        num_negatives: N, memory entries drawn as negatives per step (paper: 4096).
        temperature: NCE temperature t (paper: 0.07).
        memory_momentum: mu of the memory EMA, in [0, 1) (paper: 0.5).
        loss_weight: lambda, the weight of the jigsaw term, in [0, 1] (paper: 0.5).
        jigsaw_grid: tiles per side of the jigsaw (paper: 3).
        noise_momentum: rho of the noise level's EMA, in [0, 1]: 1 (the
            default, NPID and PIRL) fixes mu on the first batch, 0 re-estimates
            it on every step's batch (module docstring: why digits needs < 1).
        augment, collapse_metrics: see :class:`tfcontrast.models.ssl.base.TwoViewModel`.

    Raises:
        ValueError: a missing or bad ``memory_size``, a bad count or rate, an
            encoder that does not read images, a grid larger than the image.

    Example:
        >>> encoder = tfc.models.encoders.digits_cnn((8, 8, 1))                    # doctest: +SKIP
        >>> model = PIRL(encoder, memory_size=len(x), num_negatives=1024, jigsaw_grid=2)  # doctest: +SKIP
        >>> model.compile(optimizer=keras.optimizers.AdamW(2e-3))                    # doctest: +SKIP
        >>> model.fit(tfc.data.indexed_dataset(x, 256, views, repeat=True), steps_per_epoch=50, epochs=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        encoder: keras.Model,
        projection_dim: int = 128,
        memory_size: int | None = None,
        num_negatives: int = 4096,
        temperature: float = 0.07,
        memory_momentum: float = 0.5,
        loss_weight: float = 0.5,
        jigsaw_grid: int = 3,
        noise_momentum: float = 1.0,
        augment=None,
        collapse_metrics: bool = True,
        **kwargs,
    ):
        super().__init__(encoder, augment=augment, collapse_metrics=collapse_metrics, **kwargs)
        if memory_size is None:
            raise ValueError("`memory_size` is required: the number of training images (one memory entry each).")
        for value, name, low in ((projection_dim, "projection_dim", 1), (memory_size, "memory_size", 2),
                                 (num_negatives, "num_negatives", 1), (jigsaw_grid, "jigsaw_grid", 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"`{name}` must be an int >= {low}, got {value!r}.")
        input_shape = tuple(encoder.input_shape)
        if len(input_shape) != 4:
            raise ValueError(f"PIRL's jigsaw needs an encoder of images [batch, H, W, C], got input shape {input_shape}.")
        self.tile_size = None if None in input_shape[1:3] else tuple(input_shape[1:3])
        if self.tile_size is not None and min(self.tile_size) < jigsaw_grid:
            raise ValueError(f"`jigsaw_grid` ({jigsaw_grid}) exceeds the encoder's input size {self.tile_size}.")
        self.projection_dim = projection_dim
        self.memory_size = memory_size
        self.num_negatives = num_negatives
        self.memory_momentum = validation.check_fraction(memory_momentum, "memory_momentum")
        self.loss_weight = validation.check_fraction(loss_weight, "loss_weight", inclusive_high=True)
        self.jigsaw_grid = jigsaw_grid
        self.noise_momentum = validation.check_fraction(noise_momentum, "noise_momentum", inclusive_high=True)
        self.nce = losses.NCELoss(temperature)
        self.temperature = self.nce.temperature
        tiles = jigsaw_grid * jigsaw_grid
        self.image_head = keras.layers.Dense(projection_dim, name="image_head")
        self.jigsaw_head = keras.layers.Dense(projection_dim, name="jigsaw_head")
        self.image_head.build((None, self.feature_dim))
        self.jigsaw_head.build((None, tiles * self.feature_dim))
        self.memory = self.add_weight(
            shape=(memory_size, projection_dim), initializer=sampling.unit_rows, dtype="float32",
            trainable=False, autocast=False, name="memory",
        )
        self.log_noise_mean = self.add_weight(
            shape=(), dtype="float32", initializer="zeros", trainable=False, autocast=False, name="log_noise_mean"
        )
        self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="ssl_step")
        self.sample_seed = self.add_weight(
            shape=(), dtype="int64", initializer=keras.initializers.Constant(sampling.new_seed()),
            trainable=False, name="sample_seed",
        )
        self.built = True

    # ----------------------------------------------------------------- data

    def batch_inputs(self, data):
        x, index, _ = keras.utils.unpack_x_y_sample_weight(data)
        if index is None or not index.dtype.is_integer or index.shape.rank not in (None, 1):
            got = "nothing" if index is None else f"{index.dtype.name} of shape {index.shape}"
            raise ValueError(
                "PIRL needs each image's index, [batch] ints: feed ((view_1, view_2), index) or (images, index) "
                f"batches, e.g. tfcontrast.data.indexed_dataset(x, batch_size, views); got {got} in its place."
            )
        return self.views(x), {"index": index}

    # ------------------------------------------------------------- the heads

    def permutations(self, batch) -> tf.Tensor:
        """``[batch, grid^2]`` jigsaw permutations of this step, one per image of the global batch."""
        tiles = self.jigsaw_grid * self.jigsaw_grid
        u = sampling.replica_uniform(self.sample_seed, self.step, _PERMUTATIONS, batch, tiles)
        return tf.argsort(u, axis=1, stable=True)

    def negative_indices(self) -> tf.Tensor:
        """``[num_negatives]`` memory rows drawn (uniformly, with replacement) as this step's negatives."""
        u = sampling.uniform(self.sample_seed, self.step, _NEGATIVES, self.num_negatives, 1)[:, 0]
        return sampling.random_indices(u, self.memory_size)

    def image_projections(self, images, training: bool = False):
        """``(f(v_I) [B, d] float32, encoder features [B, F])``."""
        representations = self.encoder(images, training=training)
        return tf.cast(self.image_head(representations, training=training), tf.float32), representations

    def jigsaw_projections(self, images, permutations, training: bool = False) -> tf.Tensor:
        """g(v_It) ``[B, d]`` float32: the tiles of each image (in the order ``permutations`` gives) -> encoder -> concat -> head."""
        tiles = jigsaw_tiles(images, self.jigsaw_grid, permutations, self.tile_size)
        features = self.encoder(tiles, training=training)
        concatenated = tf.reshape(features, [-1, self.jigsaw_grid * self.jigsaw_grid * self.feature_dim])
        return tf.cast(self.jigsaw_head(concatenated, training=training), tf.float32)

    # ------------------------------------------------------------------ loss

    def two_view_loss(self, view_1, view_2, training, index=None):
        if index is None:
            raise ValueError("PIRL's loss needs each image's index (see PIRL.batch_inputs).")
        index = tf.reshape(tf.cast(index, tf.int32), [-1])
        f, representations = self.image_projections(view_1, training)
        g = self.jigsaw_projections(view_2, self.permutations(tf.shape(view_2)[0]), training)
        memory = tf.convert_to_tensor(self.memory)
        positives = tf.gather(memory, index)
        negative_index = self.negative_indices()
        negatives = tf.gather(memory, negative_index)
        mask = negative_index[None, :] != index[:, None]  # never the query's own image
        estimate = losses.nce_log_noise_mean(tf.concat([f, g], 0), negatives, self.temperature, tf.concat([mask, mask], 0))
        log_noise_mean = tf.where(self.step > 0, self.tracked_log_noise_mean(estimate), estimate)
        jigsaw_loss = self.nce(g, positives, negatives, log_noise_mean, mask)
        image_loss = self.nce(f, positives, negatives, log_noise_mean, mask)
        loss = self.loss_weight * jigsaw_loss + (1.0 - self.loss_weight) * image_loss
        extras = {"index": index, "image_projections": tf.math.l2_normalize(f, axis=1), "log_noise_mean": log_noise_mean}
        return loss, f, representations, extras

    def tracked_log_noise_mean(self, estimate) -> tf.Tensor:
        """log mu of a step after the first: ``log(rho mu_prev + (1 - rho) mu_batch)``, rho = ``noise_momentum``.

        ``estimate`` is ``log mu_batch`` of this step; rho = 1 keeps the stored
        level (the first batch's), rho = 0 takes the estimate.
        """
        previous = tf.convert_to_tensor(self.log_noise_mean)
        rho = self.noise_momentum
        if rho == 1.0:
            return previous
        if rho == 0.0:
            return estimate
        return tf.reduce_logsumexp(tf.stack([previous + math.log(rho), estimate + math.log(1.0 - rho)]))

    # ---------------------------------------------------------------- memory

    def after_update(self, projections, state) -> None:
        """The memory EMA of the global batch's images, the step's noise level, then k <- k + 1."""
        super().after_update(projections, state)
        index, _ = distribute.gather(state["index"])
        rows, _ = distribute.gather(state["image_projections"])
        self.update_memory(index, rows)
        distribute.assign_on_every_replica(
            [self.log_noise_mean, self.step], [state["log_noise_mean"], self.step + 1]
        )

    def update_memory(self, index, projections) -> None:
        """``m_i <- normalise(mu m_i + (1 - mu) p)`` for every (index i, unit projection p), on every replica.

        An image listed twice gets the update of its last row.
        """
        index = tf.reshape(tf.cast(index, tf.int32), [-1])
        projections = tf.cast(projections, tf.float32)
        mu = self.memory_momentum
        updated = tf.math.l2_normalize(mu * tf.gather(tf.convert_to_tensor(self.memory), index) + (1.0 - mu) * projections, 1)
        rows = tf.range(tf.shape(index)[0])
        last = tf.reduce_max(tf.where(index[:, None] == index[None, :], rows[None, :], -1), axis=1)
        distribute.scatter_on_every_replica(self.memory, index, tf.gather(updated, last))

    def get_config(self):
        return {
            **super().get_config(),
            "projection_dim": self.projection_dim,
            "memory_size": self.memory_size,
            "num_negatives": self.num_negatives,
            "temperature": self.temperature,
            "memory_momentum": self.memory_momentum,
            "loss_weight": self.loss_weight,
            "jigsaw_grid": self.jigsaw_grid,
            "noise_momentum": self.noise_momentum,
        }


# ------------------------------------------------------------ registration


def indexed_views(config, run, views, start_step: int = 0) -> tf.data.Dataset:
    """``((view_1, view_2), index)``: two views of every image and its row in the training split."""
    stream = data.indexed_dataset(run.x_train, config.train.batch_size, views, seed=config.seed, repeat=True)
    return stream.take(config.train.steps).skip(start_step)


def _indices_fit(config, run) -> list[tuple[str, str]]:
    from tfcontrast.jobs.batches import batch_no_larger_than_the_data  # jobs imports the models: import late

    problems = batch_no_larger_than_the_data(config, run)
    size, n_train = config.model.get("memory_size"), len(run.x_train)
    if size is not None and size < n_train:
        problems.append(
            ("config.model.memory_size", f"must be >= the {n_train} training images (one entry each), got {size}")
        )
    return problems


register_batch_kind(
    "indexed_views",
    summary="((view_1, view_2), index): two views of every image and its row in the training split",
    fields={"batch_size": Int(256, "images per step (each seen as two views)", min=2)},
    stream=indexed_views,
    examples_per_step=lambda train: train.batch_size,
    needs_views=True,
    check=_indices_fit,
    example={"batch_size": 32},
)


def build_pirl(config, encoder, context) -> PIRL:
    """PIRL from the ``model`` section; ``memory_size=None`` takes the size of the run's training split."""
    section = dict(config.model)
    if section["memory_size"] is None:
        from tfcontrast.jobs import inputs  # the split is a pure function of the config

        section["memory_size"] = len(inputs.load_split(config).x_train)
    return PIRL(encoder, **section, **dict(context.model_kwargs))


register_method(
    "pirl",
    PIRL,
    batch="indexed_views",
    summary="PIRL (Misra and van der Maaten, CVPR 2020): NCE between an image, its jigsaw and a memory bank",
    fields={
        "projection_dim": Int(doc="width of the heads f, g and the memory entries (paper: 128)", min=1),
        "memory_size": Int(None, "memory entries, one per training image; None = the training split's size",
                           min=2, optional=True),
        "num_negatives": Int(doc="N: memory entries drawn as negatives per step (paper: 4096)", min=1),
        "temperature": Float(doc="NCE temperature, > 0 (paper: 0.07)", within="(0, inf)"),
        "memory_momentum": Float(doc="EMA rate of the memory entries, in [0, 1) (paper: 0.5)", within="[0, 1)"),
        "loss_weight": Float(doc="lambda: weight of the jigsaw term, in [0, 1] (paper: 0.5)", within="[0, 1]"),
        "jigsaw_grid": Int(doc="tiles per side of the jigsaw (paper: 3; 2 on 8 x 8 digits)", min=1),
        "noise_momentum": Float(doc="rho: EMA rate of the NCE noise level mu, in [0, 1]; 1 = estimated on the "
                                "first batch and fixed (NPID, PIRL), 0 = re-estimated every step", within="[0, 1]"),
    },
    build=build_pirl,
    example={"projection_dim": 16, "num_negatives": 64, "jigsaw_grid": 2},
)
