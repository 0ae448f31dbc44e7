"""The job of a run, found through its method's data kind (:func:`tfcontrast.registry.data_kind_of`).

The ``tfcontrast`` command calls these; each forwards to the ``train`` /
``evaluate`` / ``lookup`` of the data kind's job module
(:mod:`tfcontrast.jobs.images`, :mod:`tfcontrast.jobs.text`, or a plugin's).
"""

from __future__ import annotations

import json
import os
from typing import Callable

from tfcontrast import registry
from tfcontrast.jobs.workdir import Workdir


def job_of(method: str):
    """The job module of ``method``'s data kind."""
    return registry.data_kind_of(method).job_module()


def job_of_workdir(workdir: str):
    """The job module of the run in ``workdir`` (from its ``config.json``).

    Raises:
        ValueError: ``workdir`` holds no run config, or names an unknown method.
    """
    path = Workdir(workdir).config
    if not os.path.isfile(path):
        raise ValueError(f"{Workdir(workdir).root} holds no run (no config.json); train one with `tfcontrast train`.")
    try:
        with open(path, encoding="utf-8") as f:
            method = json.load(f)["method"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a run config ({err}).") from None
    return job_of(method)


def train(config, workdir: str, out: Callable[[str], None] = print) -> dict:
    """Trains, evaluates and exports the run of ``config`` with its data kind's job."""
    return job_of(config.method).train(config, workdir, out=out)


def evaluate(workdir: str, out: Callable[[str], None] = print) -> dict:
    """Re-evaluates the run in ``workdir`` with its data kind's job."""
    return job_of_workdir(workdir).evaluate(workdir, out=out)


def lookup(workdir: str, query: str, k: int = 5, raw: bool = False, index: str | None = None) -> str:
    """What ``tfcontrast lookup`` prints for ``query`` (an image file for images, a text for text).

    ``raw`` and ``index`` are the image job's options (``--raw``, ``--index``); a
    job without them refuses them.
    """
    return job_of_workdir(workdir).lookup(workdir, query, k, raw=raw, index=index)
