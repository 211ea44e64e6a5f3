"""When a process request runs: the timing model and what users type to make one.

| module | one job |
| --- | --- |
| ``durations`` | one grammar for the durations users type, one formatter for those bgproc shows |
| ``cron`` | the cron dialect: parse, validate, match wall times |
| ``placement`` | wall times placed on the timeline through DST changes |
| ``model`` | ``Timing``: next fire, last fire, backlog; pure, "now" an argument |
| ``words`` | a timing in words; a cron expression's words agree with its fires |
| ``options`` | ``TimingOptions`` and ``parse_timing``: WHEN, zones, weekdays, month days |

Each module imports only those above it in the table (``Timing.describe``
imports ``words`` when first called).
"""

from .cron import is_number, validate_cron
from .durations import MAX_DURATION, UNITS, duration_too_long, format_duration, is_duration, parse_duration
from .model import (
    AT_GRACE,
    BACKLOG_LIMIT,
    CALENDAR_END,
    KINDS,
    LAST_DAY,
    ONE_TIME,
    WEEKDAYS,
    Timing,
    iter_fires,
    parse_zone,
)
from .options import (
    EARLIEST,
    LATEST,
    TimingOptions,
    WallTimeInGap,
    parse_interval,
    parse_month_day,
    parse_timing,
    parse_weekdays,
    parse_when,
)
from .words import cron_words

__all__ = [
    "AT_GRACE", "BACKLOG_LIMIT", "CALENDAR_END", "EARLIEST", "KINDS", "LAST_DAY", "LATEST", "MAX_DURATION",
    "ONE_TIME", "UNITS", "WEEKDAYS", "Timing", "TimingOptions", "WallTimeInGap", "cron_words",
    "duration_too_long", "format_duration", "is_duration", "is_number", "iter_fires", "parse_duration",
    "parse_interval", "parse_month_day", "parse_timing", "parse_weekdays", "parse_when", "parse_zone",
    "validate_cron",
]
