"""A cron expression's words agree with its fires.

Each case gives an expression, its description, and the description's meaning
written as a predicate on a wall time; the fires from a fixed instant must be
exactly the instants on a grid (days, hours, minutes) that the predicate
accepts: every fire is one the words promise, and none they promise is missed.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bgproc.timing import Timing, cron_words

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
Means = Callable[[datetime], bool]


def monday(t: datetime) -> bool:
    return t.weekday() == 0


def month_days(t: datetime) -> int:
    return calendar.monthrange(t.year, t.month)[1]


def nearest_weekday_to_15(t: datetime) -> bool:
    wd = t.weekday()
    return (t.day == 15 and wd < 5) or (t.day == 14 and wd == 4) or (t.day == 16 and wd == 0)


def last_weekday(t: datetime) -> bool:
    following = t + DAY
    rest = [following + DAY * i for i in range(7) if (following + DAY * i).month == t.month]
    return t.weekday() < 5 and all(d.weekday() >= 5 for d in rest)


# (expression, words, meaning, grid step, span). Fires at midnight unless the grid is finer.
CASES: list[tuple[str, str, Means, timedelta, timedelta]] = [
    # Vixie's AND: one day field starts with '*' and the other is restricted.
    ("0 0 */2 * 1", "at 00:00, on day 1, 3, 5, ..., 31 of the month, if it is a Monday",
     lambda t: t.day % 2 == 1 and monday(t), DAY, DAY * 800),
    ("0 0 */7 * mon", "at 00:00, on day 1, 8, 15, ..., 29 of the month, if it is a Monday",
     lambda t: t.day in (1, 8, 15, 22, 29) and monday(t), DAY, DAY * 800),
    ("0 0 1-15 * */2",
     "at 00:00, between day 1 and 15 of the month, if it is a Tuesday, a Thursday, a Saturday or a Sunday",
     lambda t: t.day <= 15 and t.weekday() in (1, 3, 5, 6), DAY, DAY * 400),
    # Either, when neither field starts with '*'; and every day when one takes all.
    ("0 0 1-7 * 1", "at 00:00, between day 1 and 7 of the month, or on Monday",
     lambda t: t.day <= 7 or monday(t), DAY, DAY * 400),
    ("0 0 15 * fri#3", "at 00:00, on day 15 of the month, or on the third Friday of the month",
     lambda t: t.day == 15 or (t.weekday() == 4 and 15 <= t.day <= 21), DAY, DAY * 800),
    ("0 0 L * 5", "at 00:00, on the last day of the month, or on Friday",
     lambda t: t.day == month_days(t) or t.weekday() == 4, DAY, DAY * 400),
    ("0 0 1-31 * 1", "at 00:00", lambda t: True, DAY, DAY * 60),
    ("0 0 * * 1", "at 00:00, only on Monday", monday, DAY, DAY * 60),
    # Steps said as what they fire.
    ("0 0 */2 * *", "at 00:00, on day 1, 3, 5, ..., 31 of the month", lambda t: t.day % 2 == 1, DAY, DAY * 400),
    ("0 0 */10 * *", "at 00:00, on day 1, 11, 21 and 31 of the month",
     lambda t: t.day in (1, 11, 21, 31), DAY, DAY * 400),
    ("0 0 * * 1/2", "at 00:00, only on Monday, Wednesday, Friday and Sunday",
     lambda t: t.weekday() in (0, 2, 4, 6), DAY, DAY * 60),
    ("0 0 * * 1-5/2", "at 00:00, only on Monday, Wednesday and Friday",
     lambda t: t.weekday() in (0, 2, 4), DAY, DAY * 60),
    ("0 0 1 */5 *", "at 00:00, on day 1 of the month, only in January, June and November",
     lambda t: t.day == 1 and t.month in (1, 6, 11), DAY, DAY * 800),
    ("*/7 * * * *", "every 7 minutes, minutes 0 through 56 past the hour",
     lambda t: t.minute % 7 == 0, MINUTE, HOUR * 3),
    ("5/7 * * * *", "every 7 minutes, minutes 5 through 54 past the hour",
     lambda t: t.minute % 7 == 5, MINUTE, HOUR * 3),
    ("0 */5 * * *", "every 5 hours, between 00:00 and 20:59",
     lambda t: t.minute == 0 and t.hour % 5 == 0, MINUTE, DAY * 2),
    ("0 1-10/3,20 * * *", "at 01:00, 04:00, 07:00, 10:00 and 20:00",
     lambda t: t.minute == 0 and t.hour in (1, 4, 7, 10, 20), MINUTE, DAY * 2),
    ("*/15 * * * *", "every 15 minutes", lambda t: t.minute % 15 == 0, MINUTE, HOUR * 3),
    # L, W and # forms, and one Sunday named twice.
    ("0 0 15W * *", "at 00:00, on the weekday nearest day 15 of the month", nearest_weekday_to_15, DAY, DAY * 800),
    ("0 0 LW * *", "at 00:00, on the last weekday of the month", last_weekday, DAY, DAY * 800),
    ("0 0 * * 5L", "at 00:00, on the last Friday of the month",
     lambda t: t.weekday() == 4 and t.day + 7 > month_days(t), DAY, DAY * 800),
    ("0 9 * * mon#1", "at 09:00, on the first Monday of the month",
     lambda t: t.hour == 9 and t.minute == 0 and monday(t) and t.day <= 7, HOUR, DAY * 100),
    ("0 0 * * 0,7", "at 00:00, only on Sunday", lambda t: t.weekday() == 6, DAY, DAY * 60),
]


@pytest.mark.parametrize(("expr", "words", "means", "step", "span"), CASES, ids=[c[0] for c in CASES])
def test_the_words_agree_with_the_fires(expr: str, words: str, means: Means, step: timedelta, span: timedelta) -> None:
    assert cron_words(expr) == words
    timing = Timing(kind="cron", zone="UTC", start=T0, cron=expr)
    assert timing.describe() == f"{words} (UTC)"
    fires = timing.fires(T0 - timedelta(microseconds=1), 1000)
    fires = [f for f in fires if f < T0 + span]
    grid = [T0 + step * i for i in range(span // step)]
    assert fires == [t for t in grid if means(t)], expr
    assert fires, "a case with no fire in its span proves nothing"
