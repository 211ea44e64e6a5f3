"""The timing model: when a process request runs, and its fires placed on the timeline.

Pure: no I/O and no clock reads; "now" and "after" are arguments, so tests
drive time by hand.

Fires
-----
A timing defines a set of *fires* (instants) between its start and its
optional finish. ``next_fire(after)`` is the earliest fire strictly after
``after``. The start is itself a fire when its wall time matches the timing
(or when a fixed-time fire falls exactly on it).

- ``now`` / ``at``: one fire, at the start.
- ``every``: start + k * interval, elapsed time; DST never shifts it.
- ``daily``, ``weekly``, ``monthly`` and cron expressions with a fixed
  minute and hour are *fixed-time*: their wall times (in the request's
  zone) are computed on the calendar, then placed on the timeline. A wall
  time in a spring-forward gap fires once, at the first instant after the
  gap; one that occurs twice at fall-back fires once, at its first
  occurrence.
- ``hourly`` and cron expressions whose minute or hour field starts with
  ``*`` (``*/15 * * * *``, ``0 */3 * * *``) *follow the clock*: they fire at
  every real instant at which the wall clock shows a matching time. No real
  hour is lost and a repeated wall time fires in both passes; a wall time
  that the clock skips does not fire. This is Vixie cron's rule.

Cron expressions are parsed and matched on wall times by ``cron``.
"""

from __future__ import annotations

import calendar
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..errors import TimingError
from .cron import CronSpec, parse_cron
from .durations import format_duration, parse_duration
from .placement import as_utc, next_fixed, next_following_clock

KINDS = ("now", "at", "every", "hourly", "daily", "weekly", "monthly", "cron")
ONE_TIME = ("now", "at")
LAST_DAY = -1
AT_GRACE = timedelta(seconds=60)
BACKLOG_LIMIT = 10_000
# Fires end here: any fire, shown in any zone, with a day either side, stays inside
# datetime's range. A timing whose next fire would fall later has none left.
CALENDAR_END = datetime(9999, 1, 1, tzinfo=UTC)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # --days and stored weekly timings
_DAY = timedelta(days=1)
_US = timedelta(microseconds=1)


