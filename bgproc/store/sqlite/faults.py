"""SQLite's errors, named at the store's boundary.

SQLite says what went wrong in a result code (Python 3.11 keeps it on the
exception as ``sqlite_errorcode``). The store turns each into the condition an
operator can act on, as the ``StoreFault`` family: busy (another connection
holds its lock), full (its disk, a quota, or a size limit), read-only, an I/O
error, corrupt; any other operational error is a plain ``StoreFault``. A
write the schema refuses (a unique key) is a ``StoreConflict``. Anything else
(a misused API, a closed connection: a bug in bgproc) is a plain ``StoreError``
with SQLite's words, never waited out; the SQLite exception stays attached as
its cause, for the traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from ...errors import (
    StoreBusy,
    StoreConflict,
    StoreCorrupt,
    StoreError,
    StoreFault,
    StoreFull,
    StoreIOError,
    StoreReadOnly,
)

# Primary result codes (the low byte of an extended one) and what they mean here.
_KINDS: dict[int, type[StoreFault]] = {
    sqlite3.SQLITE_BUSY: StoreBusy,
    sqlite3.SQLITE_LOCKED: StoreBusy,
    sqlite3.SQLITE_FULL: StoreFull,
    sqlite3.SQLITE_READONLY: StoreReadOnly,
    sqlite3.SQLITE_PERM: StoreReadOnly,
    sqlite3.SQLITE_IOERR: StoreIOError,
    sqlite3.SQLITE_CANTOPEN: StoreIOError,
    sqlite3.SQLITE_CORRUPT: StoreCorrupt,
    sqlite3.SQLITE_NOTADB: StoreCorrupt,
}
# An exception made without a result code (a test's, another layer's): its words.
_WORDS: tuple[tuple[str, type[StoreFault]], ...] = (
    ("locked", StoreBusy), ("busy", StoreBusy), ("full", StoreFull), ("readonly", StoreReadOnly),
    ("read-only", StoreReadOnly), ("i/o error", StoreIOError), ("malformed", StoreCorrupt),
    ("not a database", StoreCorrupt),
)
CORRUPT_ADVICE = "restore it from a backup, or try `sqlite3 FILE .recover`"


def named(exc: sqlite3.Error) -> StoreError:
    """The store's error for ``exc``."""
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreConflict(str(exc))
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        kind = _KINDS.get(code & 0xFF)
        if kind is not None:
            return _fault(kind, str(exc))
        return StoreFault(str(exc)) if type(exc) is sqlite3.OperationalError else StoreError(str(exc))
    if type(exc) not in (sqlite3.OperationalError, sqlite3.DatabaseError):
        return StoreError(str(exc))
    text = str(exc).lower()
    return _fault(next((kind for word, kind in _WORDS if word in text), StoreFault), str(exc))


def _fault(kind: type[StoreFault], message: str) -> StoreFault:
    return kind(message, advice=CORRUPT_ADVICE) if kind is StoreCorrupt else kind(message)


@contextmanager
def faults_named() -> Iterator[None]:
    """Raise what SQLite raises in the block as the store's errors (see ``named``)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise named(exc) from exc
