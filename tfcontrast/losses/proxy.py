"""Proxy losses: one learnt proxy per class instead of pairs mined in the batch.

Every embedding is compared with the ``num_classes`` proxies, rows of a
trainable matrix ``P [num_classes, embedding_dim]``, through the cosine
``s(x, p) = <x / ||x||, p / ||p||>``: the batch needs no positive pairs,
so any batch works (P x K batches are not required).

**Proxy-Anchor** (Kim, Kim, Cho and Kwak, "Proxy Anchor Loss for Deep Metric
Learning", CVPR 2020) takes each proxy as an anchor and the batch as its
candidates. With ``X_p+`` the embeddings of class p in the batch, ``X_p-``
the others, ``P+`` the proxies with at least one embedding in the batch and
``P`` all proxies:

    L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x, p) - margin)))
      + 1/|P|  sum_{p in P}  log(1 + sum_{x in X_p-} exp( alpha (s(x, p) + margin)))

computed in log space, ``log(1 + sum exp(z)) = softplus(logsumexp(z))``, so it
never overflows whatever ``alpha``. Proxies are initialised as in the
authors' code: He (Kaiming) normal with fan = ``num_classes``
(``torch.nn.init.kaiming_normal_(mode="fan_out")`` on the ``[classes, dim]``
matrix), i.e. ``N(0, 2 / num_classes)``.

**ProxyNCA** (Movshovitz-Attias, Toshev, Leung, Ioffe and Singh, "No Fuss
Distance Metric Learning using Proxies", ICCV 2017), in its common modern form
(Teh, DeVries and Taylor, "ProxyNCA++", ECCV 2020, and the usual PyTorch
re-implementations): a softmax over the squared distances between the
normalised embedding and the normalised proxies, positive included in the
denominator, with a temperature ``T``:

    L = mean_i -log( exp(-||x^_i - p^_{y_i}||^2 / T) / sum_j exp(-||x^_i - p^_j||^2 / T) )

(``||x^ - p^||^2 = 2 - 2 s(x, p)``). ``T = 1/9`` (the default) is ProxyNCA++'s
choice and the ``3 x 3`` scaling of the widely used PyTorch
re-implementation; ``T = 1`` is the paper's unscaled distance (the paper also
leaves the positive out of the denominator, which makes the loss unbounded
below; that form is not provided). Proxies are initialised ``N(0, 1/8^2)``
as in those implementations (rows of norm ~ sqrt(dim)/8; only directions
matter).

Under a ``tf.distribute`` strategy both are losses of the *global* batch:
ProxyNCA averages per-sample losses with :func:`~tfcontrast.distribute.replica_share`;
Proxy-Anchor, whose sums over samples sit inside a logarithm, has each
replica reduce its own samples to ``2 * num_classes`` log-sum-exps that are
all-gathered (with their gradient) and combined, so no replica ever
computes the ``[global batch, classes]`` similarities. See
:mod:`tfcontrast.losses.class_weights` for labels, precision and memory.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcontrast import distribute, validation
from tfcontrast.fields import Float
from tfcontrast.losses.class_weights import (
    ClassWeightLoss,
    check_count,
    class_targets,
    cosine_similarities,
    mean_cross_entropy,
    nan_unless,
)
from tfcontrast.registry import register_loss


def proxy_anchor_loss(labels, embeddings, proxies, margin: float = 0.1, alpha: float = 32.0) -> tf.Tensor:
    """Proxy-Anchor loss (Kim et al. 2020) of ``embeddings`` against ``proxies``; scalar.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids in ``[0, num_classes)``.
        embeddings: ``[batch, dim]`` (normalised here; any float dtype, float32 inside for half).
        proxies: ``[num_classes, dim]`` (normalised here).
        margin: the margin ``delta`` (>= 0).
        alpha: the scale ``alpha`` (> 0).

    Returns:
        The loss of the global batch (this replica's share of it under a strategy).

    Example:
        >>> proxies = [[1.0, 0.0], [0.0, 1.0]]
        >>> round(float(proxy_anchor_loss([0, 1], [[1.0, 0.0], [0.0, 1.0]], proxies, 0.1, 32.0)), 2)
        3.24
    """
    margin = validation.check_non_negative(margin, "margin")
    alpha = validation.check_positive(alpha, "alpha")
    cos = cosine_similarities(embeddings, proxies)
    targets, valid = class_targets(labels, cos)
    lowest = tf.constant(cos.dtype.min, cos.dtype)
    # Per proxy, log-sum-exp over this replica's positives and negatives; "lowest" stands for
    # exp(z) = 0, so an empty set gives a finite value whose softplus is 0 (no NaN gradient).
    local = tf.concat(
        [
            tf.reduce_logsumexp(tf.where(targets, -alpha * (cos - margin), lowest), axis=0),
            tf.reduce_logsumexp(tf.where(targets, lowest, alpha * (cos + margin)), axis=0),
        ],
        axis=0,
    )
    gathered, _ = distribute.gather(local[None, :])
    positive_lse, negative_lse = tf.split(tf.reduce_logsumexp(gathered, axis=0), 2)
    positives_per_proxy = distribute.all_reduce_sum(tf.reduce_sum(tf.cast(targets, cos.dtype), axis=0))
    num_positive_proxies = tf.reduce_sum(tf.cast(tf.stop_gradient(positives_per_proxy) > 0, cos.dtype))
    num_proxies = tf.cast(tf.shape(cos)[1], cos.dtype)
    loss = tf.math.divide_no_nan(tf.reduce_sum(tf.nn.softplus(positive_lse)), num_positive_proxies)
    loss += tf.reduce_sum(tf.nn.softplus(negative_lse)) / num_proxies
    return nan_unless(tf.reduce_all(valid), loss) / tf.cast(distribute.num_replicas(), cos.dtype)


def proxy_nca_loss(labels, embeddings, proxies, temperature: float = 1.0 / 9.0) -> tf.Tensor:
    """ProxyNCA loss (Movshovitz-Attias et al. 2017; ProxyNCA++ form): mean softmax cross-entropy; scalar.

    Logits ``-||x^_i - p^_j||^2 / temperature`` over all proxies, positive included.

    Args:
        labels: ``[batch]`` or ``[batch, 1]`` integer class ids in ``[0, num_classes)``.
        embeddings: ``[batch, dim]`` (normalised here).
        proxies: ``[num_classes, dim]`` (normalised here).
        temperature: ``T`` > 0 dividing the squared distances (1/9 in ProxyNCA++).

    Returns:
        The mean over the global batch (this replica's share under a strategy).

    Example:
        >>> proxies = [[1.0, 0.0], [0.0, 1.0]]
        >>> round(float(proxy_nca_loss([0], [[1.0, 0.0]], proxies, temperature=1.0)), 4)
        0.1269
    """
    temperature = validation.check_positive(temperature, "temperature")
    cos = cosine_similarities(embeddings, proxies)
    targets, valid = class_targets(labels, cos)
    return mean_cross_entropy((2.0 * cos - 2.0) / temperature, targets, valid)


class _ProxyLoss(ClassWeightLoss):
    """A class-weight loss whose class weights are called proxies."""

    @property
    def proxies(self):
        """The proxies ``[num_classes, embedding_dim]`` (the ``class_weights`` variable)."""
        return self.class_weights


@keras.saving.register_keras_serializable(package="tfcontrast")
class ProxyAnchorLoss(_ProxyLoss):
    """Proxy-Anchor loss with its trainable proxies; called as ``loss(labels, embeddings)``.

    Kim, Kim, Cho and Kwak, "Proxy Anchor Loss for Deep Metric Learning",
    CVPR 2020 (formula in :mod:`tfcontrast.losses.proxy`). The proxies
    (``class_weights``, also ``proxies``) start He-normal, ``N(0, 2 /
    num_classes)``, as in the authors' code. The paper trains them with a
    learning rate 100x that of the network: with one optimizer, a higher
    ``alpha`` or a warm-up with the encoder frozen play that role.

    Args:
        num_classes: number of classes (>= 2).
        embedding_dim: width of the embeddings; ``None``: the model's (set when
            ``EmbeddingModel(..., loss_head=...)`` builds it) or the first call's.
        margin: ``delta`` (>= 0), 0.1 in the paper.
        alpha: ``alpha`` (> 0), 32 in the paper.

    Train it as the head of an :class:`~tfcontrast.models.EmbeddingModel`,
    which trains, saves and mirrors the proxies with the model.

    Example:
        >>> head = ProxyAnchorLoss(num_classes=10, embedding_dim=64)
        >>> model = tfc.models.EmbeddingModel(encoder, embedding_dim=64, loss_head=head)  # doctest: +SKIP
        >>> model.compile(optimizer="adam")  # doctest: +SKIP
        >>> model.fit(x, labels, batch_size=128)  # doctest: +SKIP
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int | None = None,
        margin: float = 0.1,
        alpha: float = 32.0,
        name: str = "proxy_anchor_loss",
        **kwargs,
    ):
        margin = validation.check_non_negative(margin, "margin")
        alpha = validation.check_positive(alpha, "alpha")
        std = (2.0 / check_count(num_classes, "num_classes", 2)) ** 0.5
        super().__init__(num_classes, embedding_dim, keras.initializers.RandomNormal(stddev=std), name, **kwargs)
        self.margin, self.alpha = margin, alpha

    def call(self, labels, embeddings):
        return proxy_anchor_loss(labels, embeddings, self.class_weights, self.margin, self.alpha)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="tfcontrast")
