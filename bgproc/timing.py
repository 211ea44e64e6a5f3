"""The timing model: when a process request runs.

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

Cron expressions are parsed and matched here, on naive wall times; this
module then places them on the timeline. croniter was used for this at
first, but tests against cronsim showed it expands fields wrongly (a range
``9-9`` became ``*``; ``2-2/3`` became ``*/3``; a field that lists every
value was taken for ``*``, which flips the day-of-month/day-of-week rule),
and it is slow enough (~75 us a call) to make catching up expensive.
"""

from __future__ import annotations

import bisect
import calendar
import dataclasses
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .errors import TimingError

KINDS = ("now", "at", "every", "hourly", "daily", "weekly", "monthly", "cron")
ONE_TIME = ("now", "at")
LAST_DAY = -1
AT_GRACE = timedelta(seconds=60)
BACKLOG_LIMIT = 10_000
# The longest duration a user may type (--every, --timeout, +WHEN, --since): far
# past any schedule, and short enough that no fire or deadline overflows.
MAX_DURATION = timedelta(days=36525)  # 100 years
# Fires end here: any fire, shown in any zone, with a day either side, stays inside
# datetime's range. A timing whose next fire would fall later has none left.
CALENDAR_END = datetime(9999, 1, 1, tzinfo=UTC)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}  # seconds per unit of 30s, 5m, 2h, 3d
_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
_DAY = timedelta(days=1)
_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CRON_FIELDS_5 = ("minute", "hour", "day of month", "month", "day of week")
_CRON_FIELDS_6 = ("second",) + _CRON_FIELDS_5
_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


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
        if self.kind == "every":
            if self.interval is None:
                raise TimingError("an every timing needs an interval")
            # Not bounded here: a stored timing loads whatever it holds (next_fire copes).
            object.__setattr__(self, "interval", _interval(self.interval, "--every"))
        if self.kind == "weekly":
            days = self.weekdays or (self._wall(self.start).weekday(),)
            if any(not isinstance(d, int) or not 0 <= d <= 6 for d in days):
                raise TimingError(f"weekly days {days!r} must be 0 (Monday) to 6 (Sunday)")
            object.__setattr__(self, "weekdays", tuple(sorted(set(days))))
        if self.kind == "monthly":
            # The day of the start, as parse_timing does, rather than the month's end.
            day = self.month_day if self.month_day is not None else self._wall(self.start).day
            if day != LAST_DAY and not (isinstance(day, int) and 1 <= day <= 31):
                raise TimingError(f"monthly day {day!r} must be 1 to 31 or last")
            object.__setattr__(self, "month_day", day)
        if self.kind == "cron":
            if not self.cron:
                raise TimingError("a cron timing needs an expression")
            _ = self._spec  # parse now: a bad expression is refused at construction

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
        return self._spec.follows_clock

    @cached_property
    def _spec(self) -> _CronSpec:
        return _parse_cron(self.cron or "")

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
        now = _utc(now, "now")
        if self.recurring:
            last = self.last_fire(now)
            if last is not None and last >= now - AT_GRACE:
                return last
            return self.next_fire(now)
        return self.next_fire(max(self.start, now - AT_GRACE) - _US)

    def next_fire(self, after: datetime) -> datetime | None:
        """The earliest fire strictly after ``after`` (aware), or None when there is none."""
        after = _utc(after, "after")
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
        upto = min(_utc(upto, "upto"), CALENDAR_END - _US)
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
        planned, now = _utc(planned, "planned"), _utc(now, "now")
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
            return self._next_following_clock(after)
        return self._next_fixed(after)

    def _next_fixed(self, after: datetime) -> datetime | None:
        """Fixed-time: the first candidate wall time whose placement is past ``after``.

        Placement (first occurrence, or the end of a gap) keeps wall order, so
        every candidate up to the wall time at ``after`` lands at or before
        it, and the next one lands after it; except in the second pass of a
        repeated hour, whose wall times were placed in the first pass: there
        the search starts at the end of the repeated range.
        """
        tz = self.tz
        wall = self._wall(after)
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if first < after:
            before = _offset(first, tz)
            change = _next_offset_change(first, after, before, tz)
            if change is not None:
                wall = max(wall, (change + before).replace(tzinfo=None) - _US)
        for _ in range(1000):  # one step in practice; the bound guards against a bug looping
            candidate = self._next_wall(wall)
            if candidate is None:
                return None
            instant = _place_fixed(candidate, tz)
            if instant > after:
                return instant
            wall = candidate
        raise AssertionError(f"timing {self.describe()} found no fire after {after}")

    def _next_following_clock(self, after: datetime) -> datetime | None:
        """Follow the clock: the first instant after ``after`` whose wall time matches."""
        t, inclusive = after, False
        for _ in range(100_000):
            offset = _offset(t, self.tz)
            wall = (t + offset).replace(tzinfo=None)
            candidate = self._next_wall(wall - _US if inclusive else wall)
            if candidate is None:
                return None
            instant = candidate.replace(tzinfo=UTC) - offset
            change = _next_offset_change(t, instant, offset, self.tz)
            if change is None:
                return instant
            # The offset changes before the candidate: continue from the change,
            # reading the clock with the new offset.
            t, inclusive = change, True
        raise AssertionError(f"timing {self.describe()} found no fire after {after}")

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
            return self._spec.next_after(wall)
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
            out["every"] = format_interval(self.interval)
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
                else parse_interval(data["every"])
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
        zone = f" ({self.zone})"
        if self.kind == "now":
            return "once, now"
        if self.kind == "at":
            return f"once at {self.start.astimezone(self.tz):%Y-%m-%d %H:%M:%S}{zone}"
        if self.kind == "every":
            assert self.interval is not None
            return f"every {_interval_words(self.interval)}"
        clock = self._clock_text()
        if self.kind == "hourly":
            _, m, s, _us = self._time_of_day
            at = f"minute {m:02d}" if not s else f"minute {m:02d}, second {s:02d}"
            return f"every hour at {at}{zone}"
        if self.kind == "daily":
            return f"every day at {clock}{zone}"
        if self.kind == "weekly":
            return f"every {_weekday_words(self.weekdays)} at {clock}{zone}"
        if self.kind == "monthly":
            if self.month_day == LAST_DAY:
                return f"on the last day of every month at {clock}{zone}"
            assert self.month_day is not None
            shorter = " (the last day in shorter months)" if self.month_day > 28 else ""
            return f"on day {self.month_day} of every month{shorter} at {clock}{zone}"
        return f"{cron_words(self.cron or '')}{zone}"

    def _clock_text(self) -> str:
        h, m, s, _us = self._time_of_day
        return f"{h:02d}:{m:02d}" if not s else f"{h:02d}:{m:02d}:{s:02d}"


