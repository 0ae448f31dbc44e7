"""Documents: the text corpus type, its split, and the loaders for text a user brings.

A :class:`Documents` is three aligned tuples (``ids``, ``texts``, ``labels``)
plus ``metadata``, a JSON-ready dict saying where the text came from (for
docstrings: the package versions), which a run folder stores next to its
results. Every loader returns one:

* :func:`load_docstrings` (module :mod:`tfcontrast.text.docstrings`): the
  docstrings of installed packages, the corpus that ships on every machine;
* :func:`load_text_folder`: every ``.txt`` file below a folder (ids are the
  relative paths, labels the sub-folders);
* :func:`load_jsonl`: one JSON object per line with a text field;
* :func:`documents_from_texts`: a Python list of strings;
* :func:`load_documents`: any of the above from one argument (what a config
  names).

Nothing is downloaded. ``Documents.split`` gives the deterministic
train / held-out split the text evaluation uses.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from tfcontrast import validation


@dataclass(frozen=True)
class Documents:
    """A corpus: ``ids[i]`` names ``texts[i]``, ``labels[i]`` groups it (a module, a folder).

    Attributes:
        ids: unique names of the documents (e.g. ``"numpy.linalg.eigh"``).
        texts: the documents.
        labels: a group per document ("" when there is none), for evaluation.
        metadata: JSON-serialisable facts about the source (loader, package
            versions, filters), for the run folder.
    """

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.ids)
        if len(self.texts) != n or len(self.labels) != n:
            raise ValueError(
                f"`ids`, `texts` and `labels` must have one entry per document, got "
                f"{n}, {len(self.texts)} and {len(self.labels)}."
            )
        if len(set(self.ids)) != n:
            seen: set[str] = set()
            duplicate = next(i for i in self.ids if i in seen or seen.add(i))
            raise ValueError(f"`ids` must be unique, {duplicate!r} appears more than once.")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: Iterable[int], **metadata: Any) -> "Documents":
        """The documents at ``indices`` (in that order); ``metadata`` entries are added."""
        indices = [int(i) for i in indices]
        return Documents(
            tuple(self.ids[i] for i in indices),
            tuple(self.texts[i] for i in indices),
            tuple(self.labels[i] for i in indices),
            {**self.metadata, **metadata},
        )

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple["Documents", "Documents"]:
        """``(train, held_out)``: a seeded random permutation, ``floor(n * test_fraction)`` held out.

        Deterministic in ``seed`` for the same documents in the same order;
        both parts keep the original order of the documents.

        Raises:
            ValueError: ``test_fraction`` outside (0, 1) or a split leaving a side empty.
        """
        fraction = float(test_fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"`test_fraction` must lie in (0, 1), got {test_fraction!r}.")
        n_test = int(len(self) * fraction)
        if n_test == 0 or n_test == len(self):
            raise ValueError(
                f"`test_fraction` {test_fraction!r} of {len(self)} documents leaves an empty side."
            )
        order = np.random.default_rng(int(seed)).permutation(len(self))
        held_out = np.sort(order[:n_test])
        train = np.sort(order[n_test:])
        split = {"test_fraction": fraction, "seed": int(seed)}
        return self.subset(train, split=dict(split, part="train")), self.subset(
            held_out, split=dict(split, part="held_out")
        )


def documents_from_texts(
    texts: Sequence[str],
    ids: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    min_words: int = 0,
    metadata: dict | None = None,
) -> Documents:
    """Documents from a Python list of strings.

    Args:
        texts: the documents, each a ``str``.
        ids: unique names (default ``"doc-0"``, ``"doc-1"``, ... by position).
        labels: a group per document (default ``""``).
        min_words: documents with fewer whitespace-separated words are left
            out (their ids are not reused).
        metadata: merged into the returned ``metadata``.

    Raises:
        ValueError: ``texts`` is a single string or holds non-strings, ``ids``
            or ``labels`` of another length, duplicate ids, or no document
            left after ``min_words``.

    Example:
        >>> docs = documents_from_texts(["a first text", "another one"])
        >>> docs.ids
        ('doc-0', 'doc-1')
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError("`texts` must be a sequence of strings, got a single string.")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"`texts` must hold strings, entry {i} is {type(text).__name__}.")
    ids = [f"doc-{i}" for i in range(len(texts))] if ids is None else [str(i) for i in ids]
    labels = [""] * len(texts) if labels is None else [str(l) for l in labels]
    for name, values in (("ids", ids), ("labels", labels)):
        if len(values) != len(texts):
            raise ValueError(f"`{name}` has {len(values)} entries but `texts` has {len(texts)}.")
    min_words = _check_min_words(min_words)
    keep = [i for i, text in enumerate(texts) if len(text.split()) >= min_words]
    if not keep:
        raise ValueError(f"no document has at least `min_words`={min_words} words (of {len(texts)} given).")
    info = {"source": "texts", "min_words": min_words, "documents_given": len(texts), **(metadata or {})}
    return Documents(
        tuple(ids[i] for i in keep), tuple(texts[i] for i in keep), tuple(labels[i] for i in keep), info
    )


