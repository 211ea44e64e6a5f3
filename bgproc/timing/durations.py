"""Durations: one grammar for what users type, one formatter for what bgproc shows.

A duration is one or more ``NUMBER UNIT`` parts, with units s, m, h and d, each
at most once and in lower case (``90s``, ``5m``, ``1.5h``, ``1h30m``), or a bare
number of seconds (``90``).
Numbers are decimals in ASCII digits; an exponent (``1e3``) is read as Python
reads a float, so what ``--timeout`` always took stays taken. Every use
(``--every``, ``--timeout``, ``--retry-delay``, ``+WHEN``, ``--since``, task
attributes) reads this grammar with its own lower bound and the shared upper
bound ``MAX_DURATION``, and refuses in the same words.
"""

from __future__ import annotations

import decimal
import math
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from ..errors import TimingError

# The longest duration a user may type: far past any schedule, and short enough
# that no fire or deadline overflows.
MAX_DURATION = timedelta(days=36525)  # 100 years
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}  # seconds per unit of 30s, 5m, 2h, 3d
_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
# re.ASCII: \d would also take other scripts' digits (٣, ３), which no one means here.
_PART = re.compile(rf"({_NUMBER})\s*([smhd])\s*", re.ASCII | re.IGNORECASE)
_DURATION = re.compile(rf"\+?\s*(?:(?:{_NUMBER}\s*[smhd]\s*)+|{_NUMBER})", re.ASCII | re.IGNORECASE)
_NOT_FINITE = re.compile(r"[+-]?(inf|infinity|nan)", re.IGNORECASE)
# Any part past this many digits before the point is longer than MAX_DURATION in
# any unit; checked before arithmetic, so 1e999999999 costs nothing.
_MOST_DIGITS = 11
_EXACT = decimal.Context(prec=60, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_EXAMPLES = "write 30s, 5m, 2h or 3d, combined as 1h30m or 1.5h, or 90 for 90s"

# The lower bound of a use: zero or more (+WHEN, --since), more than zero
# (--timeout, --retry-delay), whole seconds from one up (--every: fires fall on
# whole seconds).
Least = Literal["zero", "positive", "second"]
Style = Literal["spec", "compact", "words", "rough"]


class DurationSyntaxError(TimingError):
    """Text that is not a duration at all (callers with their own forms reword it)."""


def is_duration(text: str) -> bool:
    """Whether ``text`` is written in the duration grammar (whatever its bounds)."""
    return _DURATION.fullmatch(text.strip()) is not None


def parse_duration(
    value: str | float | timedelta,
    option: str,
    *,
    least: Least = "positive",
    longest: timedelta | None = MAX_DURATION,
    noun: str = "a duration",
) -> timedelta:
    """A duration as typed (or given from Python: seconds or a ``timedelta``), checked
    against ``least`` and ``longest``; ``option`` and ``noun`` name it in refusals."""
    seconds = _seconds(value, option, noun)
    shown = str(value)
    if seconds.is_nan() or seconds.is_infinite():
        raise TimingError(f"{option} {shown} must be a positive, finite duration; {_EXAMPLES}")
    if seconds < 0 and least != "zero":
        raise TimingError(f"{option} {shown} must be a positive duration, not a negative one; {_EXAMPLES}")
    if seconds < 0:
        raise TimingError(f"{option} {shown} is negative; give zero or more, such as 0s or 5m")
    if longest is not None and seconds > _exact(longest):
        raise duration_too_long(option, value)
    if least == "second" and seconds % 1:
        raise TimingError(f"{option} {shown} is not a whole number of seconds, and fires fall on whole "
                          f"seconds; write {_whole_neighbours(seconds)}")
    if isinstance(value, timedelta):
        interval = value  # already exact; a stored timing may hold more than MAX_DURATION
    else:
        interval = timedelta(seconds=float(seconds))
    if least != "zero" and interval <= timedelta(0):
        raise TimingError(f"{option} {shown} must be a positive duration; {_EXAMPLES}")
    return interval


def duration_too_long(option: str, value: Any) -> TimingError:
    """The one refusal of a duration past ``MAX_DURATION``, whatever option gave it."""
    shown = repr(value) if isinstance(value, str) else str(value)
    return TimingError(f"{option} {shown} is longer than 100 years, the longest duration bgproc takes; "
                       "give at most 36525d")


def _seconds(value: Any, option: str, noun: str) -> Decimal:
    """The seconds ``value`` names, exactly (NaN or infinite for such floats and words)."""
    if isinstance(value, timedelta):
        return _exact(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(value)
    if not isinstance(value, str):
        raise DurationSyntaxError(f"{option} {value!r} is not {noun}; {_EXAMPLES}")
    text = value.strip()
    if _NOT_FINITE.fullmatch(text):
        return Decimal("Infinity")
    negative = text.startswith("-")
    if negative:
        text = text[1:].lstrip()
    if not _DURATION.fullmatch(text):
        raise DurationSyntaxError(f"{option} {value!r} is not {noun}; {_EXAMPLES}")
    _check_units(text, value, option)
    seconds = _sum_parts(text.lstrip("+ \t"))
    return -seconds if negative else seconds


def _check_units(text: str, value: str, option: str) -> None:
    """Units are lower-case, each at most once: ``5M`` reads as months to some, and
    ``5m5m`` is more likely a slip than ten minutes."""
    units = [unit for _, unit in _PART.findall(text)]
    if any(unit.isupper() for unit in units):
        months = (", and none is months (use --monthly for those)", " for minutes") if "M" in units else ("", "")
        raise TimingError(f"{option} {value!r} has an upper-case unit; units are lower-case s, m, h and d"
                          f"{months[0]}: write {value.strip().lower()}{months[1]}")
    repeated = sorted({unit for unit in units if units.count(unit) > 1}, key=units.index)
    if repeated:
        total = format_duration(float(_sum_parts(text.lstrip("+ \t"))), "spec")
        raise TimingError(f"{option} {value!r} gives the unit {repeated[0]} more than once; give each unit "
                          f"once: write {total}")


def _sum_parts(text: str) -> Decimal:
    parts = _PART.findall(text) or [(text, "s")]  # a bare number is seconds
    total = Decimal(0)
    for number, unit in parts:
        amount = Decimal(number)
        if amount.adjusted() >= _MOST_DIGITS:
            return Decimal("1e20")  # past MAX_DURATION: refused as too long by the caller
        total = _EXACT.add(total, _EXACT.multiply(amount, UNITS[unit.lower()]))
    return total


def _exact(interval: timedelta) -> Decimal:
    return Decimal(interval // timedelta(microseconds=1)).scaleb(-6)


def _whole_neighbours(seconds: Decimal) -> str:
    low, high = math.floor(seconds), math.ceil(seconds)
    if low < 1:
        return format_duration(high, "spec")
    return f"{format_duration(low, 'spec')} or {format_duration(high, 'spec')}"


def format_duration(seconds: float | timedelta, style: Style = "compact") -> str:
    """A duration in one of bgproc's styles:

    - ``spec``: as a user would type it, in its largest exact unit (``90s``, ``2h``, ``3d``)
    - ``compact``: a table cell (``2.2s``, ``2m 05s``, ``3h 01m``)
    - ``words``: exact, after "every" (``minute``, ``90 seconds``, ``72 hours``)
    - ``rough``: its largest whole unit, rounded down (``3 days``, ``2 hours``)
    """
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if style == "compact":
        return _compact(seconds)
    if style == "rough":
        return _rough(seconds)
    n, unit = _largest_exact_unit(seconds)
    if style == "spec":
        return f"{n}{unit}"
    if unit == "d":
        # elapsed time, not calendar days: say hours so nobody reads it as --daily
        n, unit = n * 24, "h"
    word = _UNIT_WORDS[unit]
    return word if n == 1 else f"{n} {word}s"


def _largest_exact_unit(seconds: float) -> tuple[int | float, str]:
    if seconds != int(seconds):
        return seconds, "s"
    whole = int(seconds)
    for unit in ("d", "h", "m"):
        if whole and whole % UNITS[unit] == 0:
            return whole // UNITS[unit], unit
    return whole, "s"


def _compact(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _rough(seconds: float) -> str:
    whole = int(seconds)
    for unit in ("d", "h", "m"):
        if whole >= UNITS[unit]:
            n = whole // UNITS[unit]
            return f"{n} {_UNIT_WORDS[unit]}{'s' if n != 1 else ''}"
    return f"{whole} second{'s' if whole != 1 else ''}"
