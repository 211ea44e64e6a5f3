"""What users type: the timing options, WHEN, weekdays and month days, read into a ``Timing``.

Every refusal is a ``TimingError`` of one line naming the option, what was
wrong and what to write instead. Numbers are read in ASCII digits only: \\d,
``str.isdigit`` and ``int()`` also take other scripts' digits (٣, ３) and
superscripts, which no one means here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import TimingError
from .cron import is_number, validate_cron
from .durations import DurationSyntaxError, format_duration, parse_duration
from .model import AT_GRACE, LAST_DAY, ONE_TIME, WEEKDAYS, Timing, parse_zone
from .placement import as_utc, gap_end, wall_exists
from .words import WEEKDAY_NAMES

_DAY = timedelta(days=1)
# A time of day, with or without an offset (09:30, 09:30:15.5, 09:30+02:00, 09:30Z).
_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?", re.ASCII)
# More digits of a second than a microsecond: Python would cut them off silently.
_PAST_MICROSECONDS = re.compile(r":\d{2}[.,](\d{7,})", re.ASCII)
# Instants a timing may name: wide enough for any schedule, narrow enough that a
# fire, its wall time in any zone, and a day either side always exist.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
# Options of Python types (bgproc.schedule): anything can arrive, refused here clearly.
_TYPES: dict[str, tuple[type, ...]] = {
    "at": (str, datetime), "start": (str, datetime), "finish": (str, datetime),
    "every": (str, timedelta), "days": (str, list), "day": (str, int), "cron": (str,), "tz": (str,),
}
_FLAGS = ("now", "hourly", "daily", "weekly", "monthly")


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
        for name, allowed in _TYPES.items():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, allowed) or isinstance(value, bool)):
                wanted = " or ".join("a string" if t is str else f"a {t.__name__}" for t in allowed)
                raise TimingError(f"timing option {name}={value!r} must be {wanted}")
        for name in _FLAGS:
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
        out = dataclasses.replace(self, tz=self.tz if self.tz is not None else timing.zone)
        if self.chosen():
            new_kind = self.chosen()[0].lstrip("-")
            if new_kind not in ONE_TIME and timing.recurring:
                still_ahead = timing.finish is not None and (now is None or timing.finish > now)
                out._keep_window(timing, finish=still_ahead)
            return out
        if timing.kind == "now":
            out.now = True
        elif timing.kind == "at":
            out.at = self.start if self.start is not None else _wall(timing, timing.start)
            out.start = None
        else:
            out._keep_window(timing, finish=timing.finish is not None)
            out._keep_kind(timing)
        return out

    def _keep_window(self, timing: Timing, *, finish: bool) -> None:
        if self.start is None:
            self.start = _wall(timing, timing.start)
        if finish and self.finish is None and timing.finish is not None:
            self.finish = _wall(timing, timing.finish)

    def _keep_kind(self, timing: Timing) -> None:
        """A recurring ``timing``'s kind and details, where these options leave them out."""
        if timing.kind == "every":
            self.every = timing.interval
        elif timing.kind == "cron":
            self.cron = timing.cron
        elif timing.kind == "weekly":
            self.weekly = True
            if self.days is None:
                self.days = [WEEKDAYS[d] for d in timing.weekdays]
        elif timing.kind == "monthly":
            self.monthly = True
            if self.day is None:
                self.day = "last" if timing.month_day in (None, LAST_DAY) else timing.month_day
        else:
            setattr(self, timing.kind, True)


def _wall(timing: Timing, instant: datetime) -> datetime:
    return instant.astimezone(timing.tz).replace(tzinfo=None)


def parse_timing(opts: TimingOptions, now: datetime, default_zone: str) -> Timing:
    """Validate timing options and build the ``Timing``; raise ``TimingError`` naming the problem."""
    kind = _kind(opts)
    zone = parse_zone(opts.tz) if opts.tz is not None else default_zone
    tz = ZoneInfo(zone)
    now = as_utc(now, "now")
    if kind == "now":
        return Timing(kind="now", zone=zone, start=now)
    if kind == "at":
        assert opts.at is not None
        return Timing(kind="at", zone=zone, start=_parse_at(opts.at, now, tz))
    start, finish = _window(opts, kind, now, tz)
    timing = Timing(kind=kind, zone=zone, start=start, finish=finish, **_details(opts, kind, start, tz))
    if timing.due_from(now) is None:
        if finish is None:
            raise TimingError(f"{timing.describe()} never fires: {timing.end_reason()}; change the timing")
        raise TimingError(
            f"{timing.describe()} never fires between the start and the finish; "
            "widen the window or change the timing"
        )
    return timing


def _kind(opts: TimingOptions) -> str:
    """The one timing kind chosen (``now`` by default), its companions checked."""
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
    return kind