def load_text_folder(path, pattern: str = ".txt", min_words: int = 0, encoding: str = "utf-8") -> Documents:
    """Every file ending in ``pattern`` below ``path`` (recursively), in sorted order.

    Ids are the paths relative to ``path`` (``"a/b.txt"``), labels the
    relative folder (``"a"``, or ``""`` at the top). Hidden files and folders
    are skipped.

    Raises:
        ValueError: ``path`` is not a folder, it holds no such file, a file is
            not valid text in ``encoding``, or none has ``min_words`` words.
    """
    root = os.fspath(path)
    if not os.path.isdir(root):
        raise ValueError(f"`path` {root!r} is not a folder.")
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(pattern) and not name.startswith("."):
                found.append(os.path.join(folder, name))
    if not found:
        raise ValueError(f"`path` {root!r} holds no file ending in {pattern!r}.")
    found.sort(key=lambda p: os.path.relpath(p, root))
    ids, texts, labels = [], [], []
    for file in found:
        relative = os.path.relpath(file, root)
        try:
            with open(file, encoding=encoding) as f:
                texts.append(f.read())
        except UnicodeDecodeError as err:
            raise ValueError(f"`path`: {relative!r} is not {encoding} text ({err}).") from None
        ids.append(relative.replace(os.sep, "/"))
        labels.append(os.path.dirname(relative).replace(os.sep, "/"))
    return documents_from_texts(
        texts, ids, labels, min_words, {"source": "text_folder", "path": os.path.abspath(root)}
    )


def load_jsonl(
    path,
    text_field: str = "text",
    id_field: str | None = None,
    label_field: str | None = None,
    min_words: int = 0,
) -> Documents:
    """One document per line of a JSON Lines file: ``{"text": ..., ...}``.

    Args:
        path: the ``.jsonl`` file (UTF-8; blank lines are skipped).
        text_field: the key holding the text.
        id_field: the key holding a unique name; default ``"line-N"`` (1-based line number).
        label_field: the key holding a group; default ``""``.
        min_words: see :func:`documents_from_texts`.

    Raises:
        ValueError: a missing file, a line that is not a JSON object, or one
            without ``text_field`` (the line number and the keys it has are named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"`path` {path!r} is not a file.")
    ids, texts, labels = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"`path` {path!r} line {number} is not JSON: {err}.") from None
            if not isinstance(record, dict):
                raise ValueError(f"`path` {path!r} line {number} is not a JSON object.")
            for name, key in (("text_field", text_field), ("id_field", id_field), ("label_field", label_field)):
                if key is not None and key not in record:
                    raise ValueError(
                        f"`{name}` {key!r} is missing on line {number} of {path!r} (keys: {sorted(record)})."
                    )
            if not isinstance(record[text_field], str):
                raise ValueError(f"`text_field` {text_field!r} on line {number} of {path!r} is not a string.")
            texts.append(record[text_field])
            ids.append(str(record[id_field]) if id_field else f"line-{number}")
            labels.append(str(record[label_field]) if label_field else "")
    if not texts:
        raise ValueError(f"`path` {path!r} holds no JSON line.")
    return documents_from_texts(
        texts, ids, labels, min_words, {"source": "jsonl", "path": os.path.abspath(path), "text_field": text_field}
    )


def load_documents(source, min_words: int | None = None, **kwargs) -> Documents:
    """Documents from one argument, as a config names them.

    Args:
        source: ``"docstrings"`` (:func:`load_docstrings`, ``kwargs`` such as
            ``packages``), a folder (:func:`load_text_folder`), a ``.jsonl``
            file (:func:`load_jsonl`, ``kwargs`` such as ``text_field``), a
            list of strings (:func:`documents_from_texts`) or a
            :class:`Documents` (returned as is).
        min_words: the loader's filter (default: 80 for docstrings, 0 otherwise).

    Raises:
        ValueError: a ``source`` that is none of these (or the loader's own errors).
    """
    if isinstance(source, Documents):
        return source
    extra = {} if min_words is None else {"min_words": min_words}
    if isinstance(source, str) and source == "docstrings":
        from tfcontrast.text.docstrings import load_docstrings

        return load_docstrings(**extra, **kwargs)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            return load_text_folder(path, **extra, **kwargs)
        if path.endswith(".jsonl") or os.path.isfile(path):
            return load_jsonl(path, **extra, **kwargs)
        raise ValueError(f"`source` {path!r} is neither 'docstrings', a folder nor a .jsonl file.")
    if isinstance(source, (list, tuple)):
        return documents_from_texts(source, **extra, **kwargs)
    raise ValueError(
        f"`source` must be 'docstrings', a folder, a .jsonl path, a list of strings or Documents, "
        f"got {type(source).__name__}."
    )



def _check_min_words(min_words) -> int:
    return validation.check_int(min_words, "min_words", 0)
