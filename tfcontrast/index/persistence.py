"""Safe on-disk format for an index: a directory, a JSON manifest, checksummed files.

Layout of a saved index ``path/``::

    manifest.json   {"format": "tfcontrast.index", "format_version": 1,
                     "metric", "backend", "dim", "count", "params", ...,
                     "files": {name: {"sha256": hex, "bytes": size}, ...}}
    index.faiss     faiss.serialize_index bytes
    ids.npy         .npy arrays written and read with allow_pickle=False
    labels.npy
    alive.npy
    data.json       optional: one entry per slot; bytes as {"$bytes": base64}

**Atomic replacement.** :func:`atomic_directory` writes a fresh temporary
directory next to the target and swaps it into place only when everything has
been written and fsync'ed; it replaces only a new or empty path or an index
saved earlier (our manifest), never anything else, and one writer at a time
holds the path. The rules live in :mod:`tfcontrast.storage`.

**Verification.** :func:`read_verified` reads only regular files (no links,
FIFOs or devices), checks the manifest's schema and every listed file's size
(before reading it) and SHA-256 before anything is parsed, so truncated or
modified files are refused with :class:`IndexFileError` (a ``ValueError``).
Arrays are parsed with ``allow_pickle=False`` and their dtype and shape
checked, so a pickled payload is refused even if its checksum was forged.
Checksums detect corruption and accidental edits, not a deliberate attacker
who also rewrites the manifest: load indexes only from sources you trust.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from typing import Any, Mapping

import numpy as np

from tfcontrast import storage
from tfcontrast.index.inputs import BYTES_MARKER

FORMAT_NAME = "tfcontrast.index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20  # a manifest lists a few files: anything larger is not ours


class IndexFileError(ValueError):
    """A saved index is missing, truncated, modified, pickled or of an unknown format."""


# --------------------------------------------------------------------- writing


def atomic_directory(path: str | os.PathLike):
    """A context manager yielding a temporary directory that replaces ``path`` when the block succeeds.

    ``path`` may only be new, empty, or an index saved earlier (it holds our
    manifest); see :func:`tfcontrast.storage.replace_directory` for the rules,
    the lock and the atomic swap. On an exception the temporary directory is
    removed, ``path`` is left as it was and the exception propagates.
    """
    return storage.replace_directory(path, is_saved_index, what="index")


def is_saved_index(directory: str) -> bool:
    """Whether ``directory`` holds a manifest of our format (so a save may replace it)."""
    try:
        manifest = json.loads(storage.read_regular_file(os.path.join(directory, MANIFEST), max_size=MAX_MANIFEST_BYTES))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME


def write_bytes(directory: str, name: str, payload: bytes) -> dict:
    """Writes ``payload`` to ``directory/name`` (fsync'ed); returns its manifest entry."""
    with open(os.path.join(directory, name), "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    return {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}


def npy_bytes(array: np.ndarray) -> bytes:
    """The ``.npy`` serialisation of ``array`` (refuses object arrays: no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def data_json_bytes(data: list[Any]) -> bytes:
    """JSON for ``data`` entries; byte strings become ``{"$bytes": base64}``."""
    encoded = [
        {BYTES_MARKER: base64.b64encode(v).decode("ascii")} if isinstance(v, bytes) else v for v in data
    ]
    return json.dumps(encoded, allow_nan=False, separators=(",", ":")).encode("utf-8")


def write_manifest(directory: str, manifest: Mapping[str, Any]) -> None:
    body = dict(manifest, format=FORMAT_NAME, format_version=FORMAT_VERSION)
    write_bytes(directory, MANIFEST, json.dumps(body, indent=2, sort_keys=True).encode("utf-8"))


# --------------------------------------------------------------------- reading


def resolve(path: str | os.PathLike) -> str:
    """The directory to load: ``path``, or its ``.previous`` copy after a save crashed mid-swap.

    Stale temporaries of interrupted saves beside it are removed when no save
    is running.
    """
    directory = storage.resolve_saved_directory(path, lambda message: IndexFileError(f"No saved index: {message}"))
    storage.clean_stale_if_idle(path)
    return directory


def read_verified(directory: str, required: Mapping[str, type]) -> tuple[dict, dict[str, bytes]]:
    """Reads the manifest and every file it lists, verifying sizes and SHA-256.

    Args:
        directory: the saved index directory.
        required: manifest keys that must be present, with their types.

    Returns:
        ``(manifest, {file name: bytes})``.
    """
    manifest_path = os.path.join(directory, MANIFEST)
    try:
        manifest = json.loads(storage.read_regular_file(manifest_path, max_size=MAX_MANIFEST_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise IndexFileError(f"{directory!r} holds no {MANIFEST}: not a saved index.") from None
    except storage.UnsafeFileError as err:
        raise IndexFileError(str(err)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IndexFileError(f"{manifest_path!r} is not valid JSON (truncated or modified?): {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexFileError(f"{manifest_path!r} is not a {FORMAT_NAME} manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFileError(
            f"{manifest_path!r} has format_version {manifest.get('format_version')!r}; this version of "
            f"tfcontrast reads version {FORMAT_VERSION}."
        )
    for key, kind in dict(required, files=dict).items():
        value = manifest.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise IndexFileError(f"{manifest_path!r}: `{key}` must be a {kind.__name__}, got {manifest.get(key)!r}.")

    payloads = {}
    for name, entry in manifest["files"].items():
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", "..", MANIFEST):
            raise IndexFileError(f"{manifest_path!r} lists an invalid file name {name!r}.")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("bytes"), int):
            raise IndexFileError(f"{manifest_path!r}: the entry for {name!r} lacks its sha256/bytes.")
        try:
            payload = storage.read_regular_file(os.path.join(directory, name), expected_size=entry["bytes"])
        except FileNotFoundError:
            raise IndexFileError(f"{name!r} listed in the manifest is missing from {directory!r}.") from None
        except storage.UnsafeFileError as err:
            raise IndexFileError(f"{name!r} in {directory!r}: {err}") from None
        if hashlib.sha256(payload).hexdigest() != entry["sha256"]:
            raise IndexFileError(f"{name!r} in {directory!r} fails its SHA-256 check: the file was modified or corrupted.")
        payloads[name] = payload
    return manifest, payloads


def load_npy(payloads: Mapping[str, bytes], name: str, dtype, length: int) -> np.ndarray:
    """Parses ``name`` with ``allow_pickle=False`` and checks it is a 1-D ``dtype`` array of ``length``."""
    if name not in payloads:
        raise IndexFileError(f"The manifest does not list {name!r}.")
    try:
        array = np.load(io.BytesIO(payloads[name]), allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise IndexFileError(f"{name!r} holds pickled objects; refusing to load it (allow_pickle=False).") from None
        raise IndexFileError(f"{name!r} is not a valid .npy array: {err}") from None
    except Exception as err:  # noqa: BLE001 - any parse failure is a corrupt file
        raise IndexFileError(f"{name!r} is not a valid .npy array: {err}") from None
    if not isinstance(array, np.ndarray) or array.dtype != np.dtype(dtype) or array.shape != (length,):
        raise IndexFileError(
            f"{name!r} must be a {np.dtype(dtype)} array of shape ({length},), got "
            f"{getattr(array, 'dtype', type(array).__name__)} {getattr(array, 'shape', '')}."
        )
    return array


def load_data(payloads: Mapping[str, bytes], name: str, length: int) -> list[Any]:
    """Parses the ``data`` JSON written by :func:`data_json_bytes`."""
    try:
        entries = json.loads(payloads[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IndexFileError(f"{name!r} is not valid JSON: {err}") from None
    if not isinstance(entries, list) or len(entries) != length:
        raise IndexFileError(f"{name!r} must be a JSON list of {length} entries.")
    out = []
    for value in entries:
        if isinstance(value, dict) and set(value) == {BYTES_MARKER}:
            try:
                value = base64.b64decode(value[BYTES_MARKER], validate=True)
            except (TypeError, ValueError) as err:
                raise IndexFileError(f"{name!r} holds an invalid base64 byte string: {err}") from None
        out.append(value)
    return out


# --------------------------------------------------------------------- helpers
