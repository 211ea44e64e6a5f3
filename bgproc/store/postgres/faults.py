"""PostgreSQL's errors, named at the store's boundary, in one place.

The server says what went wrong in a SQLSTATE code; psycopg raises a class per
code. The store turns each into the condition an operator can act on, as the
``StoreFault`` family: busy (a lock timeout, a deadlock, a serialization failure,
no connection slot free), full (its disk), read-only (a read-only transaction or
standby, a privilege missing), an I/O error (the connection lost, the server
shut down: the next operation connects again), corrupt; any other operational
error is a plain ``StoreFault``. A write the schema refuses (a unique key) is a
``StoreConflict``. Anything else (a bug in bgproc) is a plain ``StoreError``
with the server's words; the psycopg exception stays attached as its cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

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

# SQLSTATE codes (or their two-character classes) and what they mean here.
_CODES: dict[str, type[StoreFault]] = {
    "55P03": StoreBusy,  # lock_not_available: lock_timeout ran out
    "40001": StoreBusy,  # serialization_failure
    "40P01": StoreBusy,  # deadlock_detected
    "57014": StoreBusy,  # query_canceled (statement_timeout)
    "53300": StoreBusy,  # too_many_connections
    "53100": StoreFull,  # disk_full
    "25006": StoreReadOnly,  # read_only_sql_transaction (a standby, default_transaction_read_only)
    "42501": StoreReadOnly,  # insufficient_privilege
    "58030": StoreIOError,  # io_error
    "57P01": StoreIOError,  # admin_shutdown (also: the connection was terminated)
    "57P02": StoreIOError,  # crash_shutdown
    "57P03": StoreIOError,  # cannot_connect_now
    "25P03": StoreIOError,  # idle_in_transaction_session_timeout: the server ended a stalled session
    "XX001": StoreCorrupt,  # data_corrupted
    "XX002": StoreCorrupt,  # index_corrupted
}
_CLASSES: dict[str, type[StoreFault]] = {"08": StoreIOError, "53": StoreFull, "58": StoreIOError}
LOST_ADVICE = "the connection to the PostgreSQL server was lost; check that it runs and is reachable, then try again"
CORRUPT_ADVICE = "restore it from a backup, or run `REINDEX` on the damaged index"
_ADVICE: dict[type[StoreFault], str] = {
    StoreIOError: LOST_ADVICE,
    StoreCorrupt: CORRUPT_ADVICE,
    StoreReadOnly: "the server or this role cannot write it (a standby, a read-only transaction, a privilege "
    "missing); point --db / BGPROC_DB at the primary, or grant the role its rights",
    StoreFull: "the server has no room left (its disk, or another resource); free some, then try again",
}


def first_line(exc: BaseException) -> str:
    """The first line of what the server or libpq said (their messages run on)."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def named(exc: psycopg.Error) -> StoreError:
    """The store's error for ``exc``."""
    code = exc.sqlstate or ""
    if isinstance(exc, psycopg.IntegrityError) or code.startswith("23"):
        return StoreConflict(first_line(exc))
    kind = _CODES.get(code) or _CLASSES.get(code[:2])
    if kind is None and not code and isinstance(exc, psycopg.OperationalError):
        kind = StoreIOError  # libpq's own: the connection failed or was lost
    if kind is not None:
        return fault(kind, first_line(exc))
    if isinstance(exc, psycopg.OperationalError):
        return StoreFault(first_line(exc))
    return StoreError(first_line(exc))


def fault(kind: type[StoreFault], message: str) -> StoreFault:
    advice = _ADVICE.get(kind)
    return kind(message) if advice is None else kind(message, advice=advice)


@contextmanager
def faults_named() -> Iterator[None]:
    """Raise what psycopg raises in the block as the store's errors (see ``named``)."""
    try:
        yield
    except psycopg.Error as exc:
        raise named(exc) from exc
