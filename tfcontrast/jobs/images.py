"""The ``images`` data kind: runs on images (the bundled digits, an image folder, an ``.npz``).

Its config sections are those of ``configs/base.py`` (``data``, ``encoder``,
``augment``, ``eval``, ``index``; checked by :func:`tfcontrast.config.image_checks`),
and its job is :mod:`tfcontrast.jobs.training` (train),
:mod:`tfcontrast.jobs.evaluation` (evaluate) and :mod:`tfcontrast.jobs.queries`
(lookup of an image file or ``.npy`` array). Every batch kind that names no
other data kind trains on images.
"""

from __future__ import annotations

from typing import Callable

from tfcontrast import config as config_lib
from tfcontrast.jobs.evaluation import evaluate
from tfcontrast.jobs.queries import format_neighbours, lookup as lookup_neighbours
from tfcontrast.jobs.training import train
from tfcontrast.registry import register_data_kind

__all__ = ["evaluate", "lookup", "train"]


def lookup(workdir: str, query: str, k: int = 5, raw: bool = False, index: str | None = None) -> str:
    """What ``tfcontrast lookup`` prints: the ``k`` nearest training images (or entries of ``index``) of each
    input in the file ``query``, checked against the run's input contract (``raw``: scaled by it first)."""
    return format_neighbours(lookup_neighbours(workdir, query, k, raw=raw, index=index), query)


register_data_kind(
    "images",
    summary="images: the bundled digits, a folder of class sub-folders or an .npz (configs/base.py sections)",
    sections={},
    job=__name__,
    check=config_lib.image_checks,
)
