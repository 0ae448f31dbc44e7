"""MoCHi: hard negative mixing for MoCo (Kalantidis, Sariyildiz, Pion, Weinzaepfel and Larlus,
"Hard Negative Mixing for Contrastive Learning", NeurIPS 2020).

For each L2-normalised query q, the queue is ordered by similarity q.n and
its ``top_k`` most similar entries (the hardest negatives, Q^N) are kept. Two
kinds of synthetic negatives are made from them, every step, for every query:

    h_k  = h~_k / ||h~_k||,   h~_k  = a_k n_i + (1 - a_k) n_j,   n_i, n_j in Q^N,  a_k in (0, 1)
    h'_k = h~'_k / ||h~'_k||, h~'_k = b_k q + (1 - b_k) n_j,     n_j in Q^N,       b_k in (0, 0.5)

(``num_mixed`` of the first kind, s in the paper; ``num_query_mixed`` of the
second, s'), with the negatives and coefficients drawn uniformly. They are
appended to that query's logits only, as constants: no gradient flows into
them (the query's own copy in h' included). The draws are a pure function of
the model's seed, the step and the query's row in the global batch
(:mod:`tfcontrast.models.ssl.sampling`), so a resumed run, R replicas and an
XLA step all draw the same. Before ``start_step`` (the paper starts mixing
after a few epochs) the loss is plain MoCo.

Registered as the method ``mochi``: MoCo's config plus the mixing keys
(``model.num_mixed``, ``model.num_query_mixed``, ``model.top_k``,
``model.mixing_start_step``).
"""

from __future__ import annotations

import inspect

import keras
import tensorflow as tf

from tfcontrast.fields import Int
from tfcontrast.models.ssl import sampling
from tfcontrast.models.ssl.moco import MOCO_FIELDS, MoCo
from tfcontrast.registry import register_method

_OPEN = 2.0**-25  # half a step of the 24-bit uniform numbers: maps [0, 1) into (0, 1)