# ----------------------------------------------------------------------
# Placing wall times on the timeline


def _utc(instant: datetime, name: str) -> datetime:
    # A naive datetime would be read in the host's zone: an environment read
    # that this module must not make, and a bug in the caller.
    if instant.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime, got {instant!r}")
    return instant.astimezone(UTC)


def _offset(instant: datetime, tz: ZoneInfo) -> timedelta:
    off = instant.astimezone(tz).utcoffset()
    assert off is not None
    return off


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=tz, fold=0)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def _place_fixed(wall: datetime, tz: ZoneInfo) -> datetime:
    """A fixed-time wall time as an instant: its first occurrence, or the end of its gap."""
    if _exists(wall, tz):
        return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return _gap_end(wall, tz)


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant after the spring-forward gap that swallows ``wall``."""
    # fold=0 reads the wall with the offset before the gap, fold=1 with the
    # one after; the transition lies between the two instants.
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    lo, hi = min(early, late), max(early, late)
    before = _offset(lo, tz)
    change = _next_offset_change(lo, hi, before, tz)
    return change if change is not None else hi


def _next_offset_change(
    t: datetime, until: datetime, offset: timedelta, tz: ZoneInfo
) -> datetime | None:
    """The first instant in (t, until] at which the zone's offset differs from ``offset``."""
    if until <= t:
        return None
    # Probe a day at a time (no zone in the tz database changes its offset
    # twice within two days; tests check this), then bisect to the second:
    # transitions fall on whole seconds.
    lo = t
    while lo < until:
        hi = min(lo + _DAY, until)
        if _offset(hi, tz) != offset:
            a = _floor_seconds(lo)
            b = -_floor_seconds_neg(hi)
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(_EPOCH + timedelta(seconds=mid), tz) != offset:
                    b = mid
                else:
                    a = mid
            change = _EPOCH + timedelta(seconds=b)
            return max(change, t + _US)
        lo = hi
    return None


def _floor_seconds(instant: datetime) -> int:
    """Whole seconds since the epoch, rounded down (exact: no float)."""
    return (instant - _EPOCH) // timedelta(seconds=1)


def _floor_seconds_neg(instant: datetime) -> int:
    """Minus the whole seconds since the epoch rounded up."""
    return (_EPOCH - instant) // timedelta(seconds=1)


# ----------------------------------------------------------------------
# Cron
#
# Vixie cron's dialect (as cronsim reads it), plus seconds as an optional
# first field: numbers, names (JAN, MON), ranges, steps (*/15, 1-30/5, 5/10
# = 5 to the end by 10), lists; day of week 0-7 with 0 and 7 Sunday. Also L
# (last day of the month), LW (its last weekday), 15W (the weekday nearest
# the 15th, within the month; 31W in a shorter month: nearest its last day),
# 5L or L5 (the month's last Friday) and 5#3 (its third Friday). When the
# day-of-month or day-of-week field starts with '*' (or is '?') both must
# match; otherwise either may, whatever special forms they hold.

