"""The pictures a training run writes: curves, an embedding map, neighbours, the spectrum.

Each function takes plain arrays, writes one PNG atomically (a temporary file
renamed into place, so a crash never leaves half an image) and returns its
path. Matplotlib runs headless (Agg backend).

* :func:`training_curves`: every logged metric against the epoch, one panel
  each, with axis labels, what the collapse indicators mean and, when their
  ceilings are known, their healthy range drawn as a green band (and the
  collapse zone in red).
* :func:`embedding_map`: a 2-D projection of embeddings (PCA, or t-SNE for
  up to a few thousand points), coloured by label.
* :func:`neighbor_grid`: query images beside their nearest neighbours, each
  image's label written inside it, neighbours framed green when their label is
  the query's and red when not, with a title and a legend saying so.

:func:`training_curves_figure` and :func:`neighbor_grid_figure` return the
figure without saving it (to embed in a notebook, or to inspect).
* :func:`singular_value_spectrum`: the normalised singular values of the
  centred embeddings on a log scale, the picture of dimensional collapse
  (Jing et al., "Understanding Dimensional Collapse in Contrastive
  Self-supervised Learning", ICLR 2022): a collapsed embedding has a spectrum
  that drops to ~0 after a few dimensions.
* :func:`label_efficiency`: test accuracy against labels per class, one line
  per classifier, the mean with the spread over subset seeds as error bars.
"""

from __future__ import annotations

import os
import tempfile
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402


# What the panels of the logged metrics say (title, y label); other keys are shown by name.
METRIC_LABELS = {
    "loss": ("training loss", "loss"),
    "proj_std": (
        "projection std: spread of the normalised projections\n(0 = all on one point; 1/sqrt(d) = spread over the sphere)",
        "mean per-dimension std",
    ),
    "erank": (
        "effective rank of the representations\n(1 = all along one direction; F = all directions used)",
        "effective rank",
    ),
    "knn_accuracy": ("kNN accuracy (validation images)", "accuracy"),
    "embedding_std": ("std of the normalised embeddings", "mean per-dimension std"),
    "embedding_erank": ("effective rank of the embeddings", "effective rank"),
}


def training_curves(
    history: Mapping[str, Sequence[float]],
    path: str,
    title: str | None = None,
    bands: Mapping[str, tuple[float, float, float]] | None = None,
) -> str:
    """One panel per metric (``val_`` metrics drawn in their training panel); see :func:`training_curves_figure`."""
    return _save(training_curves_figure(history, title, bands), path)


def training_curves_figure(
    history: Mapping[str, Sequence[float]],
    title: str | None = None,
    bands: Mapping[str, tuple[float, float, float]] | None = None,
):
    """The figure of :func:`training_curves`.

    Args:
        history: ``{metric: per-epoch values}`` (``History.history``).
        title: the figure's title (e.g. the method).
        bands: ``{metric: (collapse floor, healthy from, ceiling)}``: the panel
            shades ``[0, floor]`` in red ("collapse"), ``[healthy from, ceiling]``
            in green ("healthy range") and draws the ceiling dashed
            (:meth:`tfcontrast.callbacks.CollapseAlarm.bands` gives them for
            ``proj_std`` and ``erank``).
    """
    if not history:
        raise ValueError("`history` is empty: there is nothing to plot.")
    bands = dict(bands or {})
    names = [k for k in history if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        values = np.asarray(history[name], dtype=float)
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, marker="o", markersize=3, label="train", zorder=3)
        if f"val_{name}" in history:
            ax.plot(epochs, np.asarray(history[f"val_{name}"], dtype=float), marker="o", markersize=3, label="validation")
        if name in bands:
            floor, healthy, ceiling = (float(v) for v in bands[name])
            ax.axhspan(healthy, ceiling, color="tab:green", alpha=0.15, label=f"healthy range ({healthy:.3g}-{ceiling:.3g})")
            ax.axhspan(0.0, floor, color="tab:red", alpha=0.15, label=f"collapse (< {floor:.3g})")
            ax.axhline(ceiling, color="tab:green", linestyle="--", linewidth=1, label=f"ceiling {ceiling:.3g}")
            low = min(0.0, np.nanmin(values)) if np.isfinite(values).any() else 0.0
            ax.set_ylim(low, max(ceiling, np.nanmax(values) if np.isfinite(values).any() else ceiling) * 1.08)
        if f"val_{name}" in history or name in bands:
            ax.legend(fontsize=7, loc="best")
        panel_title, y_label = METRIC_LABELS.get(name, (name, name))
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(y_label)
        ax.grid(alpha=0.3)
        if len(epochs) < 12:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def embedding_map(embeddings, labels, path: str, method: str = "pca", title: str | None = None) -> str:
    """Scatter of a 2-D projection of ``embeddings`` coloured by ``labels``."""
    x = _matrix(embeddings, "embeddings")
    labels = _labels(labels, len(x))
    if method not in ("pca", "tsne"):
        raise ValueError(f"`method` must be 'pca' or 'tsne', got {method!r}.")
    if method == "tsne":
        from sklearn.manifold import TSNE

        points = TSNE(n_components=2, init="pca", random_state=0, perplexity=min(30.0, max(len(x) - 1, 1) / 3)).fit_transform(x)
    else:
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=0).fit_transform(x)
    fig, ax = plt.subplots(figsize=(6, 5))
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        mask = labels == c
        ax.scatter(points[mask, 0], points[mask, 1], s=8, color=cmap(i % cmap.N), label=str(c))
    ax.legend(markerscale=2, fontsize=7, loc="best", ncol=2)
    ax.set_title(title or f"embeddings ({method.upper()})")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path)


