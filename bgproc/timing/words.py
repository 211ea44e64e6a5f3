"""Timings in words: what ``describe`` says of a timing, and the weekday lists of ``--weekly``."""

from __future__ import annotations

from .cron import CronSpec, parse_cron
from .durations import format_duration
from .model import LAST_DAY, Timing

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def describe_timing(timing: Timing) -> str:
    """A timing in words, with its zone where wall time matters."""
    zone = f" ({timing.zone})"
    if timing.kind == "now":
        return "once, now"
    if timing.kind == "at":
        return f"once at {timing.start.astimezone(timing.tz):%Y-%m-%d %H:%M:%S}{zone}"
    if timing.kind == "every":
        assert timing.interval is not None
        return f"every {format_duration(timing.interval, 'words')}"
    if timing.kind == "cron":
        return f"{describe_cron(timing.cron_spec)}{zone}"
    return f"{_calendar_words(timing)}{zone}"


def _calendar_words(timing: Timing) -> str:
    wall = timing.start.astimezone(timing.tz)  # calendar timings fire at the start's time of day
    clock = f"{wall:%H:%M}" + (f":{wall:%S}" if wall.second else "")
    if timing.kind == "hourly":
        return f"every hour at minute {wall:%M}" + (f", second {wall:%S}" if wall.second else "")
    if timing.kind == "daily":
        return f"every day at {clock}"
    if timing.kind == "weekly":
        return f"every {weekday_words(timing.weekdays)} at {clock}"
    if timing.month_day == LAST_DAY:
        return f"on the last day of every month at {clock}"
    assert timing.month_day is not None
    shorter = " (the last day in shorter months)" if timing.month_day > 28 else ""
    return f"on day {timing.month_day} of every month{shorter} at {clock}"


def weekday_words(days: tuple[int, ...]) -> str:
    """Weekdays (Monday = 0) as ``--weekly`` says them after "every"."""
    days = tuple(sorted(days))
    if days == tuple(range(7)):
        return "day"
    if len(days) > 2 and days == tuple(range(days[0], days[-1] + 1)):
        return f"{WEEKDAY_NAMES[days[0]]} to {WEEKDAY_NAMES[days[-1]]}"
    return _join([WEEKDAY_NAMES[d] for d in days], "and")


def cron_words(expr: str) -> str:
    """A cron expression in words (cron-descriptor), falling back to the expression."""
    return describe_cron(parse_cron(expr))


def describe_cron(spec: CronSpec) -> str:
    try:
        from cron_descriptor import Options, get_description

        options = Options()
        options.use_24hour_time_format = True
        options.verbose = False
        text: str = get_description(" ".join(spec.fields), options)
    except Exception:
        return f"cron {' '.join(spec.fields)}"
    return text[:1].lower() + text[1:] if text else f"cron {' '.join(spec.fields)}"


def _join(items: list[str], word: str) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} {items[-1]}"
