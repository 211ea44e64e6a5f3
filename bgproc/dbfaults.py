"""Database faults, named, and how the daemon lives through them.

SQLite says what went wrong in a result code (Python 3.11 keeps it on the
exception as ``sqlite_errorcode``). bgproc names the conditions an operator can
act on: the database is *busy* (another connection holds its lock), *full* (its
disk, a quota, or a size limit), *read-only*, has an *I/O error*, or is
*corrupt*; anything else is a plain database *error*. The command line turns a
fault into one line with its fix; the daemon says a condition once when it
starts and once when it clears, and tries again after a growing delay.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

BUSY = "busy"
FULL = "full"
READ_ONLY = "read-only"
IO_ERROR = "I/O error"
CORRUPT = "corrupt"
ERROR = "error"

# Primary result codes (the low byte of an extended one) and what they mean here.
_KINDS = {
    sqlite3.SQLITE_BUSY: BUSY,
    sqlite3.SQLITE_LOCKED: BUSY,
    sqlite3.SQLITE_FULL: FULL,
    sqlite3.SQLITE_READONLY: READ_ONLY,
    sqlite3.SQLITE_PERM: READ_ONLY,
    sqlite3.SQLITE_IOERR: IO_ERROR,
    sqlite3.SQLITE_CANTOPEN: IO_ERROR,
    sqlite3.SQLITE_CORRUPT: CORRUPT,
    sqlite3.SQLITE_NOTADB: CORRUPT,
}
# An exception made without a result code (a test's, another layer's): its words.
_WORDS = (
    ("locked", BUSY), ("busy", BUSY), ("full", FULL), ("readonly", READ_ONLY), ("read-only", READ_ONLY),
    ("i/o error", IO_ERROR), ("malformed", CORRUPT), ("not a database", CORRUPT),
)

_ADVICE = {
    BUSY: "another connection holds its lock; try again, or stop what holds it",
    FULL: "its disk (or quota) has no room left; free some space, then try again",
    READ_ONLY: "check the permissions of the file and its directory, and whether its filesystem is mounted "
    "read-only",
    IO_ERROR: "the system could not read or write it; check the disk (`dmesg`), then try again",
    CORRUPT: "restore it from a backup, or try `sqlite3 FILE .recover`",
    ERROR: "try again; if it persists, report it with this message",
}


@dataclass(frozen=True)
class Fault:
    """A failed database operation, named: ``kind`` is one of the names above."""

    kind: str
    message: str  # the driver's own words

    def __str__(self) -> str:
        return f"database {self.kind} ({self.message})"

    @property
    def fatal(self) -> bool:
        """Whether waiting cannot help: the daemon stops rather than go on blind."""
        return self.kind == CORRUPT

    def explain(self) -> str:
        """The command line's one line: what the condition is, and its fix."""
        what = "failed" if self.kind == ERROR else f"is {self.kind}" if self.kind != IO_ERROR else "had an I/O error"
        return f"the database {what} ({self.message}); {_ADVICE[self.kind]}"


def classify(exc: sqlite3.Error) -> Fault | None:
    """The fault ``exc`` stands for, or None for an error in bgproc itself (a broken
    constraint, a misused API): that is a bug, never waited out."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        kind = _KINDS.get(code & 0xFF)
        if kind is not None:
            return Fault(kind, str(exc))
        return Fault(ERROR, str(exc)) if type(exc) is sqlite3.OperationalError else None
    if type(exc) not in (sqlite3.OperationalError, sqlite3.DatabaseError):
        return None
    text = str(exc).lower()
    return Fault(next((kind for word, kind in _WORDS if word in text), ERROR), str(exc))


# How long the daemon waits before trying a failing database again: doubling from
# the first delay up to a cap (a lock is usually released soon; a full disk is not).
FIRST_DELAY_S = 0.25
CAP_S = {BUSY: 2.0}
DEFAULT_CAP_S = 15.0


class Outage:
    """The database condition the daemon is in, over its passes: said once when it
    starts and once when it clears; tried again after a growing, capped delay.

    A pass that tries the database calls ``attempt`` first, ``failed`` for what
    failed (the first failure of a pass counts), and ``passed`` at its end: only a
    pass in which nothing failed clears the condition.
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self.fault: Fault | None = None
        self._since = 0.0
        self._delay = 0.0
        self.retry_at = 0.0
        self._failed_in_pass = False

    def due(self, mono: float) -> bool:
        """Whether the database may be tried now (no condition, or its delay is over)."""
        return self.fault is None or mono >= self.retry_at

    def attempt(self) -> None:
        """A pass that tries the database begins."""
        self._failed_in_pass = False

    def failed(self, fault: Fault, mono: float) -> None:
        if self._failed_in_pass:
            return
        self._failed_in_pass = True
        if self.fault is None or self.fault.kind != fault.kind:
            self._say(f"{fault}: what cannot be written is kept, and tried again with a growing delay")
            self.fault, self._since, self._delay = fault, mono, FIRST_DELAY_S
        else:
            self._delay = min(CAP_S.get(fault.kind, DEFAULT_CAP_S), self._delay * 2)
        self.retry_at = mono + self._delay

    def passed(self, mono: float) -> None:
        """A pass that tried the database ended; without failures, the condition clears."""
        if self._failed_in_pass or self.fault is None:
            return
        self._say(f"database {self.fault.kind} cleared after {mono - self._since:.1f}s")
        self.fault = None
