"""The timing model: when a process request runs.

Pure: no I/O and no clock reads; "now" and "after" are arguments, so tests
drive time by hand.

Fires
-----
A timing defines a set of *fires* (instants) between its start and its
optional finish. ``next_fire(after)`` is the earliest fire strictly after
``after``. The start is itself a fire when it matches the timing.

- ``now`` / ``at``: one fire, at the start.
- ``every``: start + k * interval, elapsed time; DST never shifts it.
- ``daily``, ``weekly``, ``monthly`` and cron expressions with a fixed
  minute and hour are *fixed-time*: their wall times (in the request's
  zone) are computed on the calendar, then placed on the timeline. A wall
  time in a spring-forward gap fires once, at the first instant after the
  gap; one that occurs twice at fall-back fires once, at its first
  occurrence.
- ``hourly`` and cron expressions whose minute or hour field starts with
  ``*`` (or whose hour field has a step) *follow the clock*: they fire at
  every real instant at which the wall clock shows a matching time. No real
  hour is lost and a repeated wall time fires in both passes; a wall time
  that the clock skips does not fire. This is Vixie cron's rule.

croniter computes the calendar on naive wall times (where it is simple
and well tested); this module places them on the timeline, so croniter's
own DST handling is never relied on.
"""

from __future__ import annotations

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

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
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
    """When a request runs. Build one with ``parse_timing`` or the named constructors."""

    kind: str
    zone: str
    start: datetime
    finish: datetime | None = None
    interval: timedelta | None = None
    weekdays: tuple[int, ...] = ()
    month_day: int | None = None
    cron: str | None = None
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TimingError(f"unknown timing kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.start.tzinfo is None:
            raise TimingError("timing start must be an aware datetime")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        if self.finish is not None:
            object.__setattr__(self, "finish", self.finish.astimezone(UTC))

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
        fields = _cron_fields(self.cron or "")
        minute, hour = (fields[0], fields[1]) if len(fields) == 5 else (fields[1], fields[2])
        return minute.startswith("*") or hour.startswith("*") or "/" in hour

    def first_fire(self) -> datetime | None:
        """The earliest fire at or after the start."""
        return self.next_fire(self.start - _US)

    def due_from(self, now: datetime) -> datetime | None:
        """The first fire a new request waits for: fires before ``now`` (beyond a
        small grace) belong to the past and are not caught up."""
        return self.next_fire(max(self.start, now.astimezone(UTC) - AT_GRACE) - _US)

    def next_fire(self, after: datetime) -> datetime | None:
        """The earliest fire strictly after ``after`` (aware), or None when there is none."""
        after = after.astimezone(UTC)
        fire = self._next_unbounded(after)
        if fire is None or (self.finish is not None and fire > self.finish):
            return None
        return fire

    def fires(self, after: datetime, n: int) -> list[datetime]:
        """Up to ``n`` fires strictly after ``after``."""
        out: list[datetime] = []
        current: datetime | None = after
        while len(out) < n and current is not None:
            current = self.next_fire(current)
            if current is not None:
                out.append(current)
        return out

    def backlog(self, planned: datetime, now: datetime, limit: int = 10_000) -> tuple[int, datetime | None]:
        """Fires strictly after ``planned`` and at or before ``now``: (count, last).

        Counting stops at ``limit`` (the count is then a lower bound), so a
        per-second schedule missed for a year costs ``limit`` steps at most;
        ``every`` is counted exactly by arithmetic.
        """
        if self.kind == "every" and self.interval is not None:
            upto = now if self.finish is None else min(now, self.finish)
            if upto <= planned:
                return 0, None
            k_first = (planned - self.start) // self.interval + 1
            k_last = (upto - self.start) // self.interval
            count = max(0, k_last - k_first + 1)
            return count, (self.start + k_last * self.interval) if count else None
        count, last = 0, None
        current = self.next_fire(planned)
        while current is not None and current <= now and count < limit:
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
        if after < self.start and self._wall_matches(self._wall(self.start)):
            return self.start
        lo = max(after, self.start)
        if self.follows_clock:
            return self._next_following_clock(lo)
        return self._next_fixed(lo)

    def _next_fixed(self, after: datetime) -> datetime | None:
        """Fixed-time: walk candidate wall times, place each, take the first past ``after``."""
        # A candidate wall time c lands at c - offset(c): start early enough that
        # a candidate whose offset is smaller than the present one is not missed.
        offsets = [_offset(after + k * _DAY, self.tz) for k in (-2, -1, 0, 1, 2)]
        wall = self._wall(after) - (max(offsets) - min(offsets)) - _US
        for _ in range(100_000):
            candidate = self._next_wall(wall)
            if candidate is None:
                return None
            instant = _place_fixed(candidate, self.tz)
            if instant > after:
                return instant
            wall = candidate
        raise TimingError(f"timing {self.describe()} found no fire; this is a bug, please report it")

    def _next_following_clock(self, after: datetime) -> datetime | None:
        """Follow the clock: the first instant after ``after`` whose wall time matches."""
        t, inclusive = after, False
        for _ in range(10_000):
            offset = _offset(t, self.tz)
            wall = (t + offset).replace(tzinfo=None)
            candidate = self._next_wall(wall - _US if inclusive else wall)
            if candidate is None:
                return None
            instant = candidate.replace(tzinfo=UTC) - offset
            change = _next_offset_change(t, instant, offset, self.tz)
            if change is None:
                return instant
            # The offset changes before the candidate: continue from the change.
            t, inclusive = change, True
        raise TimingError(f"timing {self.describe()} found no fire; this is a bug, please report it")

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None, fold=0)

    @cached_property
    def _time_of_day(self) -> tuple[int, int, int, int]:
        w = self._wall(self.start)
        return w.hour, w.minute, w.second, w.microsecond

    def _wall_matches(self, wall: datetime) -> bool:
        candidate = self._next_wall(wall - _US)
        return candidate == wall

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The next candidate wall time strictly after ``wall`` (naive), on the calendar."""
        h, m, s, us = self._time_of_day
        if self.kind == "hourly":
            candidate = wall.replace(minute=m, second=s, microsecond=us)
            return candidate if candidate > wall else candidate + timedelta(hours=1)
        if self.kind in ("daily", "weekly", "monthly"):
            day = wall.date()
            for _ in range(800):
                if self._day_matches(day):
                    candidate = datetime(day.year, day.month, day.day, h, m, s, us)
                    if candidate > wall:
                        return candidate
                day += _DAY
            return None
        if self.kind == "cron":
            return self._cron_next(wall)
        raise AssertionError(self.kind)

    def _day_matches(self, day: date) -> bool:
        if self.kind == "daily":
            return True
        if self.kind == "weekly":
            return day.weekday() in self.weekdays
        last = calendar.monthrange(day.year, day.month)[1]
        wanted = last if self.month_day in (None, LAST_DAY) else min(self.month_day, last)
        return day.day == wanted

    def _cron_next(self, wall: datetime) -> datetime | None:
        from croniter import CroniterBadDateError

        it = self._cache.get("croniter")
        if it is None:
            it = _croniter(self.cron or "", wall)
            self._cache["croniter"] = it
        if wall.year > 9000:
            return None
        try:
            result = it.get_next(datetime, start_time=wall)
        except (CroniterBadDateError, OverflowError, ValueError):
            return None
        return result.replace(tzinfo=None)

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
            out["day"] = "last" if self.month_day in (None, LAST_DAY) else self.month_day
        if self.kind == "cron":
            out["cron"] = self.cron
        return out

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, zone: str, start: datetime, finish: datetime | None
    ) -> Timing:
        kind = data["kind"]
        interval = timedelta(seconds=data["interval_s"]) if kind == "every" else None
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
        clock = self._clock_text()
        if self.kind == "now":
            return "once, now"
        if self.kind == "at":
            return f"once at {self.start.astimezone(self.tz):%Y-%m-%d %H:%M:%S}{zone}"
        if self.kind == "every":
            assert self.interval is not None
            return f"every {_interval_words(self.interval)}"
        if self.kind == "hourly":
            _, m, s, _us = self._time_of_day
            at = f"{m:02d}" if not s else f"{m:02d}:{s:02d}"
            return f"every hour at minute {at}{zone}"
        if self.kind == "daily":
            return f"every day at {clock}{zone}"
        if self.kind == "weekly":
            return f"every {_weekday_words(self.weekdays)} at {clock}{zone}"
        if self.kind == "monthly":
            if self.month_day in (None, LAST_DAY):
                return f"on the last day of every month at {clock}{zone}"
            return f"on day {self.month_day} of every month at {clock}{zone}"
        return f"{cron_words(self.cron or '')}{zone}"

    def _clock_text(self) -> str:
        h, m, s, _us = self._time_of_day
        return f"{h:02d}:{m:02d}" if not s else f"{h:02d}:{m:02d}:{s:02d}"


# ----------------------------------------------------------------------
# Placing wall times on the timeline


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
    # Probe a day at a time (no zone changes offset twice within a day), then
    # bisect to the second: transitions fall on whole seconds.
    lo = t
    while lo < until:
        hi = min(lo + _DAY, until)
        if _offset(hi, tz) != offset:
            a = int((lo - _EPOCH).total_seconds() // 1)
            b = int(-((_EPOCH - hi).total_seconds() // 1))
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


# ----------------------------------------------------------------------
# Cron


def _cron_fields(expr: str) -> list[str]:
    expr = _CRON_ALIASES.get(expr.strip().lower(), expr)
    return expr.split()


def _croniter(expr: str, start: datetime) -> Any:
    from croniter import croniter

    fields = _cron_fields(expr)
    # implement_cron_bug: day-of-month and day-of-week combine with AND when
    # either starts with '*', as in Vixie cron (and cronsim).
    return croniter(
        " ".join(fields), start, implement_cron_bug=True, second_at_beginning=len(fields) == 6
    )


def validate_cron(expr: str) -> str:
    """Normalize a cron expression or raise ``TimingError`` naming the bad field."""
    from croniter import CroniterBadDateError, CroniterError

    fields = _cron_fields(expr)
    if len(fields) not in (5, 6):
        raise TimingError(
            f"cron expression {expr!r} has {len(fields)} fields; use 5 (minute hour day month "
            "weekday) or 6 with seconds first"
        )
    names = _CRON_FIELDS_5 if len(fields) == 5 else _CRON_FIELDS_6
    for i, text in enumerate(fields):
        if re.search(r"(^|[^a-z])h", text.lower()) and not re.search(r"thu", text.lower()):
            raise TimingError(f"cron expression {expr!r}: {names[i]} field {text!r}: 'H' is not supported")
        probe = ["*"] * len(fields)
        probe[i] = text
        try:
            _croniter(" ".join(probe), datetime(2000, 1, 1))
        except (CroniterError, ValueError, KeyError, IndexError, TypeError):
            raise TimingError(
                f"cron expression {expr!r}: bad {names[i]} field {text!r}"
            ) from None
    try:
        _croniter(" ".join(fields), datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise TimingError(f"cron expression {expr!r} can never fire (no such date); check its day and month") from None
    except (CroniterError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise TimingError(f"cron expression {expr!r} is not valid: {exc}") from None
    return " ".join(fields)


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
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def _interval_words(interval: timedelta) -> str:
    text = format_interval(interval)
    n, unit = int(text[:-1]), text[-1]
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
            "use --at WHEN for a single run later"
        )
    zone = parse_zone(opts.tz) if opts.tz else default_zone
    tz = ZoneInfo(zone)
    now = now.astimezone(UTC)

    if kind == "now":
        return Timing(kind="now", zone=zone, start=now)
    if kind == "at":
        assert opts.at is not None
        at = parse_when(opts.at, now, tz, "--at")
        if at < now - AT_GRACE:
            ago = _ago_words(now - at)
            raise TimingError(
                f"--at {_show(opts.at)} is in the past ({ago} ago); use --now to run it as soon as possible"
            )
        return Timing(kind="at", zone=zone, start=at)

    start = parse_when(opts.start, now, tz, "--start") if opts.start is not None else now.replace(microsecond=0)
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


_RELATIVE = re.compile(r"^\+\s*(\d+)\s*([smhd])$")
_INTERVAL = re.compile(r"^(\d+)\s*([smhd])$")


def parse_when(value: str | datetime, now: datetime, tz: ZoneInfo, option: str) -> datetime:
    """An instant from ISO 8601 (offset optional; without one, wall time in ``tz``),
    a time of day (today, in ``tz``), ``now``, or a relative ``+90s`` / ``+5m`` / ``+2h`` / ``+1d``."""
    if isinstance(value, datetime):
        return _from_wall(value, tz, option, value.isoformat())
    text = value.strip()
    if text.lower() == "now":
        return now.replace(microsecond=0)
    rel = _RELATIVE.match(text)
    if rel:
        return now.replace(microsecond=0) + timedelta(seconds=int(rel.group(1)) * _UNITS[rel.group(2)])
    if text.startswith(("+", "-")) and not text[1:2].isdigit() or re.match(r"^[+-]\d+\s*[a-z]+$", text):
        raise TimingError(
            f"{option} {text!r} is not a relative time; write +90s, +5m, +2h or +1d"
        )
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", text):
        # A time of day alone: today (in the zone) at that wall time.
        today = now.astimezone(tz).date()
        try:
            parsed = datetime.combine(today, time.fromisoformat(text.zfill(len(text) + (text.index(":") == 1))))
        except ValueError:
            raise TimingError(f"{option} {text!r} is not a time of day; write 09:30 or 09:30:15") from None
        return _from_wall(parsed, tz, option, text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise TimingError(
                f"{option} {text!r} is not a date-time; write ISO 8601 such as "
                "2026-05-01T09:30 (wall time in --tz) or 2026-05-01T09:30+02:00, or +5m"
            ) from None
    return _from_wall(parsed, tz, option, text)


def _from_wall(parsed: datetime, tz: ZoneInfo, option: str, text: str) -> datetime:
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    if not _exists(parsed, tz):
        raise TimingError(
            f"{option} {text} does not exist in {tz.key} (the clocks skip it for DST); "
            f"give a time after the gap or an explicit offset"
        )
    return parsed.replace(tzinfo=tz, fold=0).astimezone(UTC)


def parse_interval(value: str | timedelta) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``3d`` (elapsed time), positive."""
    if isinstance(value, timedelta):
        interval = value
    else:
        text = value.strip().lower()
        m = _INTERVAL.match(text)
        if not m:
            if re.match(r"^-\s*\d", text):
                raise TimingError(f"--every {value!r} is negative; give a positive interval such as 30s or 5m")
            raise TimingError(f"--every {value!r} is not an interval; write 30s, 5m, 2h or 3d")
        interval = timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    if interval <= timedelta(0):
        raise TimingError(f"--every {_show(value)} must be positive; give an interval such as 30s or 5m")
    if interval % timedelta(seconds=1):
        raise TimingError(f"--every {_show(value)} must be a whole number of seconds")
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
    if isinstance(value, str) and value.strip().lower() == "last":
        return LAST_DAY
    try:
        day = int(value)
    except ValueError:
        raise TimingError(f"--day {value!r} is not a day of the month; use 1 to 31 or last") from None
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
    current: datetime | None = after
    while True:
        current = timing.next_fire(current)
        if current is None:
            return
        yield current