QUERY_COLOUR = "tab:blue"


def neighbor_grid(
    query_images, query_labels, neighbor_images, neighbor_labels, path: str,
    title: str | None = None, class_names: Sequence[str] | None = None,
) -> str:
    """Rows: a query image, then its k neighbours (green frame: same label; red: other); see :func:`neighbor_grid_figure`."""
    return _save(neighbor_grid_figure(query_images, query_labels, neighbor_images, neighbor_labels, title, class_names), path)


def neighbor_grid_figure(
    query_images, query_labels, neighbor_images, neighbor_labels,
    title: str | None = None, class_names: Sequence[str] | None = None,
):
    """The figure of :func:`neighbor_grid`.

    Each row is a query (left, blue frame, labelled ``q <label>``) and its
    nearest neighbours in order; every image carries its label inside it, on a
    patch of its frame's colour: green when the neighbour's label is the
    query's, red when not. The legend under the grid says so; the title says
    what is shown (default: "nearest neighbours of each query").

    Args:
        query_images: ``[q, h, w]`` or ``[q, h, w, c]`` (c = 1 or 3).
        query_labels: ``[q]`` labels.
        neighbor_images: ``[q, k, h, w(, c)]``.
        neighbor_labels: ``[q, k]``.
        title: the figure's title.
        class_names: names of the labels (``class_names[label]``), shown instead of the numbers.
    """
    raw_queries = np.asarray(query_images)
    neighbors = np.asarray(neighbor_images)
    if neighbors.ndim == raw_queries.ndim:  # no k axis given for k = 1
        neighbors = neighbors[:, None]
    if (
        neighbors.ndim != raw_queries.ndim + 1
        or neighbors.shape[0] != len(raw_queries)
        or neighbors.shape[2:] != raw_queries.shape[1:]
    ):
        raise ValueError(
            f"`neighbor_images` must be [queries, k, ...] matching `query_images` {raw_queries.shape}, "
            f"got shape {neighbors.shape}."
        )
    q, k = neighbors.shape[:2]
    queries = _images(raw_queries, "query_images")
    neighbors = _images(neighbors.reshape((q * k,) + neighbors.shape[2:]), "neighbor_images")
    neighbors = neighbors.reshape((q, k) + neighbors.shape[1:])
    query_labels = _labels(query_labels, q)
    neighbor_labels = np.asarray(neighbor_labels).reshape(q, -1)

    def name(label) -> str:
        if class_names is not None and 0 <= int(label) < len(class_names) and str(class_names[int(label)]) != str(label):
            return str(class_names[int(label)])
        return str(label)

    size, legend_height, title_height = 1.15, (0.5 if k >= 7 else 0.95), 0.45
    height = size * q + legend_height + title_height
    fig, axes = plt.subplots(q, k + 1, figsize=(max(size * (k + 1), 4.5), height), squeeze=False)
    for i in range(q):
        _show(axes[i, 0], queries[i], f"q {name(query_labels[i])}", QUERY_COLOUR)
        for j in range(k):
            same = neighbor_labels[i, j] == query_labels[i]
            _show(axes[i, j + 1], neighbors[i, j], name(neighbor_labels[i, j]), "green" if same else "red")
    axes[0, 0].set_title("query", fontsize=8, pad=3)
    for j in range(k):
        axes[0, j + 1].set_title(f"{j + 1}", fontsize=8, pad=3)
    fig.suptitle(title or "nearest neighbours of each query", fontsize=10, y=1 - 0.12 / height)
    handles = [
        Patch(facecolor="white", edgecolor=QUERY_COLOUR, linewidth=2, label="q 7: a query image (left), of class 7"),
        Patch(facecolor="white", edgecolor="green", linewidth=2, label="neighbour of the query's class"),
        Patch(facecolor="white", edgecolor="red", linewidth=2, label="neighbour of another class"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3 if k >= 7 else 1, fontsize=7, frameon=False,
               title="columns: nearest first; the number in each image is its label", title_fontsize=7)
    fig.tight_layout(pad=0.2, w_pad=0.4, h_pad=0.4, rect=(0, legend_height / height, 1, 1 - title_height / height))
    return fig


def singular_value_spectrum(embeddings, path: str, title: str | None = None) -> str:
    """Normalised singular values (sigma_k / sigma_1) of the centred embeddings, log scale."""
    x = _matrix(embeddings, "embeddings")
    sigma = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    ratio = sigma / max(sigma[0], 1e-30)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogy(np.arange(1, len(ratio) + 1), np.maximum(ratio, 1e-12), marker="o", markersize=3)
    ax.set_xlabel("singular value index")
    ax.set_ylabel("sigma_k / sigma_1")
    ax.set_title(title or "embedding spectrum (collapse shows as a cliff)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _save(fig, path)


def label_efficiency(
    curves: Mapping[str, Sequence[tuple[float, Mapping[str, float]]]],
    path: str,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
) -> str:
    """Test accuracy against labels per class (log x axis), one line per classifier.

    Args:
        curves: ``{classifier: [(labels per class, {"mean", "std", "min", "max"}), ...]}``:
            the line goes through the means; the error bars span ``min`` to ``max``.
        path: the PNG to write.
        labels: legend text of each classifier (default: its key).
        title: the plot's title.
    """
    if not curves or any(not points for points in curves.values()):
        raise ValueError("`curves` must hold at least one classifier with at least one point.")
    for name, points in curves.items():
        for k, stats in points:
            low, mean, high = (stats.get(key) for key in ("min", "mean", "max"))
            if not np.isfinite([k, low, mean, high]).all():
                raise ValueError(f"`curves[{name!r}]` holds a point that is not finite: {k!r}, {dict(stats)!r}.")
            if k <= 0:
                raise ValueError(f"`curves[{name!r}]`: labels per class must be > 0 (log axis), got {k!r}.")
            if not low <= mean <= high:
                raise ValueError(f"`curves[{name!r}]` at {k!r}: needs min <= mean <= max, got {dict(stats)!r}.")
    labels = labels or {}
    fig, ax = plt.subplots(figsize=(6, 4))
    budgets = sorted({float(k) for points in curves.values() for k, _ in points})
    for name, points in curves.items():
        points = sorted(points, key=lambda p: p[0])
        k = np.asarray([p[0] for p in points], dtype=float)
        mean = np.asarray([p[1]["mean"] for p in points], dtype=float)
        low = mean - np.asarray([p[1]["min"] for p in points], dtype=float)
        high = np.asarray([p[1]["max"] for p in points], dtype=float) - mean
        ax.errorbar(k, mean, yerr=[low, high], marker="o", markersize=4, capsize=3, label=labels.get(name, name))
    ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.set_xticklabels([f"{b:g}" for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("labels per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "label efficiency", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------ helpers


def _save(fig, path: str) -> str:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".png.tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _matrix(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"`{name}` must be [n >= 2, dim], got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` holds NaN or inf.")
    return x


def _labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"`labels` has {len(labels)} entries for {n} rows.")
    return labels


def _images(images, name: str) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(f"`{name}` must be [n, h, w] or [n, h, w, 1 or 3] images, got shape {images.shape}.")
    low, high = images.min(), images.max()
    return (images - low) / (high - low) if high > low else np.zeros_like(images)


def _show(ax, image, label: str, colour: str) -> None:
    """The image framed in ``colour`` with ``label`` inside its top-left corner, on a patch of that colour."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(2.5)
    ax.text(
        0.03, 0.97, label, transform=ax.transAxes, ha="left", va="top", fontsize=7, color="white",
        bbox={"boxstyle": "square,pad=0.15", "facecolor": colour, "edgecolor": "none", "alpha": 0.85},
    )