_CRON_RANGES = {
    "second": (0, 59), "minute": (0, 59), "hour": (0, 23),
    "day of month": (1, 31), "month": (1, 12), "day of week": (0, 7),
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
# The Gregorian calendar (weekdays included) repeats every 400 years: a day
# pattern with no match in that span never matches.
_CRON_SEARCH_YEARS = 401


@dataclass(frozen=True)
class _CronSpec:
    """A parsed cron expression, matched against naive wall times."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    days: frozenset[int]  # plain days of the month
    last_day: bool  # L
    last_weekday: bool  # LW
    nearest: frozenset[int]  # 15W
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    nth: frozenset[tuple[int, int]]  # 5#3: (weekday, n)
    last_of: frozenset[int]  # 5L: weekdays
    day_and: bool
    follows_clock: bool
    has_seconds: bool

    def dom_matches(self, d: date) -> bool:
        if d.day in self.days:
            return True
        if self.last_day or self.last_weekday or self.nearest:
            last = calendar.monthrange(d.year, d.month)[1]
            if self.last_day and d.day == last:
                return True
            if self.last_weekday and d.day == _nearest_weekday(d.year, d.month, last, last):
                return True
            for n in self.nearest:
                # A day past the month's end means its last day, as for --monthly.
                if d.day == _nearest_weekday(d.year, d.month, min(n, last), last):
                    return True
        return False

    def dow_matches(self, d: date) -> bool:
        dow = (d.weekday() + 1) % 7
        if dow in self.weekdays:
            return True
        if self.nth and (dow, (d.day + 6) // 7) in self.nth:
            return True
        if dow in self.last_of and d.day + 7 > calendar.monthrange(d.year, d.month)[1]:
            return True
        return False

    def day_matches(self, d: date) -> bool:
        if self.day_and:
            return self.dom_matches(d) and self.dow_matches(d)
        return self.dom_matches(d) or self.dow_matches(d)

    def next_after(self, wall: datetime) -> datetime | None:
        """The first matching wall time strictly after ``wall`` (naive)."""
        if self.has_seconds:
            t = wall.replace(microsecond=0) + _SECOND
        else:
            t = wall.replace(second=0, microsecond=0) + _MINUTE
        day, clock = t.date(), (t.hour, t.minute, t.second)
        last_year = day.year + _CRON_SEARCH_YEARS
        while day.year <= last_year:
            if day.month not in self.months:
                # Jump to the first day of the next month.
                day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
                clock = (0, 0, 0)
                continue
            if self.day_matches(day):
                found = self._clock_at_or_after(clock)
                if found is not None:
                    return datetime(day.year, day.month, day.day, *found)
            day, clock = day + _DAY, (0, 0, 0)
        return None

    def _clock_at_or_after(self, clock: tuple[int, int, int]) -> tuple[int, int, int] | None:
        """The first matching (hour, minute, second) at or after ``clock`` within a day."""
        h, m, s = clock
        for hour in self.hours[bisect.bisect_left(self.hours, h):]:
            if hour > h:
                return hour, self.minutes[0], self.seconds[0]
            for minute in self.minutes[bisect.bisect_left(self.minutes, m):]:
                if minute > m:
                    return hour, minute, self.seconds[0]
                i = bisect.bisect_left(self.seconds, s)
                if i < len(self.seconds):
                    return hour, minute, self.seconds[i]
        return None


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    """The weekday (Mon-Fri) nearest ``day``, without leaving the month (Quartz's W)."""
    wd = date(year, month, day).weekday()
    if wd == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if wd == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < last else day - 2
    return day


def _cron_fields(expr: str) -> list[str]:
    expr = _CRON_ALIASES.get(expr.strip().lower(), expr)
    return expr.split()


def _parse_cron(expr: str) -> _CronSpec:
    """Parse a cron expression; raise ``TimingError`` naming the bad field and why."""
    fields = _cron_fields(expr)
    if expr.strip().startswith("@") and len(fields) == 1:
        raise TimingError(
            f"cron expression {expr!r} is not supported; use one of "
            f"{', '.join(_CRON_ALIASES)} or 5 fields"
        )
    if len(fields) not in (5, 6):
        raise TimingError(
            f"cron expression {expr!r} has {len(fields)} fields; use 5 (minute hour day month "
            "weekday) or 6 with seconds first"
        )
    has_seconds = len(fields) == 6
    names = _CRON_FIELDS_6 if has_seconds else _CRON_FIELDS_5
    parsed: dict[str, _FieldValues] = {}
    for name, text in zip(names, fields, strict=True):
        try:
            parsed[name] = _parse_field(name, text)
        except _FieldError as exc:
            raise TimingError(
                f"cron expression {expr!r}: bad {name} field {text!r}: {exc}"
            ) from None
    raw = dict(zip(names, fields, strict=True))
    dom, dow = parsed["day of month"], parsed["day of week"]
    minute, hour = raw["minute"], raw["hour"]
    spec = _CronSpec(
        seconds=tuple(sorted(parsed["second"].values)) if has_seconds else (0,),
        minutes=tuple(sorted(parsed["minute"].values)),
        hours=tuple(sorted(parsed["hour"].values)),
        months=frozenset(parsed["month"].values),
        days=frozenset(dom.values),
        last_day=dom.last_day,
        last_weekday=dom.last_weekday,
        nearest=frozenset(dom.nearest),
        weekdays=frozenset(v % 7 for v in dow.values),
        nth=frozenset(dow.nth),
        last_of=frozenset(v % 7 for v in dow.last_of),
        day_and=raw["day of month"].startswith(("*", "?")) or raw["day of week"].startswith(("*", "?")),
        # Vixie cron's rule (and cronsim's): only a field that starts with '*'.
        follows_clock=minute.startswith("*") or hour.startswith("*"),
        has_seconds=has_seconds,
    )
    _check_can_fire(expr, spec)
    return spec


def _check_can_fire(expr: str, spec: _CronSpec) -> None:
    """Refuse a day pattern that never occurs (``0 0 30 2 *``)."""
    plain_only = not (spec.last_day or spec.last_weekday or spec.nearest)
    if spec.day_and and plain_only:
        longest = max(29 if m == 2 else calendar.monthrange(2001, m)[1] for m in spec.months)
        if min(spec.days) > longest:
            months = ", ".join(calendar.month_name[m] for m in sorted(spec.months))
            raise TimingError(
                f"cron expression {expr!r} can never fire: no day {min(spec.days)} in {months}; "
                "check its day of month and month fields"
            )
    if spec.next_after(datetime(2000, 1, 1)) is None:
        raise TimingError(
            f"cron expression {expr!r} can never fire: no date matches its day of month, "
            "month and day of week together; check those fields"
        )


class _FieldError(ValueError):
    pass


@dataclass
class _FieldValues:
    values: set[int] = field(default_factory=set)
    last_day: bool = False
    last_weekday: bool = False
    nearest: set[int] = field(default_factory=set)
    nth: set[tuple[int, int]] = field(default_factory=set)
    last_of: set[int] = field(default_factory=set)


def _parse_field(name: str, text: str) -> _FieldValues:
    out = _FieldValues()
    lo, hi = _CRON_RANGES[name]
    days = name in ("day of month", "day of week")
    for term in text.lower().split(","):
        if not term:
            raise _FieldError("empty list item; separate values with single commas")
        if re.search(r"(^|[^a-z])h", term):
            raise _FieldError("'H' (hashed values) is not supported; give numbers")
        if re.fullmatch(r"r(\(.*\))?", term):
            raise _FieldError("'R' (random values) is not supported; give numbers")
        if term == "?" and days:
            out.values.update(range(lo, hi + 1))
            continue
        if name == "day of month" and term in ("l", "lw"):
            out.last_day |= term == "l"
            out.last_weekday |= term == "lw"
            continue
        if name == "day of month" and term.endswith("w"):
            out.nearest.add(_cron_number(name, term[:-1], term))
            continue
        if name == "day of week" and "#" in term:
            day_text, _, n_text = term.partition("#")
            n = _cron_number(name, n_text, term, (1, 5)) if is_number(n_text) else -1
            if n == -1:
                raise _FieldError("write weekday#n with n from 1 to 5, such as fri#3")
            out.nth.add((_cron_value(name, day_text, term) % 7, n))
            continue
        if name == "day of week" and (term.endswith("l") or (term.startswith("l") and len(term) > 1)):
            out.last_of.add(_cron_value(name, term[:-1] if term.endswith("l") else term[1:], term))
            continue
        base, slash, step_text = term.partition("/")
        if slash:
            if not is_number(step_text) or int(step_text) == 0:
                raise _FieldError("the step after '/' must be a positive number")
            step = int(step_text)
        else:
            step = 1
        if base == "*" or (base == "?" and days):
            first, last = lo, hi
        elif "-" in base:
            a_text, _, b_text = base.partition("-")
            first, last = _cron_value(name, a_text, term), _cron_value(name, b_text, term)
            if last < first:
                raise _FieldError(
                    f"range {base!r} runs backwards; write it as two ranges, e.g. "
                    f"{a_text}-{hi},{lo}-{b_text}"
                )
        else:
            first = _cron_value(name, base, term)
            # 5/10 runs from 5 to the end of the range, as in cronsim and croniter.
            last = hi if slash else first
        if step > 1 and step > last - first:
            raise _FieldError(_step_too_large(name, base, first, last, step))
        out.values.update(range(first, last + 1, step))
    return out


_ELAPSED_UNITS = {"second": "s", "minute": "m", "hour": "h"}


def _step_too_large(name: str, base: str, first: int, last: int, step: int) -> str:
    """Why a step that never reaches a second value is refused (``*/90`` minutes
    fires at minute 0 only, each hour, whatever "every 90 minutes" suggests), and
    what to write instead."""
    whole = base in ("*", "?")
    span = f"the {name} range {first}-{last}" if whole else f"the range {first}-{last}"
    fixes = [f"write {first} for that"]
    if last - first >= 2:
        fixes.append(f"a step from 2 to {last - first}" if last - first > 2 else "a step of 2")
    unit = _ELAPSED_UNITS.get(name)
    if whole and unit is not None and step * UNITS[unit] <= MAX_DURATION.total_seconds():
        fixes.append(f"--every {step}{unit} for every {step} {name}s of elapsed time")
    fix = ", ".join(fixes[:-1]) + f" or {fixes[-1]}" if len(fixes) > 1 else fixes[0]
    return f"a step of {step} is larger than {span}, so it would fire at {name} {first} only; {fix}"


def _cron_value(name: str, text: str, term: str) -> int:
    if name == "month" and text in _MONTH_NAMES:
        return _MONTH_NAMES.index(text) + 1
    if name == "day of week" and text in _DOW_NAMES:
        return _DOW_NAMES.index(text)
    return _cron_number(name, text, term)


def _cron_number(name: str, text: str, term: str, bounds: tuple[int, int] | None = None) -> int:
    lo, hi = bounds or _CRON_RANGES[name]
    if not is_number(text):
        hint = ""
        if name == "month":
            hint = " or a name such as jan"
        elif name == "day of week":
            hint = " or a name such as mon"
        raise _FieldError(f"{text or term!r} is not a number from {lo} to {hi}{hint}")
    value = int(text)
    if not lo <= value <= hi:
        raise _FieldError(f"{value} is out of range; use {lo} to {hi}")
    return value


def validate_cron(expr: str) -> str:
    """Normalize a cron expression or raise ``TimingError`` naming the bad field."""
    _parse_cron(expr)
    return " ".join(_cron_fields(expr))


def cron_words(expr: str) -> str:
    """A cron expression in words (cron-descriptor), falling back to the expression."""
    try:
        from cron_descriptor import Options, get_description

        options = Options()
        options.use_24hour_time_format = True
        options.verbose = False
        text = get_description(" ".join(_cron_fields(expr)), options)
    except Exception:
        return f"cron {expr}"
    return text[:1].lower() + text[1:] if text else f"cron {expr}"


# ----------------------------------------------------------------------
# Words


def format_interval(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


def _interval_words(interval: timedelta) -> str:
    text = format_interval(interval)
    n, unit = int(text[:-1]), text[-1]
    if unit == "d":
        # elapsed time, not calendar days: say hours so nobody reads it as --daily
        n, unit = n * 24, "h"
    word = _UNIT_WORDS[unit]
    return word if n == 1 else f"{n} {word}s"


def _weekday_words(days: tuple[int, ...]) -> str:
    days = tuple(sorted(days))
    if days == tuple(range(7)):
        return "day"
    if len(days) > 2 and days == tuple(range(days[0], days[-1] + 1)):
        return f"{_WEEKDAY_NAMES[days[0]]} to {_WEEKDAY_NAMES[days[-1]]}"
    names = [_WEEKDAY_NAMES[d] for d in days]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# ----------------------------------------------------------------------
# Parsing what the user wrote


@dataclass(kw_only=True)
class TimingOptions:
    """The timing options as written on the command line (or given to ``bgproc.schedule``)."""

    now: bool = False
    at: str | datetime | None = None
    every: str | timedelta | None = None
    hourly: bool = False
    daily: bool = False
    weekly: bool = False
    days: str | list[str] | None = None
    monthly: bool = False
    day: str | int | None = None
    cron: str | None = None
    start: str | datetime | None = None
    finish: str | datetime | None = None
    tz: str | None = None

    def __post_init__(self) -> None:
        # From Python (bgproc.schedule) anything can arrive: refuse it here, clearly.
        kinds: dict[str, tuple[type, ...]] = {
            "at": (str, datetime), "start": (str, datetime), "finish": (str, datetime),
            "every": (str, timedelta), "days": (str, list), "day": (str, int), "cron": (str,), "tz": (str,),
        }
        for name, allowed in kinds.items():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, allowed) or isinstance(value, bool)):
                wanted = " or ".join("a string" if t is str else f"a {t.__name__}" for t in allowed)
                raise TimingError(f"timing option {name}={value!r} must be {wanted}")
        for name in ("now", "hourly", "daily", "weekly", "monthly"):
            if not isinstance(getattr(self, name), bool):
                raise TimingError(f"timing option {name}={getattr(self, name)!r} must be True or False")

    def chosen(self) -> list[str]:
        """The timing options that were given, as option names."""
        flags = {
            "--now": self.now, "--at": self.at is not None, "--every": self.every is not None,
            "--hourly": self.hourly, "--daily": self.daily, "--weekly": self.weekly,
            "--monthly": self.monthly, "--cron": self.cron is not None,
        }
        return [name for name, given in flags.items() if given]

    def any_given(self) -> bool:
        values = dataclasses.asdict(self)
        return any(v not in (None, False) for v in values.values())

    def completed_from(self, timing: Timing, now: datetime | None = None) -> TimingOptions:
        """These options with what they leave out taken from ``timing``.

        Without a timing kind of their own (``reschedule R --tz Europe/Paris``)
        they keep ``timing``'s kind and its details; its start, finish and
        at-time keep their wall times, read in the (possibly new) zone.

        With a kind of their own they keep the request's zone, and a recurring
        request's start (so its time of day: ``reschedule R --weekly --days
        mon,wed`` of a daily 09:00 runs at 09:00) and its finish if still ahead.
        """
        wall = lambda instant: instant.astimezone(timing.tz).replace(tzinfo=None)  # noqa: E731
        out = dataclasses.replace(self, tz=self.tz if self.tz is not None else timing.zone)
        if self.chosen():
            new_kind = self.chosen()[0].lstrip("-")
            if new_kind not in ONE_TIME and timing.kind not in ONE_TIME:
                if out.start is None:
                    out.start = wall(timing.start)
                if out.finish is None and timing.finish is not None and (now is None or timing.finish > now):
                    out.finish = wall(timing.finish)
            return out
        if timing.kind == "now":
            out.now = True
        elif timing.kind == "at":
            out.at = self.start if self.start is not None else wall(timing.start)
            out.start = None
        else:
            if out.start is None:
                out.start = wall(timing.start)
            if out.finish is None and timing.finish is not None:
                out.finish = wall(timing.finish)
            if timing.kind == "every":
                out.every = timing.interval
            elif timing.kind == "cron":
                out.cron = timing.cron
            elif timing.kind == "weekly":
                out.weekly = True
                if out.days is None:
                    out.days = [WEEKDAYS[d] for d in timing.weekdays]
            elif timing.kind == "monthly":
                out.monthly = True
                if out.day is None:
                    out.day = "last" if timing.month_day in (None, LAST_DAY) else timing.month_day
            else:
                setattr(out, timing.kind, True)
        return out


def parse_timing(opts: TimingOptions, now: datetime, default_zone: str) -> Timing:
    """Validate timing options and build the ``Timing``; raise ``TimingError`` naming the problem."""
    chosen = opts.chosen()
    if len(chosen) > 1:
        raise TimingError(f"choose one timing, not {' and '.join(chosen)}")
    kind = chosen[0].lstrip("-") if chosen else "now"
    if opts.days is not None and kind != "weekly":
        raise TimingError("--days applies only to --weekly; add --weekly or drop --days")
    if opts.day is not None and kind != "monthly":
        raise TimingError("--day applies only to --monthly; add --monthly or drop --day")
    if kind in ONE_TIME and (opts.start is not None or opts.finish is not None):
        raise TimingError(
            f"--start and --finish apply to recurring timings, not --{kind}; "
            + ("drop them, or give --at WHEN alone for a single run later" if kind == "now" else "drop them")
        )
    zone = parse_zone(opts.tz) if opts.tz is not None else default_zone
    tz = ZoneInfo(zone)
    now = _utc(now, "now")

    if kind == "now":
        return Timing(kind="now", zone=zone, start=now)
    if kind == "at":
        assert opts.at is not None
        at = parse_when(opts.at, now, tz, "--at")
        if at < now - AT_GRACE and isinstance(opts.at, str) and _TIME_OF_DAY.fullmatch(opts.at.strip()):
            # A bare time of day that has passed today means the same time tomorrow.
            wall = at.astimezone(tz).replace(tzinfo=None) + _DAY
            at = _from_wall(wall, tz, "--at", opts.at)
        if at < now - AT_GRACE:
            ago = _ago_words(now - at)
            raise TimingError(
                f"--at {_show(opts.at)} is in the past ({ago} ago); use --now to run it as soon as possible"
            )
        return Timing(kind="at", zone=zone, start=at)

    try:
        start = parse_when(opts.start, now, tz, "--start") if opts.start is not None else now.replace(microsecond=0)
    except WallTimeInGap as gap:
        raise gap.for_start(kind, opts) from None
    finish = parse_when(opts.finish, now, tz, "--finish") if opts.finish is not None else None
    if finish is not None and finish <= start:
        raise TimingError(
            f"--finish {_show(opts.finish)} is not after the start "
            f"({start.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}); give a later --finish"
        )
    if finish is not None and finish <= now:
        raise TimingError(f"--finish {_show(opts.finish)} is in the past; nothing would run")
    extra: dict[str, Any] = {}
    if kind == "every":
        assert opts.every is not None
        extra["interval"] = parse_interval(opts.every)
    elif kind == "weekly":
        days = parse_weekdays(opts.days) if opts.days is not None else None
        extra["weekdays"] = days or (start.astimezone(tz).weekday(),)
    elif kind == "monthly":
        extra["month_day"] = parse_month_day(opts.day) if opts.day is not None else start.astimezone(tz).day
    elif kind == "cron":
        assert opts.cron is not None
        extra["cron"] = validate_cron(opts.cron)
    timing = Timing(kind=kind, zone=zone, start=start, finish=finish, **extra)
    if timing.due_from(now) is None:
        if finish is None:
            raise TimingError(f"{timing.describe()} never fires: {timing.end_reason()}; change the timing")
        raise TimingError(
            f"{timing.describe()} never fires between the start and the finish; "
            "widen the window or change the timing"
        )
    return timing


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


# What users type is read with ASCII digits only: \d, str.isdigit and int() also
# take other scripts' digits (٣, ３) and superscripts, which no one means here.
_RELATIVE = re.compile(r"^\+\s*(\d+)\s*([smhd])$", re.ASCII)
_INTERVAL = re.compile(r"^(\d+)\s*([smhd])$", re.ASCII)


_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", re.ASCII)


def is_number(text: str) -> bool:
    """Whether ``text`` is a whole number in ASCII digits (``str.isdigit`` alone
    passes ``٣`` and ``²``)."""
    return text.isascii() and text.isdigit()


# Instants a timing may name: wide enough for any schedule, narrow enough that a
# fire, its wall time in any zone, and a day either side always exist.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_when(value: str | datetime, now: datetime, tz: ZoneInfo, option: str) -> datetime:
    """An instant from ISO 8601 (offset optional; without one, wall time in ``tz``),
    a time of day (today, in ``tz``), ``now``, or a relative ``+90s`` / ``+5m`` / ``+2h`` / ``+1d``."""
    try:
        instant = _parse_when(value, now, tz, option)
    except OverflowError:
        instant = LATEST + _DAY  # refused just below, like any other instant out of range
    if not EARLIEST <= instant < LATEST:
        raise TimingError(f"{option} {_show(value)} is out of range; give a time between the years 1900 and 8999")
    return instant


def _parse_when(value: str | datetime, now: datetime, tz: ZoneInfo, option: str) -> datetime:
    if isinstance(value, datetime):
        return _from_wall(value, tz, option, value.isoformat())
    text = value.strip()
    if text.lower() == "now":
        return now.replace(microsecond=0)
    rel = _RELATIVE.match(text)
    if rel:
        seconds = int(rel.group(1)) * UNITS[rel.group(2)]
        if seconds > MAX_DURATION.total_seconds():
            raise duration_too_long(option, text)
        return now.replace(microsecond=0) + timedelta(seconds=seconds)
    if text.startswith(("+", "-")) and not is_number(text[1:2]) or re.match(r"^[+-]\d+\s*[a-z]+$", text, re.ASCII):
        raise TimingError(
            f"{option} {text!r} is not a relative time; write +90s, +5m, +2h or +1d"
        )
    if _TIME_OF_DAY.fullmatch(text):
        # A time of day alone: today (in the zone) at that wall time.
        today = now.astimezone(tz).date()
        try:
            parsed = datetime.combine(today, time.fromisoformat(text.zfill(len(text) + (text.index(":") == 1))))
        except ValueError:
            raise TimingError(f"{option} {text!r} is not a time of day; write 09:30 or 09:30:15") from None
        return _from_wall(parsed, tz, option, text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        if re.match(r"^\d{4}-\d{2}-\d{2}", text, re.ASCII) and "Invalid isoformat" not in str(exc):
            # The shape is right but the calendar or the clock has no such value.
            raise TimingError(
                f"{option} {text!r} is not a real date-time: {exc}; check the date and time"
            ) from None
        raise TimingError(
            f"{option} {text!r} is not a date-time; write ISO 8601 such as "
            "2026-05-01T09:30 (wall time in --tz) or 2026-05-01T09:30+02:00, or +5m"
        ) from None
    return _from_wall(parsed, tz, option, text)


def _from_wall(parsed: datetime, tz: ZoneInfo, option: str, text: str) -> datetime:
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    if not _exists(parsed, tz):
        raise WallTimeInGap(parsed, tz, option, text)
    return parsed.replace(tzinfo=tz, fold=0).astimezone(UTC)


class WallTimeInGap(TimingError):
    """A wall time the clocks skip for DST; ``for_start`` words the fix for a recurring timing."""

    def __init__(self, wall: datetime, tz: ZoneInfo, option: str, text: str) -> None:
        self.wall, self.option = wall, option
        self.after = _gap_end(wall, tz).astimezone(tz).replace(tzinfo=None).isoformat(timespec="minutes")
        self.problem = f"{option} {text} does not exist in {tz.key} (the clocks skip it for DST)"
        super().__init__(f"{self.problem}; give a time after the gap ({self.after}) or an explicit offset")

    def for_start(self, kind: str, opts: TimingOptions) -> TimingError:
        """Calendar timings take their time of day (and weekday or day) from --start:
        a start a day earlier keeps the time, and the fire on the skipped day moves to
        the end of the gap."""
        if kind not in ("daily", "weekly", "monthly"):
            return self
        wall = self.wall
        earlier = f"--start {(wall - _DAY).isoformat(timespec='seconds' if wall.second else 'minutes')}"
        if kind == "weekly" and opts.days is None:
            earlier += f" --days {WEEKDAYS[wall.weekday()]}"
        if kind == "monthly" and opts.day is None:
            earlier += f" --day {wall.day}"
        return TimingError(
            f"{self.problem}; to keep {wall:%H:%M} start a day earlier ({earlier}): that day's fire then "
            f"comes at the end of the gap; or give {self.after}"
        )


def parse_interval(value: str | timedelta, option: str = "--every") -> timedelta:
    """``30s``, ``5m``, ``2h``, ``3d`` (elapsed time), positive, at most ``MAX_DURATION``."""
    interval = _interval(value, option)
    if interval > MAX_DURATION:
        raise duration_too_long(option, value)
    return interval


def duration_too_long(option: str, value: Any) -> TimingError:
    """The one refusal of a duration past ``MAX_DURATION``, whatever option gave it."""
    shown = repr(value) if isinstance(value, str) else _show(value)
    return TimingError(f"{option} {shown} is longer than 100 years, the longest duration bgproc takes; "
                       "give at most 36525d")


def _interval(value: str | timedelta, option: str) -> timedelta:
    if isinstance(value, timedelta):
        interval = value
    else:
        text = value.strip().lower()
        m = _INTERVAL.match(text)
        if not m:
            if re.match(r"^-\s*\d", text, re.ASCII):
                raise TimingError(f"{option} {value!r} is negative; give a positive interval such as 30s or 5m")
            raise TimingError(f"{option} {value!r} is not an interval; write 30s, 5m, 2h or 3d")
        try:
            interval = timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])
        except OverflowError:
            raise duration_too_long(option, value) from None
    if interval <= timedelta(0):
        raise TimingError(f"{option} {_show(value)} must be positive; give an interval such as 30s or 5m")
    if interval % timedelta(seconds=1):
        raise TimingError(f"{option} {_show(value)} must be a whole number of seconds")
    return interval


