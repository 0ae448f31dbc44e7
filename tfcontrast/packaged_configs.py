"""The config files that ship with tfcontrast, found by name.

In the repository they live in the top-level ``configs/`` folder; a wheel
installs the same files as ``tfcontrast/configs/`` (``setup.py`` maps the
folder into the package). :func:`directory` finds them by file system, next to
the imported ``tfcontrast`` package, so the answer is the same from a clone, an
editable install, a ``PYTHONPATH`` checkout or an installed wheel:

1. ``<tfcontrast package>/configs`` (an installed wheel);
2. ``<tfcontrast package>/../configs`` (a clone).

Nothing here imports TensorFlow or runs a config: listing reads docstrings with
:mod:`ast`.
"""

from __future__ import annotations

import ast
import os
import pathlib

BASE = "base"
"""The shared sections every packaged config starts from (:func:`tfcontrast.config.base`)."""

_NOT_CONFIGS = ("__init__",)


def directory() -> pathlib.Path:
    """The folder of the packaged configs.

    Raises:
        FileNotFoundError: neither place holds ``base.py`` (a broken installation).
    """
    package = pathlib.Path(__file__).resolve().parent
    candidates = (package / "configs", package.parent / "configs")
    for candidate in candidates:
        if (candidate / f"{BASE}.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"the packaged configs are missing: no {BASE}.py in {' or '.join(str(c) for c in candidates)}; "
        "reinstall tfcontrast."
    )


def names() -> list[str]:
    """Every packaged config name (file name without ``.py``), sorted."""
    return sorted(p.stem for p in directory().glob("*.py") if p.stem not in _NOT_CONFIGS)


def path(name: str) -> pathlib.Path | None:
    """The file of the packaged config ``name`` (``"directpred_digits"`` or ``"directpred_digits.py"``), or ``None``."""
    stem = name[:-3] if name.endswith(".py") else name
    if not stem.isidentifier() or stem in _NOT_CONFIGS:
        return None
    candidate = directory() / f"{stem}.py"
    return candidate if candidate.is_file() else None


def summary(name: str) -> str:
    """The first line of the config's module docstring."""
    file = path(name)
    if file is None:
        raise ValueError(f"no packaged config {name!r}; packaged: {', '.join(names())}")
    doc = ast.get_docstring(ast.parse(file.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def listing() -> str:
    """One line per packaged config: name and summary (what ``tfcontrast configs`` prints)."""
    rows = [(name, summary(name)) for name in names()]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {line}" for name, line in rows)


def text(name: str) -> str:
    """The source of a packaged config (what ``tfcontrast configs show NAME`` prints)."""
    file = path(name)
    if file is None:
        raise ValueError(f"no packaged config {name!r}; packaged: {', '.join(names())}")
    return file.read_text(encoding="utf-8")


def resolve(source: str | os.PathLike) -> pathlib.Path | None:
    """The file ``--config SOURCE`` means: an existing file path, else a packaged config name; ``None`` if neither."""
    source = os.fspath(source)
    if os.path.isfile(source):
        return pathlib.Path(source)
    if os.sep in source or (os.altsep and os.altsep in source):
        return None
    return path(source)
