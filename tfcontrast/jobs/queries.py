"""``tfcontrast lookup``: the nearest entries of an index to a query, from a trained run.

The query is read into the model's input shape ``(h, w, c)`` (from
``model/embedder.keras``):

* an image file (PNG, JPEG, BMP, GIF): decoded with ``c`` channels (grey or
  RGB), scaled to [0, 1] (pixel / 255) and resized to ``h x w`` (bilinear,
  antialiased), as :func:`tfcontrast.data.load_image_folder` reads training
  images. The bundled digits are light strokes (1.0) on a dark background (0.0):
  a digit drawn dark on white must be inverted first;
* a ``.npy`` array: one input ``(h, w, c)`` or its ``h*w*c`` values
  flattened, or a batch of either.

**The input contract.** Every query is checked against the run's input
contract (``input_contract.json``: the shape, value range and scale of the
training inputs, :class:`tfcontrast.contract.InputContract`). A query outside
the range the model was trained on is refused with a message naming that
range: raw 0-16 digits sent to a model trained on their values / 16 return
neighbours of the wrong class, silently, otherwise. Raw values are scaled the
way training scaled them with ``raw=True`` (``--raw``); ``uint8`` arrays are
taken as raw (8-bit pixels) when the run has a scale.

It is embedded by the saved embedding network and searched in the run's own
index (``index/``: ids are row numbers of the training split, with their
labels) or in another saved index (``index=``, e.g. written by ``tfcontrast
index``: ids are positions of the image files, with their paths). Each
neighbour comes with its id, label (and class name) or path, and distance
(:mod:`tfcontrast.distances` convention: smaller is closer). At most as many
neighbours as the index holds are returned; the table says when that is
fewer than ``k``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tfcontrast import probe
from tfcontrast.contract import InputContract
from tfcontrast.jobs import indexes, inputs, workdir as workdir_lib

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass(frozen=True)
class Neighbours:
    """The answer to a lookup.

    Attributes:
        ids, labels, distances: ``[queries, columns]``, nearest first; ``columns``
            is ``min(k, index size)``; an approximate index may pad a row (id -1).
        class_names: maps labels to names (``()``: labels are their own names).
        data: the entries' payloads (image paths of ``tfcontrast index``), or ``None``.
        k: the number of neighbours asked for.
        index_size: the number of entries in the index searched.
        training_split: the index is the run's own: ids are rows of the training split.
    """

    ids: np.ndarray
    labels: np.ndarray
    distances: np.ndarray
    class_names: tuple[str, ...]
    data: list | None = None
    k: int | None = None
    index_size: int | None = None
    training_split: bool = True


def load_query(path: str, input_shape) -> np.ndarray:
    """The query at ``path`` as a batch ``[q, *input_shape]`` (module docstring), not yet checked against the contract.

    A ``.npy`` array keeps its dtype (``uint8`` marks raw 8-bit pixels); an
    image file is float32 in [0, 1].

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
    if array.dtype.kind != "f" and array.dtype != np.uint8:
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
    if len(batch) == 0:
        raise ValueError(f"--query {path!r} must hold at least one input.")
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


def lookup(workdir: str, query: str, k: int = 5, raw: bool = False, index: str | None = None) -> Neighbours:
    """The ``k`` nearest entries of the run's index (or of ``index``) to every input in the file ``query``.

    Args:
        workdir: a trained and evaluated run.
        query: an image file or a ``.npy`` array (module docstring).
        k: neighbours per query (at most the index's size are returned).
        raw: the ``.npy`` query holds raw values (0-16 digits, 0-255 pixels):
            divide them by the run's scale as training did.
        index: a saved index folder to search instead of the run's own (``index/``).

    Raises:
        ValueError: no finished run in ``workdir``, a bad query (outside the input
            contract: the message names the range and the scaling) or ``k``.
    """
    from tfcontrast.jobs.evaluation import load_run

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"--k must be a positive int, got {k!r}.")
    wd = workdir_lib.Workdir(workdir)
    config, _ = load_run(wd)
    path = wd.index if index is None else os.path.abspath(index)
    if index is None and not os.path.isdir(wd.index):
        raise ValueError(f"{wd.root} has no index/: run `tfcontrast evaluate --workdir {wd.root}` first.")
    if raw and _is_image_file(query):
        raise ValueError(f"--raw applies to .npy queries: the image {query!r} is read as pixels / 255 in [0, 1].")
    net = workdir_lib.load_embedder(wd.embedder)
    queries = load_query(query, net.input_shape[1:])
    contract = indexes.read_contract(wd) or inputs.input_contract(inputs.load_split(config))
    if raw and contract.scale is None:
        raise ValueError(
            f"--raw: the run's inputs have no known raw form (the data were used as they are); give the query as "
            f"the model reads it: {contract.describe()}."
        )
    queries = contract.prepare(queries, raw=True if raw else None, name="query", raw_option="--raw")
    idx = indexes.load(path)
    try:
        found = idx.search(probe.embed(net, queries, batch_size=config.eval.batch_size), k)
        size = len(idx)
    finally:
        indexes.close(idx)
    names = ()
    if os.path.exists(wd.summary):
        names = tuple(workdir_lib.read_json(wd.summary).get("data", {}).get("class_names", ()))
    return Neighbours(
        found.ids, found.labels, found.distances, names, data=found.data, k=k, index_size=size,
        training_split=path == wd.index,
    )


def _is_image_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def format_neighbours(result: Neighbours, query: str) -> str:
    """A table per query: rank, id (training-split row, or image position), label (class name) or path, distance."""
    columns = result.ids.shape[1] if result.ids.ndim == 2 else 0
    lines = []
    if result.k is not None and result.index_size is not None and columns < result.k:
        lines.append(f"(asked for {result.k} neighbours; the index holds {result.index_size} entries, so {columns} are listed)")
    what = "training examples" if result.training_split else "indexed entries"
    id_name = "train row" if result.training_split else "id"
    if result.training_split:
        lines.append("(id = row number in the run's training split)")
    for q in range(len(result.ids)):
        lines.append(f"query {q} of {query}: the {columns} nearest {what}")
        lines.append((f"  {'rank':>4}  {id_name:>9}  {'label':<12}  {'distance':<10}" + ("  path" if result.data else "")).rstrip())
        for rank in range(columns):
            i, label, distance = result.ids[q, rank], result.labels[q, rank], result.distances[q, rank]
            if i < 0:
                continue
            name = str(label) if label >= 0 else "-"
            if 0 <= label < len(result.class_names) and result.class_names[label] != name:
                name = f"{label} ({result.class_names[label]})"
            payload = result.data[q][rank] if result.data else None
            extra = f"  {payload}" if payload is not None else ""
            lines.append(f"  {rank + 1:>4}  {int(i):>9}  {name:<12}  {float(distance):<10.6f}{extra}".rstrip())
    return "\n".join(lines)
