"""A readers-writer lock: many concurrent readers, one exclusive writer.

faiss allows any number of concurrent ``search`` calls on a CPU index but no
search while ``add`` or ``remove_ids`` runs (they resize the arrays a search
reads). :class:`ReadWriteLock` encodes exactly that: searches hold the shared
side, mutations the exclusive side. Writers are preferred: once a writer
waits, new readers queue behind it, so a stream of searches cannot starve an
``add``. faiss releases the Python GIL inside its calls, so readers really do
run in parallel.

Example:
    >>> lock = ReadWriteLock()
    >>> with lock.read():
    ...     pass  # search
    >>> with lock.write():
    ...     pass  # add / remove
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator


class ReadWriteLock:
    """Shared (read) / exclusive (write) lock with writer preference; not re-entrant."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """Holds the shared side for the duration of the ``with`` block."""
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """Holds the exclusive side for the duration of the ``with`` block."""
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
