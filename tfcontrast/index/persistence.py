"""Safe on-disk format for an index: a directory, a JSON manifest, checksummed files.

Layout of a saved index ``path/``::

    manifest.json   {"format": "tfcontrast.index", "format_version": 2, "kind": "faiss",
                     "metric", "backend", "dim", "count", "params", ..., "metadata": {...},
                     "files": {name: {"sha256": hex, "bytes": size}, ...},
                     "manifest_sha256": hex}
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

A :class:`~tfcontrast.index.MilvusIndex` saves a manifest of kind
``"milvus"`` listing no files: how to reconnect (URI without credentials,
collection, metric, index type), never the token.

**The manifest's own checksum.** ``manifest_sha256`` is the SHA-256 of the
manifest's canonical JSON (keys sorted, no spaces, ASCII) without that key,
so an edited field (say ``metric``) is refused like an edited file. Format
version 1 (tfcontrast 0.1.0) had no such checksum: it is read only when the
caller passes ``legacy_manifest=True`` (with a warning that its fields are
unverified); saving again writes version 2.

**Verification.** :func:`read_verified` reads only regular files (no links,
FIFOs or devices), checks the manifest's checksum and schema and every listed file's size
(before reading it) and SHA-256 before anything is parsed, so truncated or
modified files are refused with :class:`IndexFileError` (a ``ValueError``).
Arrays are parsed with ``allow_pickle=False`` and their dtype and shape
checked, so a pickled payload is refused even if its checksum was forged.
Checksums detect corruption and accidental edits, not a deliberate attacker
who also rewrites the manifest: load indexes only from sources you trust.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any, Mapping

import numpy as np

from tfcontrast import storage
from tfcontrast.index.inputs import decode_payload, encode_payload

FORMAT_NAME = "tfcontrast.index"
FORMAT_VERSION = 2
LEGACY_FORMAT_VERSION = 1  # no manifest checksum; read only on request
CHECKSUM_KEY = "manifest_sha256"
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
    encoded = [encode_payload(v) for v in data]
    return json.dumps(encoded, allow_nan=False, separators=(",", ":")).encode("utf-8")


def write_manifest(directory: str, manifest: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
    """Writes ``manifest`` (plus format, version, the caller's ``metadata`` and the manifest's own checksum)."""
    body = dict(manifest, format=FORMAT_NAME, format_version=FORMAT_VERSION)
    if metadata is not None:
        body["metadata"] = check_metadata(metadata)
    body[CHECKSUM_KEY] = manifest_checksum(body)
    write_bytes(directory, MANIFEST, json.dumps(body, indent=2, sort_keys=True).encode("utf-8"))


def check_metadata(metadata) -> dict:
    """``metadata`` as a JSON-serialisable dict (no NaN/inf), else ``ValueError`` naming it."""
    if not isinstance(metadata, Mapping):
        raise ValueError(f"`metadata` must be a dict of JSON values, got {type(metadata).__name__}.")
    try:
        return json.loads(json.dumps(dict(metadata), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"`metadata` must be JSON-serialisable (no NaN/inf): {err}") from None


def manifest_checksum(body: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``body`` without its checksum key."""
    canonical = {key: value for key, value in body.items() if key != CHECKSUM_KEY}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --------------------------------------------------------------------- reading


def resolve(path: str | os.PathLike) -> str:
    """The directory to load: ``path``, or its ``.previous`` copy after a save crashed mid-swap.

    Stale temporaries of interrupted saves beside it are removed when no save
    is running.
    """
    directory = storage.resolve_saved_directory(path, lambda message: IndexFileError(f"No saved index: {message}"))
    storage.clean_stale_if_idle(path)
    return directory


def read_verified(
    directory: str, required: Mapping[str, type], *, legacy_manifest: bool = False
) -> tuple[dict, dict[str, bytes]]:
    """Reads the manifest and every file it lists, verifying checksums and sizes.

    Args:
        directory: the saved index directory.
        required: manifest keys that must be present, with their types.
        legacy_manifest: also read format version 1 (no manifest checksum).

    Returns:
        ``(manifest, {file name: bytes})``.
    """
    manifest = read_manifest(directory, required, legacy_manifest=legacy_manifest)
    return manifest, read_files(directory, manifest)


def read_manifest(directory: str, required: Mapping[str, type] | None = None, *, legacy_manifest: bool = False) -> dict:
    """The manifest of ``directory``, its own checksum and the ``required`` keys' types verified."""
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
    version = manifest.get("format_version")
    if version == LEGACY_FORMAT_VERSION and legacy_manifest:
        import warnings

        warnings.warn(
            f"{manifest_path!r} has format_version 1, which has no checksum of its own: its fields (metric, "
            "counts, parameters) are read unverified. Save the index again to upgrade it.",
            RuntimeWarning,
            stacklevel=3,
        )
    elif version == LEGACY_FORMAT_VERSION:
        raise IndexFileError(
            f"{manifest_path!r} has format_version 1 (tfcontrast 0.1.0), whose manifest has no checksum, so an "
            "edited field (e.g. `metric`) could not be detected. If you trust the folder, load it with "
            "`legacy_manifest=True` and save it again (that writes the checked format)."
        )
    elif version != FORMAT_VERSION:
        raise IndexFileError(
            f"{manifest_path!r} has format_version {version!r}; this version of tfcontrast reads version "
            f"{FORMAT_VERSION} (and 1 with legacy_manifest=True)."
        )
    else:
        stored = manifest.get(CHECKSUM_KEY)
        try:
            expected = manifest_checksum(manifest)
        except ValueError:  # NaN/inf smuggled into the JSON
            expected = None
        if not isinstance(stored, str) or stored != expected:
            raise IndexFileError(
                f"{manifest_path!r} fails its own checksum ({CHECKSUM_KEY}): the manifest was modified or "
                "corrupted; refusing to load it."
            )
    for key, kind in dict(required or {}, files=dict).items():
        value = manifest.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise IndexFileError(f"{manifest_path!r}: `{key}` must be a {kind.__name__}, got {manifest.get(key)!r}.")
    if not isinstance(manifest.get("metadata", {}), dict):
        raise IndexFileError(f"{manifest_path!r}: `metadata` must be a dict.")
    return manifest


def read_kind(path: str | os.PathLike) -> str:
    """Which kind of index (``"faiss"``, ``"milvus"``, ...) the verified manifest at ``path`` describes."""
    directory = resolve(path)
    if _is_legacy(directory):
        return "faiss"  # version 1 manifests were all faiss; its loader decides whether to read it
    kind = read_manifest(directory).get("kind")
    if not isinstance(kind, str):
        raise IndexFileError(f"{directory!r}: `kind` must be a str, got {kind!r}.")
    return kind


def _is_legacy(directory: str) -> bool:
    """Whether the manifest says format_version 1."""
    try:
        manifest = json.loads(storage.read_regular_file(os.path.join(directory, MANIFEST), max_size=MAX_MANIFEST_BYTES))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format_version") == LEGACY_FORMAT_VERSION


def read_files(directory: str, manifest: Mapping[str, Any]) -> dict[str, bytes]:
    """The bytes of every file the (verified) manifest lists, each checked for kind, size and SHA-256."""
    manifest_path = os.path.join(directory, MANIFEST)
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
    return payloads


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
    try:
        return [decode_payload(value) for value in entries]
    except ValueError as err:
        raise IndexFileError(f"{name!r}: {err}") from None