def _count(value, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return value


@keras.saving.register_keras_serializable(package="tfcontrast")
class HardNegativeMixing:
    """MoCHi's synthetic hard negatives, given to ``MoCo(mixing=...)`` (module docstring).

    Args:
        num_mixed: s, mixtures of two hard negatives per query (paper: up to 1024).
        num_query_mixed: s', mixtures of the query with a hard negative per query (paper: up to 256).
        top_k: N, the hardest queue entries mixed from (paper: 1024); at most the queue size.
        start_step: the first step with mixing (0: from the start).

    Raises:
        ValueError: a negative count, ``top_k < 1``, no synthetic negative at all;
            ``top_k`` above the queue size (when the MoCo is built).

    Example:
        >>> mixing = HardNegativeMixing(num_mixed=256, num_query_mixed=64, top_k=512)
        >>> model = MoCo(encoder, queue_size=4096, mixing=mixing)  # doctest: +SKIP
        >>> mixing.num_negatives
        320
    """

    def __init__(self, num_mixed: int = 1024, num_query_mixed: int = 128, top_k: int = 1024, start_step: int = 0):
        self.num_mixed = _count(num_mixed, "num_mixed", 0)
        self.num_query_mixed = _count(num_query_mixed, "num_query_mixed", 0)
        self.top_k = _count(top_k, "top_k", 1)
        self.start_step = _count(start_step, "start_step", 0)
        if not self.num_negatives:
            raise ValueError("`num_mixed` + `num_query_mixed` must be >= 1: mixing would add no negative.")

    @property
    def num_negatives(self) -> int:
        """Synthetic negatives per query: ``num_mixed + num_query_mixed``."""
        return self.num_mixed + self.num_query_mixed

    def check_queue(self, queue_size: int) -> None:
        """Raises ``ValueError`` when the queue holds fewer than ``top_k`` entries."""
        if self.top_k > queue_size:
            raise ValueError(f"`top_k` ({self.top_k}) must be <= the queue size ({queue_size}).")

    def negatives(self, queries, queue, seed, step, stream: int = 0) -> tf.Tensor:
        """The synthetic negatives of each query: ``[n, num_mixed + num_query_mixed, d]`` float32, unit rows, no gradient.

        Args:
            queries: ``[n, d]`` queries (normalised here).
            queue: ``[K, d]`` unit rows.
            seed, step: int scalars (the model's seed variable and step counter).
            stream: tells apart draws of one step (the two directions of a symmetric MoCo).
        """
        q = tf.stop_gradient(tf.math.l2_normalize(tf.cast(queries, tf.float32), axis=1))
        queue = tf.stop_gradient(tf.cast(queue, tf.float32))
        _, hardest = tf.math.top_k(tf.matmul(q, queue, transpose_b=True), k=self.top_k)  # [n, N], most similar first
        s, s_q = self.num_mixed, self.num_query_mixed
        u = sampling.replica_uniform(seed, step, stream, tf.shape(q)[0], 3 * s + 2 * s_q)
        first, second, alpha, third, beta = tf.split(u, [s, s, s, s_q, s_q], axis=1)

        def hard(u_index):  # [n, m] uniform numbers -> [n, m, d] hard negatives
            rows = tf.gather(hardest, sampling.random_indices(u_index, self.top_k), batch_dims=1)
            return tf.gather(queue, rows)

        alpha = (alpha + _OPEN)[..., None]
        beta = 0.5 * (beta + _OPEN)[..., None]
        mixed = alpha * hard(first) + (1.0 - alpha) * hard(second)
        query_mixed = beta * q[:, None, :] + (1.0 - beta) * hard(third)
        synthetic = tf.math.l2_normalize(tf.concat([mixed, query_mixed], axis=1), axis=-1)
        return tf.stop_gradient(synthetic)

    def get_config(self) -> dict:
        return {
            "num_mixed": self.num_mixed,
            "num_query_mixed": self.num_query_mixed,
            "top_k": self.top_k,
            "start_step": self.start_step,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"HardNegativeMixing({args})"


_DEFAULTS = {
    name: p.default for name, p in inspect.signature(HardNegativeMixing.__init__).parameters.items() if name != "self"
}
MIXING_KEYS = {"num_mixed": "num_mixed", "num_query_mixed": "num_query_mixed", "top_k": "top_k",
               "mixing_start_step": "start_step"}  # config key -> HardNegativeMixing argument


def build_mochi(config, encoder, context) -> MoCo:
    """``MoCo(mixing=HardNegativeMixing(...))`` from the ``model`` section (the mixing keys go to the mixing)."""
    section = dict(config.model)
    mixing = HardNegativeMixing(**{arg: section.pop(key) for key, arg in MIXING_KEYS.items()})
    return MoCo(encoder, mixing=mixing, total_steps=config.train.steps, **section, **dict(context.model_kwargs))


def _check(config) -> list[tuple[str, str]]:
    model = config["model"]
    problems = []
    if model["top_k"] > model["queue_size"]:
        problems.append(("config.model.top_k", f"must be <= model.queue_size ({model['queue_size']}), got {model['top_k']}"))
    if model["num_mixed"] + model["num_query_mixed"] < 1:
        problems.append(("config.model.num_mixed", "num_mixed + num_query_mixed must be >= 1 (no synthetic negative)"))
    return problems


register_method(
    "mochi",
    MoCo,
    batch="two_views",
    summary="MoCHi (Kalantidis et al., NeurIPS 2020): MoCo v2 plus synthetic hard negatives mixed from the queue",
    fields={
        **MOCO_FIELDS,
        "num_mixed": Int(_DEFAULTS["num_mixed"], "s: mixtures of two of the top_k hardest negatives, per query", min=0),
        "num_query_mixed": Int(_DEFAULTS["num_query_mixed"], "s': mixtures of the query with a hard negative, per query",
                               min=0),
        "top_k": Int(_DEFAULTS["top_k"], "N: the hardest queue entries mixed from, <= queue_size", min=1),
        "mixing_start_step": Int(_DEFAULTS["start_step"], "first step with mixing (0: from the start)", min=0),
    },
    build=build_mochi,
    check=_check,
    example={"projection_dim": 16, "hidden_dim": 32, "queue_size": 64, "tau_base": 0.9,
             "num_mixed": 16, "num_query_mixed": 4, "top_k": 16},
)
