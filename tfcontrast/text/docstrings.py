"""The docstrings of installed packages as a corpus: real English technical text on every machine.

:func:`load_docstrings` walks the public modules of each package, takes the
docstring of every public class, function and other callable, and keeps those
with at least ``min_words`` words. The result depends only on the installed
package versions (recorded in ``metadata["versions"]``): modules are walked in
sorted order, names in sorted order, and a text that appears under several
names (re-exports, aliases, inherited docstrings) is kept once, under the
first name met. Nothing is downloaded and no text is stored in this
repository.

Some docstrings are generated at import time and vary from run to run: SciPy
fills distribution examples with unseeded random draws (their lines end in
``# may vary``) and prints Python sets of names, whose order follows the
string hash seed. :func:`canonical_text` removes both (drops the ``# may
vary`` lines, sorts the elements of ``{'a', 'b'}`` sets), so the corpus is the
same in every process.

Importing arbitrary modules can be slow, noisy or fail: each module is
imported with warnings and Python-level output silenced; one that raises is
skipped (counted in ``metadata["skipped_modules"]``); private modules
(``_name``) and test modules are never imported; and once ``time_budget``
seconds have passed no further module is imported (``metadata["truncated"]``
says so, with a warning, since the corpus is then no longer a function of the
versions alone).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import inspect
import io
import pkgutil
import re
import time
import warnings
from typing import Sequence

from tfcontrast.text.corpus import Documents, _check_min_words, documents_from_texts

DEFAULT_PACKAGES = ("numpy", "scipy", "sklearn")
# Sub-modules never imported: tests, build helpers, entry points.
SKIPPED_PARTS = frozenset({"tests", "test", "testing", "conftest", "setup", "__main__", "benchmarks"})
# Import names whose distribution has another name (for the recorded version).
DISTRIBUTIONS = {"sklearn": "scikit-learn", "PIL": "pillow", "faiss": "faiss-cpu"}
_MAY_VARY = re.compile(r"^.*#\s*may vary\s*$\n?", re.MULTILINE)
_STRING_SET = re.compile(r"\{('[^'{}]*'(?:, '[^'{}]*')+)\}")


def load_docstrings(
    packages: Sequence[str] = DEFAULT_PACKAGES,
    min_words: int = 80,
    time_budget: float = 120.0,
) -> Documents:
    """Docstrings of the public API of installed ``packages``; ids are the names.

    Args:
        packages: import names of installed packages (``"numpy"``, ``"sklearn"``, ...).
        min_words: keep docstrings with at least this many whitespace-separated words.
        time_budget: seconds after which no further module is imported.

    Returns:
        :class:`~tfcontrast.text.corpus.Documents` with ids such as
        ``"numpy.linalg.eigh"``, labels the module the name was found in
        (``"numpy.linalg"``), texts as ``inspect.getdoc`` cleans them, and
        ``metadata`` holding ``versions`` (package -> version), ``min_words``,
        ``modules`` (imported), ``skipped_modules``, ``truncated``.

    Raises:
        ValueError: ``packages`` empty or a string, a package that is not
            installed, or no docstring with ``min_words`` words.

    Example:
        >>> docs = load_docstrings(("numpy",), min_words=80)   # doctest: +SKIP
        >>> "numpy.linalg.eigh" in docs.ids                     # doctest: +SKIP
        True
    """
    if isinstance(packages, str) or not packages:
        raise ValueError(f"`packages` must be a non-empty sequence of package names, got {packages!r}.")
    min_words = _check_min_words(min_words)
    deadline = time.monotonic() + float(time_budget)
    versions, module_names, skipped = {}, [], []
    for package in sorted(set(packages)):
        root = _import_quietly(package)
        if root is None:
            raise ValueError(f"`packages`: {package!r} cannot be imported; is it installed?")
        versions[package] = _version(package, root)
        module_names += _public_modules(root, skipped, deadline)
    truncated = time.monotonic() > deadline
    if truncated:
        warnings.warn(
            f"load_docstrings stopped importing after `time_budget`={time_budget}s; the corpus is partial.",
            stacklevel=2,
        )

    texts: dict[str, tuple[str, str]] = {}  # text -> (name, module), first in sorted order
    for module_name in sorted(set(module_names)):
        module = _import_quietly(module_name)
        if module is None:
            skipped.append(module_name)
            continue
        for name, text in _public_docstrings(module):
            texts.setdefault(text, (f"{module_name}.{name}", module_name))
    # (module, attribute) pairs are visited once each, so every kept text has its own name.
    by_name = {name: (text, module_name) for text, (name, module_name) in texts.items()}
    names = sorted(by_name)
    long_enough = [n for n in names if len(by_name[n][0].split()) >= min_words]
    if not long_enough:
        raise ValueError(f"no docstring of {sorted(versions)} has at least `min_words`={min_words} words.")
    return documents_from_texts(
        [by_name[n][0] for n in long_enough],
        ids=long_enough,
        labels=[by_name[n][1] for n in long_enough],
        metadata={
            "source": "docstrings",
            "packages": sorted(versions),
            "versions": versions,
            "min_words": min_words,
            "modules": len(set(module_names)),
            "skipped_modules": sorted(set(skipped)),
            "docstrings_found": len(names),
            "truncated": truncated,
        },
    )


def canonical_text(text: str) -> str:
    """``text`` without the parts that change between runs: ``# may vary`` lines, the order of string sets."""
    text = _MAY_VARY.sub("", text)
    return _STRING_SET.sub(lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", text)


def _import_quietly(name: str):
    """The module, or ``None`` when importing it raises (anything but Ctrl-C)."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - a module may raise anything, SystemExit included
            return None


def _version(package: str, module) -> str:
    try:
        return importlib.metadata.version(DISTRIBUTIONS.get(package, package))
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", "unknown"))


def _is_public(module_name: str) -> bool:
    return not any(part.startswith("_") or part in SKIPPED_PARTS for part in module_name.split("."))


def _public_modules(root, skipped: list, deadline: float) -> list[str]:
    """The public module names under ``root`` (itself included), imported depth first in sorted order."""
    found = [root.__name__]
    pending = [root]
    while pending and time.monotonic() <= deadline:
        package = pending.pop()
        path = getattr(package, "__path__", None)
        if path is None:
            continue
        children = sorted(pkgutil.iter_modules(path, package.__name__ + "."), key=lambda info: info.name)
        for info in children:
            if not _is_public(info.name) or time.monotonic() > deadline:
                continue
            module = _import_quietly(info.name)
            if module is None:
                skipped.append(info.name)
                continue
            found.append(info.name)
            if info.ispkg:
                pending.append(module)
    return found


def _public_docstrings(module):
    """``(name, docstring)`` for the public classes, functions and callables of ``module``."""
    public = getattr(module, "__all__", None)
    if not isinstance(public, (list, tuple)):
        public = dir(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted({n for n in public if isinstance(n, str) and not n.startswith("_")}):
            try:
                obj = getattr(module, name)
                if inspect.ismodule(obj) or not callable(obj):
                    continue
                text = inspect.getdoc(obj)
            except Exception:  # noqa: BLE001 - lazy attributes may fail to load
                continue
            if isinstance(text, str) and text.strip():
                yield name, canonical_text(text).strip()
