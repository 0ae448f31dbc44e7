"""Image files as a streaming ``tf.data`` pipeline: in a stable order, with ids and paths, decoded lazily.

For embedding a large collection with :func:`tfcontrast.index.build_from_dataset`,
nothing but the list of paths is held in memory: files are read, decoded and
resized as the pipeline streams.

* :func:`image_files` lists the images of a directory (recursively) or a glob
  pattern, sorted by path, as a dataset of ``{"id": int64, "data": path}``:
  the id of a file is its position in that order (stable while the
  collection does not change), the path becomes the index entry's payload.
* :func:`decode_images` is the preprocessing step that reads one element's
  file into ``"image"`` (float32 ``[h, w, c]`` in [0, 1], resized bilinearly,
  the convention of :func:`tfcontrast.data.load_image_folder`).
* :func:`image_dataset` is both at once, for small collections and quick looks.

Pass ``image_files(...)`` and ``preprocess=decode_images(size)`` to
:func:`~tfcontrast.index.build_from_dataset`, which shards and skips (on resume)
*before* decoding, so a process never decodes another shard's images or the
images a resumed run has already indexed.

Example:
    >>> files = image_files("photos/")                                      # doctest: +SKIP
    >>> idx = build_from_dataset(encoder, files, Index(), 256,
    ...                          preprocess=decode_images((32, 32)))        # doctest: +SKIP
    >>> idx.search(query_embeddings, k=5).data                             # doctest: +SKIP
    [['photos/cat/001.jpg', ...]]
"""

from __future__ import annotations

import glob
import os
from typing import Callable

import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def list_image_paths(pattern: str | os.PathLike) -> list[str]:
    """Sorted paths of the images in a directory (recursively) or matching a glob (``**`` allowed).

    Raises:
        ValueError: nothing matches, or ``pattern`` is empty.
    """
    pattern = os.fspath(pattern)
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"`pattern` must name a directory or a glob of image files, got {pattern!r}.")
    if os.path.isdir(pattern):
        paths = [
            os.path.join(root, name)
            for root, _, names in os.walk(pattern)
            for name in names
            if name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    else:
        paths = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
    if not paths:
        raise ValueError(f"`pattern` {pattern!r} matches no image files ({', '.join(IMAGE_EXTENSIONS)} in a directory).")
    return sorted(paths)


def image_files(pattern: str | os.PathLike) -> tf.data.Dataset:
    """``{"id": int64, "data": path}`` for every image of ``pattern``, sorted by path (module docstring)."""
    paths = list_image_paths(pattern)
    return tf.data.Dataset.from_tensor_slices({"id": tf.range(len(paths), dtype=tf.int64), "data": paths})


def decode_images(image_size: tuple[int, int] = (32, 32), channels: int = 3) -> Callable[[dict], dict]:
    """The map function adding ``"image"`` (float32 ``[h, w, channels]`` in [0, 1]) read from ``element["data"]``.

    Args:
        image_size: ``(height, width)`` every image is resized to (bilinear).
        channels: 1 (grey), 3 (RGB) or 4 (RGBA).
    """
    size = tuple(image_size) if isinstance(image_size, (tuple, list)) else ()
    if len(size) != 2 or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in size):
        raise ValueError(f"`image_size` must be (height, width) positive ints, got {image_size!r}.")
    if channels not in (1, 3, 4):
        raise ValueError(f"`channels` must be 1, 3 or 4, got {channels!r}.")

    def decode(element: dict) -> dict:
        raw = tf.io.read_file(element["data"])
        image = tf.io.decode_image(raw, channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), size) / 255.0
        image.set_shape((*size, channels))
        return dict(element, image=image)

    return decode


def image_dataset(pattern: str | os.PathLike, image_size: tuple[int, int] = (32, 32), channels: int = 3) -> tf.data.Dataset:
    """``{"id", "data": path, "image"}`` for every image of ``pattern``, decoded in order as it streams."""
    return image_files(pattern).map(decode_images(image_size, channels), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