def parse_weekdays(value: str | list[str]) -> tuple[int, ...]:
    """``mon,fri`` or ``mon-fri`` (names or English day names) -> sorted weekday numbers, Monday=0."""
    parts = value if isinstance(value, list) else value.split(",")
    out: set[int] = set()
    for raw in parts:
        part = raw.strip().lower()
        if not part:
            continue
        if "-" in part:
            a, b = (_weekday(p.strip(), value) for p in part.split("-", 1))
            out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        else:
            out.add(_weekday(part, value))
    if not out:
        raise TimingError("--days is empty; write --days mon,wed,fri or --days mon-fri")
    return tuple(sorted(out))


def _weekday(name: str, whole: Any) -> int:
    for i, short in enumerate(WEEKDAYS):
        if name == short or name == _WEEKDAY_NAMES[i].lower():
            return i
    raise TimingError(f"--days {_show(whole)}: {name!r} is not a weekday; use mon, tue, wed, thu, fri, sat, sun")


def parse_month_day(value: str | int) -> int:
    """``1`` to ``31``, or ``last`` (``LAST_DAY``)."""
    if isinstance(value, str) and value.strip().lower() == "last":
        return LAST_DAY
    if isinstance(value, str) and not is_number(value.strip()):
        raise TimingError(f"--day {value!r} is not a day of the month; use 1 to 31 or last")
    day = int(value)
    if not 1 <= day <= 31:
        raise TimingError(f"--day {value} is not a day of the month; use 1 to 31 or last")
    return day


def _show(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _ago_words(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def iter_fires(timing: Timing, after: datetime) -> Iterator[datetime]:
    """All fires strictly after ``after``, lazily."""
    current = timing.next_fire(after)
    while current is not None:
        yield current
        current = timing.next_fire(current)
