"""How the daemon lives through a failing database.

The store names what went wrong (a ``StoreFault``: busy, full, read-only, an I/O
error, corrupt). The daemon says a condition once when it starts and once when
it clears, and tries the database again after a growing delay.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import StoreBusy, StoreError, StoreFault

# How long the daemon waits before trying a failing database again: doubling from
# the first delay up to a cap (a lock is usually released soon; a full disk is not).
FIRST_DELAY_S = 0.25
CAP_S = {StoreBusy.kind: 2.0}
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
        self.fault: StoreFault | None = None
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

    def failed(self, fault: StoreFault, mono: float) -> None:
        if self._failed_in_pass:
            return
        self._failed_in_pass = True
        if self.fault is None or self.fault.kind != fault.kind:
            self._say(f"{fault.condition}: what cannot be written is kept, and tried again with a growing delay")
            self.fault, self._since, self._delay = fault, mono, FIRST_DELAY_S
        else:
            self._delay = min(CAP_S.get(fault.kind, DEFAULT_CAP_S), self._delay * 2)
        self.retry_at = mono + self._delay

    def write_failed(self, fault: StoreFault, mono: float) -> None:
        """A write that can wait failed: note the condition (said once), or raise what
        waiting cannot help (a corrupt database)."""
        if fault.fatal:
            raise fault
        self.failed(fault, mono)

    def passed(self, mono: float) -> None:
        """A pass that tried the database ended; without failures, the condition clears."""
        if self._failed_in_pass or self.fault is None:
            return
        self._say(f"database {self.fault.kind} cleared after {mono - self._since:.1f}s")
        self.fault = None


def said(exc: StoreError) -> str:
    """A store error in the daemon's log: a condition in its short words."""
    return exc.condition if isinstance(exc, StoreFault) else str(exc)
