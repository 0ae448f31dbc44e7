"""The docstring corpus, on small real packages so the walk stays fast."""

import os
import subprocess
import sys
import warnings

import pytest

import tfcontrast as tfc
from tfcontrast.text import docstrings


@pytest.fixture(scope="module")
def numpy_docs():
    # numpy.linalg alone would skip the walk; the whole of numpy takes a second or two.
    return tfc.data.load_docstrings(("numpy",), min_words=80)


def test_names_are_ids_modules_are_labels_and_versions_are_recorded(numpy_docs):
    import numpy

    assert "numpy.linalg.eigh" in numpy_docs.ids
    i = numpy_docs.ids.index("numpy.linalg.eigh")
    assert numpy_docs.labels[i] == "numpy.linalg"
    assert "eigenvalues" in numpy_docs.texts[i].lower()
    meta = numpy_docs.metadata
    assert meta["source"] == "docstrings" and meta["versions"] == {"numpy": numpy.__version__}
    assert meta["min_words"] == 80 and not meta["truncated"]


def test_every_document_is_public_long_enough_and_unique(numpy_docs):
    assert len(numpy_docs) > 300
    assert all(len(t.split()) >= 80 for t in numpy_docs.texts)
    assert not any(part.startswith("_") for name in numpy_docs.ids for part in name.split("."))
    assert len(set(numpy_docs.texts)) == len(numpy_docs.texts)
    assert list(numpy_docs.ids) == sorted(numpy_docs.ids)


def test_an_alias_is_kept_once_under_the_first_name(numpy_docs):
    # numpy.abs is numpy.absolute: one text, the name first in sorted order.
    assert "numpy.abs" in numpy_docs.ids and "numpy.absolute" not in numpy_docs.ids


def test_the_corpus_is_deterministic(numpy_docs):
    again = tfc.data.load_docstrings(("numpy",), min_words=80)
    assert again.ids == numpy_docs.ids and again.texts == numpy_docs.texts


def test_a_time_budget_of_zero_truncates_with_a_warning():
    with pytest.warns(UserWarning, match="time_budget"):
        partial = tfc.data.load_docstrings(("numpy",), min_words=80, time_budget=0.0)
    assert partial.metadata["truncated"] and partial.metadata["modules"] == 1  # only the top-level module


def test_bad_packages_are_refused():
    with pytest.raises(ValueError, match="cannot be imported"):
        tfc.data.load_docstrings(("no_such_package_xyz",))
    with pytest.raises(ValueError, match="`packages`"):
        tfc.data.load_docstrings("numpy")
    with pytest.raises(ValueError, match="min_words"):
        tfc.data.load_docstrings(("numpy",), min_words=10**6)


def test_private_and_test_modules_are_never_walked():
    assert not docstrings._is_public("numpy._core.numeric")
    assert not docstrings._is_public("scipy.linalg.tests.test_basic")
    assert docstrings._is_public("scipy.linalg")


def test_import_quietly_swallows_failures_and_output(capsys):
    assert docstrings._import_quietly("no_such_module_xyz") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert docstrings._import_quietly("this") is not None  # prints the Zen of Python on first import
    assert "Beautiful is better" not in capsys.readouterr().out


def test_canonical_text_removes_what_varies_between_runs():
    text = "Draw samples.\n>>> x.sample(3)\narray([0.1, 0.7, 0.3])  # may vary\nUse of ``{'b', 'c', 'a'}`` is deprecated."
    assert docstrings.canonical_text(text) == "Draw samples.\n>>> x.sample(3)\nUse of ``{'a', 'b', 'c'}`` is deprecated."


@pytest.mark.slow  # ~25 s: three fresh processes
def test_the_corpus_is_the_same_in_processes_with_other_hash_seeds_and_random_states():
    """SciPy builds some docstrings at import with unseeded draws and hash-ordered sets; the corpus must not."""
    code = (
        "import hashlib, tfcontrast as tfc\n"
        "d = tfc.data.load_docstrings(('scipy',))\n"
        "print(len(d), hashlib.sha256('\\x00'.join(d.ids + d.texts).encode()).hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        digests.add(out.stdout.strip().splitlines()[-1])
    assert len(digests) == 1, digests
