"""The one error family of bgproc.

Every error a user can cause is a ``BgprocError`` whose message names the
thing that was wrong and how to fix it; the command line prints it on one
line and exits non-zero. Anything else escaping is a bug.
"""

from __future__ import annotations


class BgprocError(Exception):
    """Root of every error bgproc raises on purpose."""

    exit_code = 1


class ParamsError(BgprocError):
    """Parameters that cannot be converted, validated or (de)serialized."""


class TimingError(BgprocError):
    """A timing that cannot be parsed or can never fire."""


class RegistryError(BgprocError):
    """A module or task that cannot be registered or found."""


class NoAppDatabase(BgprocError, AttributeError):
    """``connection.db`` where there is no application database (the scheduler's
    database is on a server and ``BGPROC_APP_DB`` is unset); an ``AttributeError``
    too, so ``hasattr(connection, "db")`` is false there."""


class NotFound(BgprocError):
    """An id or name that the database does not know."""


class StateError(BgprocError):
    """An operation that the current state of a request or run forbids."""


class StoreError(BgprocError):
    """A database file that cannot be opened or used safely."""


class StoreFault(StoreError):
    """An operation the database refused for a condition an operator can act on:
    ``kind`` names it (busy, full, read-only, I/O error, corrupt; ``error`` for
    anything else it said). Nothing of the operation was written.

    ``str()`` is the command line's one line (the condition and its fix);
    ``condition`` is the daemon's shorter words for its log.
    """

    kind = "error"
    advice = "try again; if it persists, report it with this message"
    fatal = False  # whether waiting cannot help: a daemon stops rather than go on blind

    def __init__(self, message: str, *, advice: str | None = None) -> None:
        self.message = message  # the database's own words
        if advice is not None:
            self.advice = advice
        super().__init__(self.explain())

    @property
    def condition(self) -> str:
        return f"database {self.kind} ({self.message})"

    def explain(self) -> str:
        what = {"error": "failed", "I/O error": "had an I/O error"}.get(self.kind, f"is {self.kind}")
        return f"the database {what} ({self.message}); {self.advice}"


class StoreBusy(StoreFault):
    """Another connection holds the lock the operation needed."""

    kind = "busy"
    advice = "another connection holds its lock; try again, or stop what holds it"


class StoreFull(StoreFault):
    """No room left: a disk, a quota, or a size limit."""

    kind = "full"
    advice = "its disk (or quota) has no room left; free some space, then try again"


class StoreReadOnly(StoreFault):
    """The database cannot be written (permissions, a read-only mount)."""

    kind = "read-only"
    advice = "check the permissions of the file and its directory, and whether its filesystem is mounted read-only"


class StoreIOError(StoreFault):
    """The system could not read or write the database."""

    kind = "I/O error"
    advice = "the system could not read or write it; check the disk (`dmesg`), then try again"


class StoreCorrupt(StoreFault):
    """The database is damaged: no operation on it can be trusted."""

    kind = "corrupt"
    advice = "restore it from a backup"
    fatal = True


class StoreConflict(StoreError):
    """A write the schema refused as a second record of what it holds once (one
    occurrence of a request recorded twice): a bug in claiming, never waited out."""
