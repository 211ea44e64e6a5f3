"""The only code in bgproc that reads time or sleeps.

Pure code takes "now" as an argument; the daemon holds one ``Clock`` that
tests replace with a ``FakeClock``.
"""

from __future__ import annotations

import time
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
