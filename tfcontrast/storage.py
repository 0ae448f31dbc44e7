"""Safe directory saves and safe file reads, shared by every writer of tfcontrast.

A save in tfcontrast (an index, a SavedModel export) writes a whole directory.
This module holds the rules that make such a save unable to lose anything a
user owns, and the reads unable to hang or exhaust memory:

**What a save may replace.** :func:`replace_directory` writes ``path`` only if
``path`` does not exist, is an empty directory, or is a directory that the
caller's ``recognise(path)`` accepts as its *own previous output* (an index
manifest, an export marker). Anything else is refused with
:class:`RefusedPathError`, and so are ``""``, ``"."``, the current directory
and its ancestors, the home directory and its ancestors, and ``/``, whatever
they hold. A symbolic link is followed: the directory it points to is
replaced and the link keeps pointing to it (a save never splits the two).

**Atomic replacement.** Everything is written into a temporary directory
beside the target (``.<name>.tfcontrast-tmp-<pid>-<random>``), fsync'ed, then
swapped in with one ``renameat2(RENAME_EXCHANGE)`` (Linux): at every instant
``path`` is either the complete old directory or the complete new one. Where
the kernel or file system lacks the exchange, the old directory is first
renamed to ``.<name>.previous`` and the new one renamed into place; a crash
between the two renames leaves ``.<name>.previous``, which
:func:`resolve_saved_directory` finds and the next save cleans up.

**One writer at a time.** A save holds an exclusive ``flock`` on
``.<name>.tfcontrast-lock`` beside the target while it writes and swaps;
a second save to the same path (another thread or process) waits for it, up to
``lock_timeout`` seconds, then fails with :class:`ConcurrentWriteError`
("another process is writing <path>"). The lock file stays (empty, hidden).

**Stale temporaries.** While holding the lock, a save removes every
temporary of our naming for the same target (left by a killed writer: a
writer holds the lock for as long as its temporary exists), and a stale
``.<name>.previous`` once ``path`` exists again.

**Safe reads.** :func:`read_regular_file` opens with ``O_NOFOLLOW |
O_NONBLOCK``, checks on the open descriptor that it is a regular file (no
symbolic link, FIFO, device or directory) and that its size is the expected
one (or below a cap) *before* reading, so a FIFO cannot block a load and a
link to ``/dev/zero`` cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import glob
import os
import secrets
import shutil
import stat
import time
from typing import Callable, Iterator

TMP_TAG = ".tfcontrast-tmp-"
LOCK_SUFFIX = ".tfcontrast-lock"
PREVIOUS_SUFFIX = ".previous"


class RefusedPathError(ValueError):
    """A save was asked to replace something it did not write (or a directory it must never replace)."""


class ConcurrentWriteError(RuntimeError):
    """Another thread or process kept the target locked for longer than the timeout."""


class UnsafeFileError(ValueError):
    """A file to read is not a regular file of the expected size."""


# ----------------------------------------------------------------- targets


def check_folder(path: str | os.PathLike, flag: str = "--workdir") -> None:
    """Raises ``ValueError`` when ``path`` exists but is not a folder (e.g. a file given as a run's folder)."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a file, not a folder: give the run's folder (a new one for a new run).")


def resolve_target(path: str | os.PathLike, what: str = "output") -> str:
    """The absolute, link-resolved directory a save to ``path`` writes.

    Raises:
        RefusedPathError: ``path`` is empty, ``.``, the current directory or
            one of its ancestors, the home directory or one of its ancestors,
            or ``/``.
    """
    raw = os.fspath(path)
    if not isinstance(raw, str) or raw.strip() == "":
        raise RefusedPathError(f"the {what} path must name a new or {what} directory, got {raw!r}.")
    real = os.path.realpath(os.path.expanduser(raw))
    protected = {os.path.realpath(os.getcwd()), os.path.realpath(os.path.expanduser("~")), os.path.realpath(os.sep)}
    for directory in protected:
        if real == directory or _is_ancestor(real, directory):
            raise RefusedPathError(
                f"refusing to write the {what} to {raw!r}: it is {real!r}, which is the current, home or root "
                "directory or one of their ancestors; name a new sub-directory instead."
            )
    return real


def _is_ancestor(candidate: str, path: str) -> bool:
    return os.path.commonpath([candidate, path]) == candidate


def check_replaceable(real: str, recognise: Callable[[str], bool], what: str, shown: str | None = None) -> None:
    """Refuses (``RefusedPathError``) unless ``real`` is absent, an empty directory, or recognised as ours."""
    shown = shown or real
    if not os.path.lexists(real):
        return
    if not os.path.isdir(real):
        raise RefusedPathError(f"refusing to replace {shown!r}: it exists and is not a directory.")
    if not os.listdir(real):
        return
    if not recognise(real):
        raise RefusedPathError(
            f"refusing to replace {shown!r}: it exists and is not a {what} written by tfcontrast; "
            "choose a new path, or move that directory away yourself."
        )


# ------------------------------------------------------------------ saving


@contextlib.contextmanager
def replace_directory(
    path: str | os.PathLike,
    recognise: Callable[[str], bool],
    what: str = "output",
    lock_timeout: float = 120.0,
) -> Iterator[str]:
    """Yields a temporary directory that atomically replaces ``path`` when the block succeeds.

    See the module docstring for what may be replaced, the lock and the
    clean-up. On an exception inside the block the temporary directory is
    removed and ``path`` is left exactly as it was.

    Args:
        path: the directory to write (a symbolic link is followed).
        recognise: ``recognise(directory) -> bool``: is this an earlier
            output of the same writer (e.g. it holds our manifest)?
        what: what is being written, for messages (``"index"``, ``"export"``).
        lock_timeout: seconds to wait for another writer of the same path.

    Raises:
        RefusedPathError: ``path`` may not be replaced.
        ConcurrentWriteError: another writer held the path beyond ``lock_timeout``.
    """
    shown = os.fspath(path)
    real = resolve_target(path, what)
    check_replaceable(real, recognise, what, shown)
    parent, name = os.path.split(real)
    os.makedirs(parent, exist_ok=True)
    with _exclusive_lock(os.path.join(parent, f".{name}{LOCK_SUFFIX}"), lock_timeout, shown):
        check_replaceable(real, recognise, what, shown)  # again: another writer may have changed it
        remove_stale(real)
        tmp = os.path.join(parent, f".{name}{TMP_TAG}{os.getpid()}-{secrets.token_hex(4)}")
        os.mkdir(tmp)
        try:
            yield tmp
            _fsync_tree(tmp)
            _swap_into_place(tmp, real)
            _fsync_dir(parent)
        finally:
            if os.path.lexists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)


