"""The cron dialect: parse, validate, match wall times, and say an expression in words.

Vixie cron's dialect (as cronsim reads it), plus seconds as an optional first
field: numbers, names (JAN, MON), ranges, steps (*/15, 1-30/5, 5/10 = 5 to the
end by 10), lists; day of week 0-7 with 0 and 7 Sunday. Also L (last day of
the month), LW (its last weekday), 15W (the weekday nearest the 15th, within
the month; 31W in a shorter month: nearest its last day), 5L or L5 (the
month's last Friday) and 5#3 (its third Friday). When the day-of-month or
day-of-week field starts with '*' (or is '?') both must match; otherwise
either may, whatever special forms they hold.

Expressions are matched here on naive wall times; ``model`` places them on
the timeline. croniter was used at first, but tests against cronsim showed it
expands fields wrongly (a range ``9-9`` became ``*``; ``2-2/3`` became ``*/3``;
a field that lists every value was taken for ``*``, which flips the
day-of-month/day-of-week rule), and it is slow enough (~75 us a call) to make
catching up expensive.
"""

from __future__ import annotations

import bisect
import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ..errors import TimingError
from .durations import MAX_DURATION, UNITS

CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS_5 = ("minute", "hour", "day of month", "month", "day of week")
FIELDS_6 = ("second", *FIELDS_5)
RANGES = {
    "second": (0, 59), "minute": (0, 59), "hour": (0, 23),
    "day of month": (1, 31), "month": (1, 12), "day of week": (0, 7),
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
# The Gregorian calendar (weekdays included) repeats every 400 years: a day
# pattern with no match in that span never matches.
_SEARCH_YEARS = 401


def is_number(text: str) -> bool:
    """Whether ``text`` is a whole number in ASCII digits (``str.isdigit`` alone
    passes ``٣`` and ``²``, which no one means here)."""
    return text.isascii() and text.isdigit()


@dataclass(frozen=True)
class CronSpec:
    """A parsed cron expression, matched against naive wall times."""

    fields: tuple[str, ...]  # as written (aliases expanded), seconds first when given
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
            if self.last_weekday and d.day == nearest_weekday(d.year, d.month, last, last):
                return True
            # A day past the month's end means its last day, as for --monthly.
            return any(d.day == nearest_weekday(d.year, d.month, min(n, last), last) for n in self.nearest)
        return False

    def dow_matches(self, d: date) -> bool:
        dow = (d.weekday() + 1) % 7
        if dow in self.weekdays:
            return True
        if self.nth and (dow, (d.day + 6) // 7) in self.nth:
            return True
        return dow in self.last_of and d.day + 7 > calendar.monthrange(d.year, d.month)[1]

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
        last_year = day.year + _SEARCH_YEARS
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


def nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    """The weekday (Mon-Fri) nearest ``day``, without leaving the month (Quartz's W)."""
    wd = date(year, month, day).weekday()
    if wd == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if wd == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < last else day - 2
    return day


def cron_fields(expr: str) -> list[str]:
    """The fields of ``expr``, an alias (``@daily``) expanded."""
    return CRON_ALIASES.get(expr.strip().lower(), expr).split()


def validate_cron(expr: str) -> str:
    """Normalize a cron expression or raise ``TimingError`` naming the bad field."""
    parse_cron(expr)
    return " ".join(cron_fields(expr))


def parse_cron(expr: str) -> CronSpec:
    """Parse a cron expression; raise ``TimingError`` naming the bad field and why."""
    fields = cron_fields(expr)
    if expr.strip().startswith("@") and len(fields) == 1:
        raise TimingError(
            f"cron expression {expr!r} is not supported; use one of {', '.join(CRON_ALIASES)} or 5 fields"
        )
    if len(fields) not in (5, 6):
        raise TimingError(
            f"cron expression {expr!r} has {len(fields)} fields; use 5 (minute hour day month "
            "weekday) or 6 with seconds first"
        )
    has_seconds = len(fields) == 6
    names = FIELDS_6 if has_seconds else FIELDS_5
    parsed: dict[str, _FieldValues] = {}
    for name, text in zip(names, fields, strict=True):
        try:
            parsed[name] = _parse_field(name, text)
        except _FieldError as exc:
            raise TimingError(f"cron expression {expr!r}: bad {name} field {text!r}: {exc}") from None
    raw = dict(zip(names, fields, strict=True))
    dom, dow = parsed["day of month"], parsed["day of week"]
    spec = CronSpec(
        fields=tuple(fields),
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
        follows_clock=raw["minute"].startswith("*") or raw["hour"].startswith("*"),
        has_seconds=has_seconds,
    )
    _check_can_fire(expr, spec)
    return spec


def _check_can_fire(expr: str, spec: CronSpec) -> None:
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
    for term in text.lower().split(","):
        if not term:
            raise _FieldError("empty list item; separate values with single commas")
        if re.search(r"(^|[^a-z])h", term):
            raise _FieldError("'H' (hashed values) is not supported; give numbers")
        if re.fullmatch(r"r(\(.*\))?", term):
            raise _FieldError("'R' (random values) is not supported; give numbers")
        if not _special_day_term(name, term, out):
            out.values.update(_range_term(name, term))
    return out


def _special_day_term(name: str, term: str, out: _FieldValues) -> bool:
    """Read ``?``, L, LW, 15W, 5#3 or 5L into ``out``; False when ``term`` is none of them."""
    if name == "day of month":
        if term in ("l", "lw"):
            out.last_day |= term == "l"
            out.last_weekday |= term == "lw"
        elif term.endswith("w"):
            out.nearest.add(_cron_number(name, term[:-1], term))
        else:
            return _any_day(name, term, out)
        return True
    if name != "day of week":
        return False
    if "#" in term:
        day_text, _, n_text = term.partition("#")
        if not is_number(n_text) or not 1 <= int(n_text) <= 5:
            raise _FieldError("write weekday#n with n from 1 to 5, such as fri#3")
        out.nth.add((_cron_value(name, day_text, term) % 7, int(n_text)))
    elif term.endswith("l") or (term.startswith("l") and len(term) > 1):
        out.last_of.add(_cron_value(name, term[:-1] if term.endswith("l") else term[1:], term))
    else:
        return _any_day(name, term, out)
    return True


def _any_day(name: str, term: str, out: _FieldValues) -> bool:
    if term != "?":
        return False
    lo, hi = RANGES[name]
    out.values.update(range(lo, hi + 1))
    return True


def _range_term(name: str, term: str) -> range:
    """The values of ``*``, ``a``, ``a-b``, each with an optional ``/step``."""
    lo, hi = RANGES[name]
    base, slash, step_text = term.partition("/")
    if slash and (not is_number(step_text) or int(step_text) == 0):
        raise _FieldError("the step after '/' must be a positive number")
    step = int(step_text) if slash else 1
    if base == "*" or (base == "?" and name in ("day of month", "day of week")):
        first, last = lo, hi
    elif "-" in base:
        a_text, _, b_text = base.partition("-")
        first, last = _cron_value(name, a_text, term), _cron_value(name, b_text, term)
        if last < first:
            raise _FieldError(
                f"range {base!r} runs backwards; write it as two ranges, e.g. {a_text}-{hi},{lo}-{b_text}"
            )
    else:
        first = _cron_value(name, base, term)
        # 5/10 runs from 5 to the end of the range, as in cronsim and croniter.
        last = hi if slash else first
    if step > 1 and step > last - first:
        raise _FieldError(_step_too_large(name, base, first, last, step))
    return range(first, last + 1, step)


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


def _cron_number(name: str, text: str, term: str) -> int:
    lo, hi = RANGES[name]
    if not is_number(text):
        hint = {"month": " or a name such as jan", "day of week": " or a name such as mon"}.get(name, "")
        raise _FieldError(f"{text or term!r} is not a number from {lo} to {hi}{hint}")
    value = int(text)
    if not lo <= value <= hi:
        raise _FieldError(f"{value} is out of range; use {lo} to {hi}")
    return value