@dataclass(frozen=True, kw_only=True)
class Timing:
    """When a request runs. Build one with ``parse_timing`` (which validates what a
    user wrote) or directly; missing weekdays / month day default from the start."""

    kind: str
    zone: str
    start: datetime
    finish: datetime | None = None
    interval: timedelta | None = None
    weekdays: tuple[int, ...] = ()
    month_day: int | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TimingError(f"unknown timing kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.start.tzinfo is None:
            raise TimingError("timing start must be an aware datetime")
        if self.finish is not None and self.finish.tzinfo is None:
            raise TimingError("timing finish must be an aware datetime")
        parse_zone(self.zone)
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        if self.finish is not None:
            object.__setattr__(self, "finish", self.finish.astimezone(UTC))
        settle = {
            "every": self._settle_every, "weekly": self._settle_weekly,
            "monthly": self._settle_monthly, "cron": self._settle_cron,
        }.get(self.kind)
        if settle is not None:
            settle()

    # Each kind's own fields, checked (and defaulted from the start) at construction.

    def _settle_every(self) -> None:
        if self.interval is None:
            raise TimingError("an every timing needs an interval")
        # Not bounded above: a stored timing loads whatever it holds (next_fire copes).
        interval = parse_duration(self.interval, "--every", least="second", longest=None, noun="an interval")
        object.__setattr__(self, "interval", interval)

    def _settle_weekly(self) -> None:
        days = self.weekdays or (self._wall(self.start).weekday(),)
        if any(not isinstance(d, int) or not 0 <= d <= 6 for d in days):
            raise TimingError(f"weekly days {days!r} must be 0 (Monday) to 6 (Sunday)")
        object.__setattr__(self, "weekdays", tuple(sorted(set(days))))

    def _settle_monthly(self) -> None:
        # The day of the start, as parse_timing does, rather than the month's end.
        day = self.month_day if self.month_day is not None else self._wall(self.start).day
        if day != LAST_DAY and not (isinstance(day, int) and 1 <= day <= 31):
            raise TimingError(f"monthly day {day!r} must be 1 to 31 or last")
        object.__setattr__(self, "month_day", day)

    def _settle_cron(self) -> None:
        if not self.cron:
            raise TimingError("a cron timing needs an expression")
        _ = self.cron_spec  # parse now: a bad expression is refused at construction

    # ------------------------------------------------------------------
    # Queries

    @property
    def recurring(self) -> bool:
        return self.kind not in ONE_TIME

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @cached_property
    def follows_clock(self) -> bool:
        """Whether wall times follow the clock (hourly, wildcard cron) or are fixed."""
        if self.kind == "hourly":
            return True
        if self.kind != "cron":
            return False
        return self.cron_spec.follows_clock

    @cached_property
    def cron_spec(self) -> CronSpec:
        """The parsed cron expression (a cron timing only)."""
        return parse_cron(self.cron or "")

    def first_fire(self) -> datetime | None:
        """The earliest fire at or after the start."""
        return self.next_fire(self.start - _US)

    def due_from(self, now: datetime) -> datetime | None:
        """The first fire a new (or rescheduled) request waits for.

        Fires before ``now`` belong to the past and are not caught up. One that
        fell due within a small grace still counts (so ``--daily`` with the
        default start, "now" to the second, runs today), but for a recurring
        timing only the latest of them: a new request never starts with a backlog.
        """
        now = as_utc(now, "now")
        if self.recurring:
            last = self.last_fire(now)
            if last is not None and last >= now - AT_GRACE:
                return last
            return self.next_fire(now)
        return self.next_fire(max(self.start, now - AT_GRACE) - _US)

    def next_fire(self, after: datetime) -> datetime | None:
        """The earliest fire strictly after ``after`` (aware), or None when there is none."""
        after = as_utc(after, "after")
        if self.finish is not None and after >= self.finish:
            return None
        try:
            fire = self._next_unbounded(after)
        except OverflowError:  # the end of datetime's range: no further fires
            return None
        if fire is None or fire >= CALENDAR_END or (self.finish is not None and fire > self.finish):
            return None
        return fire

    def end_reason(self) -> str:
        """Why a recurring timing has no fire left (``next_fire`` gave None), in words."""
        if not self.recurring:
            return "it was to run once"
        if self.finish is not None and self.finish < CALENDAR_END:
            # A fire past the calendar's end would be past the finish too.
            return f"its finish ({self.finish.astimezone(self.tz):%Y-%m-%d %H:%M:%S %Z}) has passed"
        return f"its next fire would fall after {CALENDAR_END:%Y-%m-%d}, where bgproc's calendar ends"

    def fires(self, after: datetime, n: int) -> list[datetime]:
        """Up to ``n`` fires strictly after ``after``."""
        out: list[datetime] = []
        current: datetime | None = after
        while len(out) < n and current is not None:
            current = self.next_fire(current)
            if current is not None:
                out.append(current)
        return out

    def fires_from(self, first: datetime | None, n: int) -> list[datetime]:
        """Up to ``n`` fires: ``first`` (a request's next run), then the ones after it."""
        return [] if first is None else [first, *self.fires(first, n - 1)]

    def last_fire(self, upto: datetime) -> datetime | None:
        """The latest fire at or before ``upto``, found directly (no walk through
        the fires in between)."""
        upto = min(as_utc(upto, "upto"), CALENDAR_END - _US)
        if self.finish is not None:
            upto = min(upto, self.finish)
        if upto < self.start:
            return None
        if self.kind in ONE_TIME:
            return self.start
        if self.kind == "every":
            assert self.interval is not None
            return self.start + ((upto - self.start) // self.interval) * self.interval
        # Gallop back until a window (lo, upto] holds a fire, then bisect the
        # window down to a microsecond: ~50 next_fire calls at most.
        floor = self.start - _US
        step, hi = timedelta(seconds=1), upto
        while True:
            lo = max(upto - step, floor)
            fire = self.next_fire(lo)
            if fire is not None and fire <= upto:
                break
            if lo == floor:
                return None
            hi, step = lo, step * 2
        # Invariant: a fire lies in (lo, upto]; none lies in (hi, upto].
        while hi - lo > _US:
            mid = lo + (hi - lo) // 2
            fire = self.next_fire(mid)
            if fire is not None and fire <= upto:
                lo = mid
            else:
                hi = mid
        return self.next_fire(lo)

    def backlog(
        self, planned: datetime, now: datetime, limit: int = BACKLOG_LIMIT
    ) -> tuple[int, datetime | None]:
        """Fires strictly after ``planned`` and at or before ``now``: (count, last).

        ``last`` is exact. The count is exact for ``every`` (arithmetic) and up
        to ``limit`` otherwise; at ``limit`` it is a lower bound, so a
        per-second schedule missed for a year costs ``limit`` steps, not 31
        million.
        """
        planned, now = as_utc(planned, "planned"), as_utc(now, "now")
        if not self.recurring:
            return (1, self.start) if planned < self.start <= now else (0, None)
        if self.kind == "every":
            assert self.interval is not None
            upto = min(now, CALENDAR_END - _US) if self.finish is None else min(now, self.finish)
            if upto <= planned or upto < self.start:
                return 0, None
            k_first = max(0, (planned - self.start) // self.interval + 1)
            k_last = (upto - self.start) // self.interval
            count = max(0, k_last - k_first + 1)
            return count, (self.start + k_last * self.interval) if count else None
        count, last = 0, None
        current = self.next_fire(planned)
        while current is not None and current <= now:
            if count >= limit:
                return count, self.last_fire(now)
            count, last = count + 1, current
            current = self.next_fire(current)
        return count, last

    # ------------------------------------------------------------------
    # Computation

    def _next_unbounded(self, after: datetime) -> datetime | None:
        if self.kind in ONE_TIME:
            return self.start if after < self.start else None
        if self.kind == "every":
            assert self.interval is not None
            if after < self.start:
                return self.start
            k = (after - self.start) // self.interval + 1
            return self.start + k * self.interval
        if after < self.start:
            if self._wall_matches(self._wall(self.start)):
                return self.start
            # A fixed-time fire placed exactly on the start (the end of a gap) counts.
            after = self.start - _US
        if self.follows_clock:
            return next_following_clock(after, self.tz, self._next_wall)
        return next_fixed(after, self.tz, self._next_wall)

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None, fold=0)

    @cached_property
    def _time_of_day(self) -> tuple[int, int, int, int]:
        w = self._wall(self.start)
        return w.hour, w.minute, w.second, w.microsecond

    def _wall_matches(self, wall: datetime) -> bool:
        return self._next_wall(wall - _US) == wall

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The next candidate wall time strictly after ``wall`` (naive), on the calendar."""
        if self.kind == "cron":
            return self.cron_spec.next_after(wall)
        h, m, s, us = self._time_of_day
        if self.kind == "hourly":
            candidate = wall.replace(minute=m, second=s, microsecond=us)
            return candidate if candidate > wall else candidate + timedelta(hours=1)
        if self.kind in ("daily", "weekly", "monthly"):
            day = wall.date()
            for _ in range(64):  # a month at most
                if self._day_matches(day):
                    candidate = datetime(day.year, day.month, day.day, h, m, s, us)
                    if candidate > wall:
                        return candidate
                day += _DAY
            raise AssertionError(f"{self.kind} timing matched no day")
        raise AssertionError(self.kind)

    def _day_matches(self, day: date) -> bool:
        if self.kind == "daily":
            return True
        if self.kind == "weekly":
            return day.weekday() in self.weekdays
        assert self.month_day is not None  # set in __post_init__
        last = calendar.monthrange(day.year, day.month)[1]
        # A day past the month's end fires on its last day.
        wanted = last if self.month_day == LAST_DAY else min(self.month_day, last)
        return day.day == wanted

    # ------------------------------------------------------------------
    # Storage and display

    def to_dict(self) -> dict[str, Any]:
        """The kind-specific part, JSON-ready (zone, start and finish are stored beside it)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "every" and self.interval is not None:
            out["every"] = format_duration(self.interval, "spec")
            out["interval_s"] = self.interval.total_seconds()
        if self.kind == "weekly":
            out["days"] = [WEEKDAYS[d] for d in self.weekdays]
        if self.kind == "monthly":
            out["day"] = "last" if self.month_day == LAST_DAY else self.month_day
        if self.kind == "cron":
            out["cron"] = self.cron
        return out

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, zone: str, start: datetime, finish: datetime | None
    ) -> Timing:
        kind = data["kind"]
        interval = None
        if kind == "every":
            interval = (
                timedelta(seconds=data["interval_s"]) if "interval_s" in data
                else parse_duration(data["every"], "--every", least="second", noun="an interval")
            )
        weekdays = tuple(WEEKDAYS.index(d) for d in data.get("days", ()))
        day = data.get("day")
        month_day = LAST_DAY if day == "last" else day
        return cls(
            kind=kind, zone=zone, start=start, finish=finish, interval=interval,
            weekdays=weekdays, month_day=month_day, cron=data.get("cron"),
        )

    def describe(self) -> str:
        """The timing in words, with its zone where wall time matters."""
        from .words import describe_timing  # words reads the model: imported when first said

        return describe_timing(self)


def parse_zone(name: str) -> str:
    """An IANA zone name, checked; unknown names are refused with a suggestion."""
    try:
        ZoneInfo(name)
        if name.strip() != name or not name:
            raise ValueError
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
        hint = f"did you mean {close[0]}?" if close else "use an IANA name such as Europe/Berlin"
        raise TimingError(f"unknown time zone {name!r}; {hint}") from None
    return name


def iter_fires(timing: Timing, after: datetime) -> Iterator[datetime]:
    """All fires strictly after ``after``, lazily."""
    current = timing.next_fire(after)
    while current is not None:
        yield current
        current = timing.next_fire(current)
