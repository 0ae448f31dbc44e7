"""``tfcontrast lookup``: the nearest training examples of a query, from a trained run.

The query is read into the model's input shape ``(h, w, c)`` (from
``model/embedder.keras``):

* an image file (PNG, JPEG, BMP, GIF): decoded with ``c`` channels (grey or
  RGB), scaled to [0, 1] (pixel / 255) and resized to ``h x w`` (bilinear,
  antialiased), as :func:`tfcontrast.data.load_image_folder` reads training
  images. The bundled digits are light strokes (1.0) on a dark background (0.0):
  a digit drawn dark on white must be inverted first;
* a ``.npy`` array, already in the model's value range: one input
  ``(h, w, c)`` or its ``h*w*c`` values flattened, or a batch of either.

It is embedded by the saved embedding network and searched in the saved
index (``index/``); each neighbour comes with its id (row of the training
split), label (and class name) and distance (:mod:`tfcontrast.distances`
convention: smaller is closer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tfcontrast import index as index_lib, probe
from tfcontrast.jobs import workdir as workdir_lib

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass(frozen=True)
class Neighbours:
    """``ids``, ``labels``, ``distances``: ``[queries, k]``; ``class_names`` maps labels to names."""

    ids: np.ndarray
    labels: np.ndarray
    distances: np.ndarray
    class_names: tuple[str, ...]


def load_query(path: str, input_shape) -> np.ndarray:
    """The query at ``path`` as a float32 batch ``[q, *input_shape]`` (module docstring).

    Raises:
        ValueError: a missing or unreadable file, an unknown kind, or an array that
            does not fit ``input_shape`` (the message gives the shapes accepted).
    """
    input_shape = tuple(int(s) for s in input_shape)
    if not os.path.isfile(path):
        raise ValueError(f"--query {path!r} is not a file.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"--query {path!r} is not a readable .npy array without pickled objects: {err}") from None
        return _fit_array(np.asarray(array), input_shape, path)
    if suffix in IMAGE_SUFFIXES:
        return _read_image(path, input_shape)[None]
    raise ValueError(f"--query {path!r} must be an image ({', '.join(IMAGE_SUFFIXES)}) or a .npy array.")


def _fit_array(array: np.ndarray, input_shape: tuple, path: str) -> np.ndarray:
    if array.dtype.kind not in "fiu":
        raise ValueError(f"--query {path!r} must hold numbers, got dtype {array.dtype}.")
    size = int(np.prod(input_shape))
    array = array.astype(np.float32)
    if array.shape == input_shape or array.shape == (size,):
        batch = array.reshape((1, *input_shape))
    elif array.ndim >= 1 and (array.shape[1:] == input_shape or array.shape[1:] == (size,)):
        batch = array.reshape((len(array), *input_shape))
    else:
        raise ValueError(
            f"--query {path!r} has shape {array.shape}; the model reads {input_shape} "
            f"(accepted: {input_shape}, ({size},), or a batch [n, ...] of either)."
        )
    if len(batch) == 0 or not np.isfinite(batch).all():
        raise ValueError(f"--query {path!r} must hold at least one input of finite values.")
    return batch


def _read_image(path: str, input_shape: tuple) -> np.ndarray:
    import tensorflow as tf

    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"this model reads inputs of shape {input_shape}, not images: give --query a .npy array.")
    height, width, channels = input_shape
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    except (tf.errors.InvalidArgumentError, ValueError) as err:
        raise ValueError(f"--query {path!r} is not a readable image: {err}") from None
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
    return np.clip(image.numpy(), 0.0, 1.0).astype(np.float32)


def lookup(workdir: str, query: str, k: int = 5) -> Neighbours:
    """The ``k`` nearest training examples of every input in the file ``query``.

    Raises:
        ValueError: no finished run in ``workdir``, a bad query or ``k``.
    """
    from tfcontrast.jobs.evaluation import load_run

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"--k must be a positive int, got {k!r}.")
    wd = workdir_lib.Workdir(workdir)
    config, _ = load_run(wd)
    if not os.path.isdir(wd.index):
        raise ValueError(f"{wd.root} has no index/: run `tfcontrast evaluate --workdir {wd.root}` first.")
    net = workdir_lib.load_embedder(wd.embedder)
    queries = load_query(query, net.input_shape[1:])
    idx = index_lib.Index.load(wd.index)
    found = idx.search(probe.embed(net, queries, batch_size=config.eval.batch_size), k)
    names = ()
    if os.path.exists(wd.summary):
        names = tuple(workdir_lib.read_json(wd.summary).get("data", {}).get("class_names", ()))
    return Neighbours(found.ids, found.labels, found.distances, names)


def format_neighbours(result: Neighbours, query: str) -> str:
    """A table per query: rank, id, label (class name), distance."""
    lines = []
    for q in range(len(result.ids)):
        lines.append(f"query {q} of {query}:")
        lines.append(f"  {'rank':>4}  {'id':>6}  {'label':<12}  distance")
        for rank, (i, label, distance) in enumerate(zip(result.ids[q], result.labels[q], result.distances[q]), 1):
            if i < 0:
                continue
            name = str(label)
            if 0 <= label < len(result.class_names) and result.class_names[label] != name:
                name = f"{label} ({result.class_names[label]})"
            lines.append(f"  {rank:>4}  {int(i):>6}  {name:<12}  {float(distance):.6f}")
    return "\n".join(lines)
