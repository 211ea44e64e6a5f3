"""Timings in words: a cron expression said so that it agrees with its fires,
and the weekday lists of ``--weekly``.

cron-descriptor says the time of day well, but not what the days and steps
fire: it reads "0 0 */2 * 1" as "every 2 days, or on Monday" (the fires are
the Mondays on odd days: Vixie's rule, since one day field starts with '*'),
"*/7" minutes as "every 7 minutes" (minute 56 is followed by minute 0), and
"*/2" days as "every 2 days" (the 31st is followed by the 1st). So it is given
the time fields only, each step rewritten as the values it fires, and the days
and months are said here from the parsed expression.
"""

from __future__ import annotations

from .cron import RANGES, CronSpec, parse_cron
from .durations import format_duration
from .model import LAST_DAY, Timing

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ORDINALS = ("first", "second", "third", "fourth", "fifth")
_MONTH_WORDS = ("", "January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December")


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
    """A cron expression in words that agree with its fires."""
    return describe_cron(parse_cron(expr))


def describe_cron(spec: CronSpec) -> str:
    """``spec`` in words: its time of day, then its days and months."""
    try:
        text = _time_words(spec)
    except Exception:  # cron-descriptor refusing what we accept: say the expression
        return f"cron {' '.join(spec.fields)}"
    return text + _day_words(spec) + _month_words(spec.months)


def _time_words(spec: CronSpec) -> str:
    from cron_descriptor import Options, get_description

    names = ("second", "minute", "hour")[0 if spec.has_seconds else 1:]
    values = (spec.seconds, spec.minutes, spec.hours)[-len(names):]
    time_fields = spec.fields[:len(names)]
    fields = [_as_fired(text, vals, *RANGES[name]) for name, text, vals in zip(names, time_fields, values, strict=True)]
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    text: str = get_description(" ".join([*fields, "*", "*", "*"]), options)
    return text[:1].lower() + text[1:]


def _as_fired(text: str, values: tuple[int, ...], lo: int, hi: int) -> str:
    """A stepped field as the values it fires: ``*/n`` only when the steps go evenly
    round the clock, else ``a-b/n`` from the first value to the last, or a list."""
    if "/" not in text:
        return text
    step = values[1] - values[0] if len(values) > 1 else 0
    even = len(values) > 1 and all(b - a == step for a, b in zip(values, values[1:], strict=False))
    if even and values[0] == lo and values[-1] + step == hi + 1:
        return "*" if step == 1 else f"*/{step}"
    if even and len(values) > 2:
        return f"{values[0]}-{values[-1]}" + (f"/{step}" if step > 1 else "")
    return ",".join(map(str, values))


def _day_words(spec: CronSpec) -> str:
    dom, dow = _dom_words(spec), _dow_items(spec)
    if not spec.day_and and not (dom and dow):
        return ""  # either field may match, and one takes every day
    if not dow:
        return f", {dom}" if dom else ""
    if not dom:
        if not (spec.nth or spec.last_of):
            return f", {_weekday_span(spec.weekdays)}"
        return f", on {_join(dow, 'and')}"
    if spec.day_and:
        ifs = [f"a {item}" if item in WEEKDAY_NAMES else item for item in dow]
        return f", {dom}, if it is {_join(ifs, 'or')}"
    return f", {dom}, or on {_join(dow, 'and')}"


def _dom_words(spec: CronSpec) -> str:
    """The day-of-month field in words, or "" when it takes every day."""
    if spec.days == frozenset(range(1, 32)):
        return ""  # every day of the month, whatever specials ride along
    items = [f"day {_numbers(sorted(spec.days))}"] if spec.days else []
    if spec.last_day:
        items.append("the last day")
    if spec.last_weekday:
        items.append("the last weekday")
    items += ["the first weekday" if n == 1 else f"the weekday nearest day {n}" for n in sorted(spec.nearest)]
    first, last = min(spec.days, default=0), max(spec.days, default=0)
    if len(items) == 1 and last > first and _runs(sorted(spec.days)) == [(first, last)]:
        return f"between day {first} and {last} of the month"
    return f"on {_join(items, 'and')} of the month"


def _dow_items(spec: CronSpec) -> list[str]:
    """The day-of-week field as weekday names and nth / last forms, Monday first;
    empty when it takes every day."""
    iso = sorted((d - 1) % 7 for d in spec.weekdays)
    if len(iso) == 7:
        return []
    items = [WEEKDAY_NAMES[d] for d in iso]
    items += [f"the {_ORDINALS[n - 1]} {WEEKDAY_NAMES[(d - 1) % 7]} of the month" for d, n in sorted(spec.nth)]
    items += [f"the last {WEEKDAY_NAMES[(d - 1) % 7]} of the month" for d in sorted(spec.last_of)]
    return items


def _weekday_span(weekdays: frozenset[int]) -> str:
    iso = sorted((d - 1) % 7 for d in weekdays)
    if len(iso) > 2 and _runs(iso) == [(iso[0], iso[-1])]:
        return f"{WEEKDAY_NAMES[iso[0]]} through {WEEKDAY_NAMES[iso[-1]]}"
    return f"only on {_join([WEEKDAY_NAMES[d] for d in iso], 'and')}"


def _month_words(months: frozenset[int]) -> str:
    if len(months) == 12:
        return ""
    ordered = sorted(months)
    if len(ordered) > 2 and _runs(ordered) == [(ordered[0], ordered[-1])]:
        return f", {_MONTH_WORDS[ordered[0]]} through {_MONTH_WORDS[ordered[-1]]}"
    return f", only in {_join([_MONTH_WORDS[m] for m in ordered], 'and')}"


def _numbers(values: list[int]) -> str:
    """Day numbers: a long even progression as its first three and its last."""
    step = values[1] - values[0] if len(values) > 1 else 0
    if len(values) > 4 and step > 1 and all(b - a == step for a, b in zip(values, values[1:], strict=False)):
        return f"{values[0]}, {values[1]}, {values[2]}, ..., {values[-1]}"
    return _join([str(a) if a == b else f"{a} to {b}" for a, b in _runs(values)], "and")


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Consecutive values as (first, last) pairs; runs of two stay two values."""
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and runs[-1][1] == v - 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    out: list[tuple[int, int]] = []
    for a, b in runs:
        out += [(a, a), (b, b)] if b == a + 1 else [(a, b)]
    return out


def _join(items: list[str], word: str) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} {items[-1]}"