def _parse_at(value: str | datetime, now: datetime, tz: ZoneInfo) -> datetime:
    at = parse_when(value, now, tz, "--at")
    of_day = _TIME_OF_DAY.fullmatch(value.strip()) if isinstance(value, str) else None
    if at < now - AT_GRACE and of_day and of_day.group(3):
        at += _DAY  # a time of day at an offset that has passed today: the same time tomorrow
    elif at < now - AT_GRACE and of_day:
        # A bare time of day that has passed today means the same time tomorrow.
        wall = at.astimezone(tz).replace(tzinfo=None) + _DAY
        at = _from_wall(wall, tz, "--at", _show(value))
    if at < now - AT_GRACE:
        ago = format_duration(now - at, "rough")
        raise TimingError(f"--at {_show(value)} is in the past ({ago} ago); use --now to run it as soon as possible")
    return at


def _window(opts: TimingOptions, kind: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime | None]:
    """A recurring timing's start (default: now, to the second) and finish, checked."""
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
    return start, finish


def _details(opts: TimingOptions, kind: str, start: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The fields of ``kind`` from the options, defaulted from the start's wall time."""
    if kind == "every":
        assert opts.every is not None
        return {"interval": parse_interval(opts.every)}
    if kind == "weekly":
        days = parse_weekdays(opts.days) if opts.days is not None else None
        return {"weekdays": days or (start.astimezone(tz).weekday(),)}
    if kind == "monthly":
        return {"month_day": parse_month_day(opts.day) if opts.day is not None else start.astimezone(tz).day}
    if kind == "cron":
        assert opts.cron is not None
        return {"cron": validate_cron(opts.cron)}
    return {}


def parse_interval(value: str | timedelta, option: str = "--every") -> timedelta:
    """The interval of ``--every``: a duration of whole seconds, from 1s to ``MAX_DURATION``."""
    return parse_duration(value, option, least="second", noun="an interval")


def parse_when(value: str | datetime, now: datetime, tz: ZoneInfo, option: str) -> datetime:
    """An instant from ISO 8601 (offset optional; without one, wall time in ``tz``), a
    time of day (today, in ``tz`` or at its own offset), ``now``, or ``+`` and a duration
    above zero (``+90s``, ``+1h30m``); seconds to at most 6 decimal places."""
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
    if text.startswith(("+", "-")):
        return now.replace(microsecond=0) + _relative(text, option)
    fraction = _PAST_MICROSECONDS.search(text)
    if fraction:
        raise TimingError(f"{option} {text!r} gives the second to {len(fraction.group(1))} decimal places; "
                          "bgproc keeps microseconds: give at most 6")
    if _TIME_OF_DAY.fullmatch(text):
        # A time of day alone: today (in the zone, or at its own offset) at that time.
        try:
            of_day = time.fromisoformat(text.zfill(len(text) + (text.index(":") == 1)))
        except ValueError:
            raise TimingError(f"{option} {text!r} is not a time of day; write 09:30, 09:30:15 or 09:30+02:00") from None
        today = now.astimezone(of_day.tzinfo or tz).date()
        return _from_wall(datetime.combine(today, of_day), tz, option, text)
    return _from_wall(_iso(text, option), tz, option, text)


def _relative(text: str, option: str) -> timedelta:
    """``+`` and a duration: how far after now."""
    try:
        if text.startswith("-") or text[1:].lstrip().startswith(("+", "-")):
            raise DurationSyntaxError(text)
        after = parse_duration(text, option, least="zero")
    except DurationSyntaxError:
        raise TimingError(f"{option} {text!r} is not a relative time; write +90s, +5m, +2h, +1d or +1h30m") from None
    if not after:
        raise TimingError(f"{option} {text} is a zero duration; write now, or a time after now such as +5m")
    return after


def _iso(text: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        if re.match(r"^\d{4}-\d{2}-\d{2}", text, re.ASCII) and "Invalid isoformat" not in str(exc):
            # The shape is right but the calendar or the clock has no such value.
            raise TimingError(f"{option} {text!r} is not a real date-time: {exc}; check the date and time") from None
        raise TimingError(
            f"{option} {text!r} is not a date-time; write ISO 8601 such as "
            "2026-05-01T09:30 (wall time in --tz) or 2026-05-01T09:30+02:00, or +5m"
        ) from None


def _from_wall(parsed: datetime, tz: ZoneInfo, option: str, text: str) -> datetime:
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    if not wall_exists(parsed, tz):
        raise WallTimeInGap(parsed, tz, option, text)
    return parsed.replace(tzinfo=tz, fold=0).astimezone(UTC)


class WallTimeInGap(TimingError):
    """A wall time the clocks skip for DST; ``for_start`` words the fix for a recurring timing."""

    def __init__(self, wall: datetime, tz: ZoneInfo, option: str, text: str) -> None:
        self.wall, self.option = wall, option
        self.after = gap_end(wall, tz).astimezone(tz).replace(tzinfo=None).isoformat(timespec="minutes")
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
        if name == short or name == WEEKDAY_NAMES[i].lower():
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
