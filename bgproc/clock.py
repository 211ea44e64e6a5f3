"""The only code in bgproc that reads time or sleeps.

Pure code takes "now" as an argument; the daemon holds one ``Clock`` that
tests replace with a ``FakeClock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


class Clock:
    """Wall time for records, monotonic time for deadlines, and sleeping."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class FakeClock(Clock):
    """A clock that moves only when told to; ``sleep`` advances it."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def jump(self, seconds: float) -> None:
        """The wall clock is set (an NTP step, an operator), by ``seconds`` (negative:
        back); monotonic time does not move."""
        self._now += timedelta(seconds=seconds)


class DatabaseClock(Clock):
    """Another clock's wall time read on the database's clock: plus ``offset_s``, how
    far the database's clock is ahead of it (``Store.clock_offset``: 0.0 for a file).
    Daemons on several hosts share a database, so due work, run times and leases are
    on its clock: a host whose clock is off neither fires early nor late. Monotonic
    time and sleeping are the other clock's."""

    # A new measurement moves the offset only by more than this: a round trip's
    # jitter must not step the time back and forth.
    STEADY_S = 0.25

    def __init__(self, base: Clock, offset_s: float = 0.0) -> None:
        self.base = base
        self.offset_s = offset_s

    def now(self) -> datetime:
        return self.base.now() + timedelta(seconds=self.offset_s) if self.offset_s else self.base.now()

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)

    def measure(self, offset_of: Callable[[Callable[[], datetime]], float]) -> None:
        """Measure the offset again with ``offset_of`` (``Store.clock_offset``), which
        reads the other clock's wall time."""
        offset_s = offset_of(self.base.now)
        if abs(offset_s - self.offset_s) > self.STEADY_S:
            self.offset_s = offset_s


class SkewedClock(Clock):
    """For tests: this host's wall clock off by ``skew_s`` seconds (ahead if positive)."""

    def __init__(self, skew_s: float) -> None:
        self.skew = timedelta(seconds=skew_s)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.skew