def remove_stale(real: str) -> list[str]:
    """Removes temporaries of our naming left beside ``real`` by killed writers; returns what it removed.

    Call only while holding the target's lock (as :func:`replace_directory`
    does): a live writer holds the lock for as long as its temporary exists.
    """
    parent, name = os.path.split(real)
    stale = glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}{TMP_TAG}*"))
    # Temporaries of tfcontrast <= 0.1 (mkdtemp prefix ".<name>.tmp-").
    stale += glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.tmp-*"))
    previous = previous_path(real)
    if os.path.isdir(real) and os.path.lexists(previous):
        stale.append(previous)
    removed = []
    for entry in stale:
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(entry)
        removed.append(entry)
    return removed


def clean_stale_if_idle(path: str | os.PathLike) -> None:
    """Removes stale temporaries beside ``path`` if no writer holds its lock right now (for loaders)."""
    real = os.path.realpath(os.fspath(path))
    parent, name = os.path.split(real)
    lock_path = os.path.join(parent, f".{name}{LOCK_SUFFIX}")
    if not os.path.exists(lock_path):
        return
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return
    try:
        remove_stale(real)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def previous_path(real: str) -> str:
    parent, name = os.path.split(real)
    return os.path.join(parent, f".{name}{PREVIOUS_SUFFIX}")


def resolve_saved_directory(path: str | os.PathLike, missing: Callable[[str], Exception]) -> str:
    """The directory to load for ``path``: itself, or its ``.previous`` copy after a save crashed mid-swap.

    ``missing(message)`` builds the exception raised when neither exists.
    """
    real = os.path.realpath(os.fspath(path))
    if os.path.isdir(real):
        return real
    previous = previous_path(real)
    if os.path.isdir(previous):
        import warnings

        warnings.warn(
            f"{os.fspath(path)!r} is missing but {previous!r} exists (a save was interrupted while swapping "
            "directories); loading the previous copy.",
            RuntimeWarning,
            stacklevel=3,
        )
        return previous
    raise missing(f"nothing saved at {os.fspath(path)!r}: the directory does not exist.")


@contextlib.contextmanager
def _exclusive_lock(lock_path: str, timeout: float, shown: str) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise ConcurrentWriteError(
                        f"another process is writing {shown!r} (waited {timeout:g} s for {lock_path!r})."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange() -> Callable[[str, str], None] | None:
    """``renameat2(..., RENAME_EXCHANGE)`` from libc, or ``None`` where it does not exist."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int

    def exchange(a: str, b: str) -> None:
        if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), a)

    return exchange


_EXCHANGE = _renameat2_exchange()


def _swap_into_place(tmp: str, real: str) -> None:
    """Puts ``tmp`` at ``real``; the old ``real`` (if any) ends up at ``tmp`` and is removed."""
    previous = previous_path(real)
    if not os.path.lexists(real):
        os.rename(tmp, real)
        if os.path.lexists(previous):  # left by a save that crashed mid-swap; superseded now
            shutil.rmtree(previous, ignore_errors=True)
        return
    if _EXCHANGE is not None:
        try:
            _EXCHANGE(tmp, real)
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            return
    if os.path.lexists(previous):
        shutil.rmtree(previous)
    os.rename(real, previous)
    os.rename(tmp, real)
    shutil.rmtree(previous, ignore_errors=True)


def _fsync_tree(directory: str) -> None:
    for root, _, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(root, name), os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(root)


def _fsync_dir(directory: str) -> None:
    """Makes the directory entries durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------- reading


def read_regular_file(path: str, expected_size: int | None = None, max_size: int | None = None) -> bytes:
    """The bytes of ``path``, read only if it is a regular file of the expected size.

    Args:
        path: the file; a symbolic link, FIFO, socket, device or directory is refused.
        expected_size: the exact size it must have (checked before reading), or ``None``.
        max_size: with ``expected_size=None``, the largest size accepted.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeFileError: not a regular file, or not of the expected size.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ENOENT:
            raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
        if err.errno == errno.ELOOP:
            raise UnsafeFileError(f"{path!r} is a symbolic link; only regular files are read.") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"{path!r} is not a regular file (a FIFO, device, socket or directory); refusing to read it.")
        if expected_size is not None and info.st_size != expected_size:
            raise UnsafeFileError(
                f"{path!r} has {info.st_size} bytes where {expected_size} were written: the file is truncated "
                "or was modified."
            )
        if expected_size is None and max_size is not None and info.st_size > max_size:
            raise UnsafeFileError(f"{path!r} has {info.st_size} bytes, more than the {max_size} accepted.")
        chunks, remaining = [], info.st_size
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) != info.st_size:
            raise UnsafeFileError(f"{path!r} changed size while it was read.")
        return data
    finally:
        os.close(fd)