class ProxyNCALoss(_ProxyLoss):
    """ProxyNCA loss with its trainable proxies; called as ``loss(labels, embeddings)``.

    Movshovitz-Attias, Toshev, Leung, Ioffe and Singh, "No Fuss Distance
    Metric Learning using Proxies", ICCV 2017, in the ProxyNCA++ form (Teh et
    al., ECCV 2020): softmax over ``-||x^ - p^_j||^2 / temperature``, positive
    included (formula in :mod:`tfcontrast.losses.proxy`). The proxies start
    ``N(0, 1/8^2)`` as in the common PyTorch implementations.

    Args:
        num_classes: number of classes (>= 2).
        embedding_dim: width of the embeddings; ``None``: the model's (set when
            ``EmbeddingModel(..., loss_head=...)`` builds it) or the first call's.
        temperature: ``T`` > 0; 1/9 (ProxyNCA++) by default, 1 is the paper's unscaled distance.

    Example:
        >>> head = ProxyNCALoss(num_classes=10, embedding_dim=64)
        >>> model = tfc.models.EmbeddingModel(encoder, embedding_dim=64, loss_head=head)  # doctest: +SKIP
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int | None = None,
        temperature: float = 1.0 / 9.0,
        name: str = "proxy_nca_loss",
        **kwargs,
    ):
        temperature = validation.check_positive(temperature, "temperature")
        super().__init__(num_classes, embedding_dim, keras.initializers.RandomNormal(stddev=1.0 / 8.0), name, **kwargs)
        self.temperature = temperature

    def call(self, labels, embeddings):
        return proxy_nca_loss(labels, embeddings, self.class_weights, self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


# By name: a loss head of the `embedding` method, sized by the data's classes and the model's embedding width.
register_loss(
    "proxy_anchor",
    ProxyAnchorLoss,
    inputs="labels",
    summary="Proxy-Anchor loss (Kim et al., CVPR 2020): one trainable proxy per class",
    fields={
        "margin": Float(doc="margin delta on the cosine to the proxies, >= 0", within="[0, inf)"),
        "alpha": Float(doc="scale alpha of the cosines, > 0", within="(0, inf)"),
    },
    head=True,
)

register_loss(
    "proxy_nca",
    ProxyNCALoss,
    inputs="labels",
    summary="ProxyNCA loss (Movshovitz-Attias et al., ICCV 2017), ProxyNCA++ form: one trainable proxy per class",
    fields={"temperature": Float(doc="temperature T of the softmax over -||x - p||^2 / T, > 0", within="(0, inf)")},
    head=True,
)
