"""The timing model: parsing, validation, words, storage, fire arithmetic,
finish, backlog, due_from; and property tests over random timings, zones and
instants (1990-2040), biased towards DST transitions."""

from __future__ import annotations

import calendar
import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from bgproc.errors import TimingError
from bgproc.timing import (
    BACKLOG_LIMIT,
    LAST_DAY,
    Timing,
    TimingOptions,
    iter_fires,
    parse_interval,
    parse_month_day,
    parse_timing,
    parse_weekdays,
    parse_when,
    parse_zone,
    validate_cron,
)

# A Monday, noon UTC (14:00 in Berlin).
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def parse(**kw: object) -> Timing:
    return parse_timing(TimingOptions(**kw), NOW, "Europe/Berlin")  # type: ignore[arg-type]


def refused(**kw: object) -> str:
    with pytest.raises(TimingError) as info:
        parse(**kw)
    message = str(info.value)
    assert "\n" not in message, "a refusal is one line"
    return message


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ----------------------------------------------------------------------
# Parsing


def test_default_is_now() -> None:
    t = parse()
    assert (t.kind, t.start, t.zone, t.recurring) == ("now", NOW, "Europe/Berlin", False)
    assert t.first_fire() == NOW
    assert t.next_fire(NOW) is None


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-05-05T09:30", "2026-05-05T07:30:00+00:00"),  # wall time in --tz
        ("2026-05-05T09:30:00+05:30", "2026-05-05T04:00:00+00:00"),  # offset wins
        ("2026-05-05T09:30Z", "2026-05-05T09:30:00+00:00"),
        ("2026-05-05", "2026-05-04T22:00:00+00:00"),  # midnight in --tz
        ("15:45", "2026-05-04T13:45:00+00:00"),  # today, in --tz
        ("9:30:15", "2026-05-04T07:30:15+00:00"),
        ("+90s", "2026-05-04T12:01:30+00:00"),
        ("+5m", "2026-05-04T12:05:00+00:00"),
        ("+2h", "2026-05-04T14:00:00+00:00"),
        ("+1d", "2026-05-05T12:00:00+00:00"),
        ("now", "2026-05-04T12:00:00+00:00"),
    ],
)
def test_at_forms(when: str, expected: str) -> None:
    if when in ("9:30:15",):
        # A time of day earlier than now is in the past: check parse_when alone.
        assert parse_when(when, NOW, BERLIN, "--at") == at(expected)
        return
    t = parse(at=when)
    assert t.kind == "at"
    assert t.start == at(expected)
    assert t.fires(NOW - timedelta(hours=1), 3) == [at(expected)]


def test_at_accepts_aware_and_naive_datetimes() -> None:
    assert parse(at=datetime(2026, 5, 5, 9, 30)).start == at("2026-05-05T07:30:00+00:00")
    assert parse(at=at("2026-05-05T09:30+00:00")).start == at("2026-05-05T09:30:00+00:00")


def test_at_ambiguous_wall_time_is_its_first_occurrence() -> None:
    now = at("2026-10-24T12:00:00+00:00")
    t = parse_timing(TimingOptions(at="2026-10-25T02:30"), now, "Europe/Berlin")
    assert t.start == at("2026-10-25T00:30:00+00:00")  # 02:30 CEST, not CET


def test_a_time_of_day_with_an_offset_is_today_at_that_offset() -> None:
    # NOW is 12:00 UTC, 14:00 at +02:00: 15:30+02:00 is later today, 09:30+02:00 has passed.
    assert parse(at="15:30+02:00").start == at("2026-05-04T13:30:00+00:00")
    assert parse(at="09:30+02:00").start == at("2026-05-05T07:30:00+00:00")  # tomorrow, as 09:30 alone
    assert parse(at="13:00Z", tz="Asia/Tokyo").start == at("2026-05-04T13:00:00+00:00")  # the offset wins
    # The date is today's at that offset: at -11:00 it is still 2026-05-04 01:00.
    assert parse_when("23:00-11:00", NOW, BERLIN, "--start") == at("2026-05-05T10:00:00+00:00")
    assert parse(daily=True, start="9:30:15+02:00").start == at("2026-05-04T07:30:15+00:00")
    assert "is not a time of day; write 09:30, 09:30:15 or 09:30+02:00" in refused(at="25:00+02:00")


@pytest.mark.parametrize("when", ["2026-12-24T10:00:00.123456789", "2026-12-24T10:00:00,1234567+01:00",
                                  "10:00:00.1234567"])
def test_more_than_six_digits_of_a_second_are_refused(when: str) -> None:
    digits = len(when.replace(",", ".").split(".")[1].split("+")[0])
    assert refused(at=when) == (
        f"--at {when!r} gives the second to {digits} decimal places; bgproc keeps microseconds: give at most 6"
    )
    assert parse(at="2026-12-24T10:00:00.123456").start == at("2026-12-24T09:00:00.123456+00:00")


def test_at_within_grace_is_accepted() -> None:
    assert parse(at=(NOW - timedelta(seconds=30)).isoformat()).start == NOW - timedelta(seconds=30)


def test_recurring_kinds() -> None:
    start = "2026-05-06T09:30"  # a Wednesday, in Berlin
    assert parse(every="30s", start=start).interval == timedelta(seconds=30)
    assert parse(hourly=True, start=start).kind == "hourly"
    assert parse(daily=True, start=start).kind == "daily"
    assert parse(weekly=True, start=start).weekdays == (2,)  # the start's weekday
    assert parse(weekly=True, days="mon,fri", start=start).weekdays == (0, 4)
    assert parse(weekly=True, days="fri-mon").weekdays == (0, 4, 5, 6)
    assert parse(monthly=True, start=start).month_day == 6  # the start's day
    assert parse(monthly=True, day="last").month_day == LAST_DAY
    assert parse(monthly=True, day=31).month_day == 31
    assert parse(cron="*/15 * * * *").cron == "*/15 * * * *"
    assert parse(cron="  0 9 * * MON-FRI ").cron == "0 9 * * MON-FRI"
    assert parse(cron="30 0 9 * * mon").cron == "30 0 9 * * mon"  # seconds first
    assert parse(cron="@daily").cron == "0 0 * * *"


def test_start_defaults_to_now_and_zone_to_default() -> None:
    t = parse(daily=True)
    assert t.start == NOW and t.zone == "Europe/Berlin"
    assert parse(daily=True, tz="Asia/Kolkata").zone == "Asia/Kolkata"
    assert parse(daily=True, start="2026-05-06T09:30", tz="Asia/Kolkata").start == at(
        "2026-05-06T04:00:00+00:00"
    )


def test_parse_helpers() -> None:
    assert parse_interval("90s") == timedelta(seconds=90)
    assert parse_interval(" 2h ") == timedelta(hours=2)
    assert parse_interval("3d") == timedelta(days=3)
    assert parse_interval(timedelta(minutes=5)) == timedelta(minutes=5)
    assert parse_weekdays("Monday, wed,fri") == (0, 2, 4)
    assert parse_weekdays(["sat", "sun"]) == (5, 6)
    assert parse_weekdays("mon-fri") == (0, 1, 2, 3, 4)
    assert parse_month_day("last") == LAST_DAY
    assert parse_month_day(" 15 ") == 15
    assert parse_zone("Asia/Kolkata") == "Asia/Kolkata"


# ----------------------------------------------------------------------
# Refusals: each names the problem and how to fix it, on one line.


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        ({"daily": True, "tz": "Europe/Berln"}, ["unknown time zone", "Europe/Berlin"]),
        ({"daily": True, "tz": "Mars/Olympus"}, ["unknown time zone", "IANA"]),
        ({"at": "next tuesday"}, ["--at", "not a date-time", "ISO 8601"]),
        ({"at": "2026-02-30T10:00"}, ["--at", "not a real date-time", "day"]),
        ({"at": "2026-13-01"}, ["--at", "not a real date-time", "month"]),
        ({"at": "25:00"}, ["--at", "not a time of day"]),
        ({"at": "+5x"}, ["not a relative time", "+90s"]),
        ({"daily": True, "start": "2026-03-29T02:30"},
         ["does not exist", "Europe/Berlin", "to keep 02:30 start a day earlier (--start 2026-03-28T02:30)",
          "or give 2026-03-29T03:00"]),
        ({"weekly": True, "start": "2026-03-29T02:30"}, ["(--start 2026-03-28T02:30 --days sun)"]),
        ({"weekly": True, "days": "mon,sun", "start": "2026-03-29T02:30"}, ["(--start 2026-03-28T02:30)"]),
        ({"monthly": True, "start": "2026-03-29T02:30"}, ["(--start 2026-03-28T02:30 --day 29)"]),
        ({"hourly": True, "start": "2026-03-29T02:30"}, ["give a time after the gap (2026-03-29T03:00)"]),
        ({"at": "2026-03-29T02:30"}, ["does not exist", "after the gap (2026-03-29T03:00)"]),
        ({"daily": True, "start": "2026-10-04T02:10", "tz": "Australia/Lord_Howe"},
         ["--start 2026-10-03T02:10", "or give 2026-10-04T02:30"]),
        ({"cron": "0 25 * * *"}, ["hour field", "'25'", "0 to 23"]),
        ({"cron": "61 * * * *"}, ["minute field", "0 to 59"]),
        ({"cron": "0 0 * 13 *"}, ["month field", "1 to 12"]),
        ({"cron": "0 0 * * funday"}, ["day of week field", "'funday'"]),
        ({"cron": "0 0 0 * *"}, ["day of month field", "1 to 31"]),
        ({"cron": "60 * * * * *"}, ["second field", "0 to 59"]),
        ({"cron": "*/0 * * * *"}, ["minute field", "step"]),
        ({"cron": "5-2 * * * *"}, ["minute field", "backwards"]),
        ({"cron": "0 0 * * 5#6"}, ["day of week field", "1 to 5"]),
        ({"cron": "H 0 * * *"}, ["minute field", "'H'"]),
        ({"cron": "R 0 * * *"}, ["minute field", "'R'"]),
        ({"cron": "0 0 1,,2 * *"}, ["day of month field", "empty"]),
        ({"cron": "0 0 * *"}, ["4 fields", "5"]),
        ({"cron": "0 0 * * * * 2026"}, ["7 fields", "6 with seconds first"]),
        ({"cron": "@reboot"}, ["@reboot", "not supported"]),
        ({"cron": "0 0 30 2 *"}, ["never fire", "February"]),
        ({"cron": "0 0 31 4,6,9,11 *"}, ["never fire", "day 31"]),
        ({"every": "0s"}, ["--every", "positive"]),
        ({"every": "-5m"}, ["--every", "negative"]),
        ({"every": "5x"}, ["--every", "not an interval", "30s"]),
        ({"every": "99999999999d"}, ["--every '99999999999d' is longer than 100 years"]),
        ({"every": "36526d"}, ["--every '36526d' is longer than 100 years, the longest duration bgproc takes; "
                               "give at most 36525d"]),
        ({"every": timedelta(days=36526)}, ["--every 36526 days, 0:00:00 is longer than 100 years"]),
        ({"at": "+36526d"}, ["--at '+36526d' is longer than 100 years, the longest duration bgproc takes"]),
        ({"at": "+876601h"}, ["--at '+876601h' is longer than 100 years"]),
        ({"daily": True, "start": "+36526d"}, ["--start '+36526d' is longer than 100 years"]),
        ({"daily": True, "finish": "+99999999999999999999s"}, ["--finish '+99999999999999999999s' is longer"]),
        ({"every": timedelta(milliseconds=1500)}, ["--every", "whole number of seconds"]),
        ({"daily": True, "start": "2026-05-06T09:00", "finish": "2026-05-06T08:00"},
         ["--finish", "not after the start", "later --finish"]),
        ({"daily": True, "start": "2026-05-06T09:00", "finish": "2026-05-06T09:00"},
         ["--finish", "not after the start"]),
        ({"daily": True, "start": "2026-05-01T09:00", "finish": "2026-05-02T09:00"},
         ["--finish", "in the past"]),
        ({"at": "2026-05-04T10:00+00:00"}, ["--at", "in the past", "2 hours ago", "--now"]),
        ({"at": "2026-05-01T12:00+00:00"}, ["in the past", "3 days ago", "--now"]),
        ({"daily": True, "weekly": True}, ["choose one timing", "--daily", "--weekly"]),
        ({"now": True, "cron": "* * * * *"}, ["choose one timing", "--now", "--cron"]),
        ({"daily": True, "days": "mon"}, ["--days", "--weekly"]),
        ({"days": "mon"}, ["--days", "--weekly"]),
        ({"weekly": True, "day": "5"}, ["--day", "--monthly"]),
        ({"weekly": True, "days": "mon,funday"}, ["--days", "'funday'", "mon, tue"]),
        ({"weekly": True, "days": " , "}, ["--days", "empty"]),
        ({"monthly": True, "day": "0"}, ["--day", "1 to 31"]),
        ({"monthly": True, "day": 32}, ["--day", "1 to 31"]),
        ({"monthly": True, "day": "first"}, ["--day", "1 to 31 or last"]),
        ({"at": "+5m", "start": "+1m"}, ["--start", "recurring", "--at"]),
        ({"now": True, "finish": "+1h"}, ["--finish", "recurring"]),
        # Monday start, finish on Tuesday: a Friday-only schedule has no fire.
        ({"weekly": True, "days": "fri", "start": "2026-05-04T15:00", "finish": "2026-05-05T15:00"},
         ["never fires between the start and the finish", "widen"]),
    ],
)
def test_refusals(options: dict[str, object], fragments: list[str]) -> None:
    message = refused(**options)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_refusal_is_raised_by_direct_construction_too() -> None:
    with pytest.raises(TimingError, match="unknown time zone"):
        Timing(kind="daily", zone="Nowhere/Land", start=NOW)
    with pytest.raises(TimingError, match="hour field"):
        Timing(kind="cron", zone="UTC", start=NOW, cron="0 24 * * *")
    with pytest.raises(TimingError, match="positive"):
        Timing(kind="every", zone="UTC", start=NOW, interval=timedelta(0))
    with pytest.raises(TimingError, match="aware"):
        Timing(kind="daily", zone="UTC", start=datetime(2026, 1, 1))
    with pytest.raises(TimingError, match="unknown timing kind"):
        Timing(kind="yearly", zone="UTC", start=NOW)


# ----------------------------------------------------------------------
# Words


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"daily": True, "start": "2026-05-06T09:30"}, "every day at 09:30 (Europe/Berlin)"),
        ({"daily": True, "start": "2026-05-06T09:30:15"}, "every day at 09:30:15 (Europe/Berlin)"),
        ({"daily": True, "start": "2026-05-06T09:30", "tz": "Asia/Kolkata"},
         "every day at 09:30 (Asia/Kolkata)"),
        ({"weekly": True, "start": "2026-05-06T09:30"}, "every Wednesday at 09:30 (Europe/Berlin)"),
        ({"weekly": True, "days": "mon,fri", "start": "2026-05-06T08:00"},
         "every Monday and Friday at 08:00 (Europe/Berlin)"),
        ({"weekly": True, "days": "mon,wed,fri", "start": "2026-05-06T08:00"},
         "every Monday, Wednesday and Friday at 08:00 (Europe/Berlin)"),
        ({"weekly": True, "days": "mon-fri", "start": "2026-05-06T08:00"},
         "every Monday to Friday at 08:00 (Europe/Berlin)"),
        ({"weekly": True, "days": "mon-sun", "start": "2026-05-06T08:00"},
         "every day at 08:00 (Europe/Berlin)"),
        ({"monthly": True, "start": "2026-05-06T09:30"},
         "on day 6 of every month at 09:30 (Europe/Berlin)"),
        ({"monthly": True, "day": "31", "start": "2026-05-06T09:30"},
         "on day 31 of every month (the last day in shorter months) at 09:30 (Europe/Berlin)"),
        ({"monthly": True, "day": "last", "start": "2026-05-06T09:30"},
         "on the last day of every month at 09:30 (Europe/Berlin)"),
        ({"hourly": True, "start": "2026-05-06T09:05"}, "every hour at minute 05 (Europe/Berlin)"),
        ({"hourly": True, "start": "2026-05-06T09:05:30"},
         "every hour at minute 05, second 30 (Europe/Berlin)"),
        ({"every": "30s"}, "every 30 seconds"),
        ({"every": "90s"}, "every 90 seconds"),
        ({"every": "1m"}, "every minute"),
        ({"every": "120m"}, "every 2 hours"),
        ({"every": "1d"}, "every 24 hours"),
        ({"every": "3d"}, "every 72 hours"),
        ({"cron": "*/15 * * * *"}, "every 15 minutes (Europe/Berlin)"),
        ({"cron": "30 2 * * *"}, "at 02:30 (Europe/Berlin)"),
        ({"cron": "0 9 * * mon-fri"}, "at 09:00, Monday through Friday (Europe/Berlin)"),
        ({"cron": "*/10 * * * * *"}, "every 10 seconds (Europe/Berlin)"),
        ({"at": "2026-05-06T09:30"}, "once at 2026-05-06 09:30:00 (Europe/Berlin)"),
        ({"now": True}, "once, now"),
    ],
)
def test_describe(options: dict[str, object], text: str) -> None:
    assert parse(**options).describe() == text


# ----------------------------------------------------------------------
# Storage


@pytest.mark.parametrize(
    "options",
    [
        {"now": True},
        {"at": "+1h"},
        {"every": "90s", "start": "2026-05-06T09:30", "finish": "2026-06-01T00:00"},
        {"hourly": True, "start": "2026-05-06T09:05:30"},
        {"daily": True, "start": "2026-05-06T09:30", "tz": "America/New_York"},
        {"weekly": True, "days": "mon,fri"},
        {"monthly": True, "day": "last"},
        {"monthly": True, "day": "15"},
        {"cron": "30 0 9 * * mon"},
        {"cron": "*/15 * * * *", "tz": "Australia/Lord_Howe"},
    ],
)
def test_round_trip(options: dict[str, object]) -> None:
    import json

    t = parse(**options)
    data = json.loads(json.dumps(t.to_dict()))
    back = Timing.from_dict(data, zone=t.zone, start=t.start, finish=t.finish)
    assert back == t
    assert back.describe() == t.describe()
    assert back.fires(NOW, 5) == t.fires(NOW, 5)


def test_to_dict_shapes() -> None:
    assert parse(every="90s").to_dict() == {"kind": "every", "every": "90s", "interval_s": 90.0}
    assert parse(weekly=True, days="fri,mon").to_dict() == {"kind": "weekly", "days": ["mon", "fri"]}
    assert parse(monthly=True, day="last").to_dict() == {"kind": "monthly", "day": "last"}
    assert parse(cron="@hourly").to_dict() == {"kind": "cron", "cron": "0 * * * *"}


def test_from_dict_defaults_follow_the_start() -> None:
    start = at("2026-05-06T07:30:00+00:00")  # Wednesday the 6th, 09:30 in Berlin
    monthly = Timing.from_dict({"kind": "monthly"}, zone="Europe/Berlin", start=start, finish=None)
    assert monthly.month_day == 6  # the start's day, not the month's end
    weekly = Timing.from_dict({"kind": "weekly"}, zone="Europe/Berlin", start=start, finish=None)
    assert weekly.weekdays == (2,)
    every = Timing.from_dict({"kind": "every", "every": "5m"}, zone="UTC", start=start, finish=None)
    assert every.interval == timedelta(minutes=5)


# ----------------------------------------------------------------------
# --every: elapsed time


def test_every_arithmetic() -> None:
    start = at("2026-03-28T23:00:00+00:00")
    t = Timing(kind="every", zone="Europe/Berlin", start=start, interval=timedelta(minutes=45))
    assert t.first_fire() == start
    assert t.next_fire(start - timedelta(days=3)) == start
    assert t.next_fire(start) == start + timedelta(minutes=45)
    assert t.next_fire(start + timedelta(minutes=44, seconds=59)) == start + timedelta(minutes=45)
    assert t.next_fire(start + timedelta(minutes=45)) == start + timedelta(minutes=90)
    # Through the spring-forward night: equal elapsed steps, whatever the clock says.
    fires = t.fires(start, 4)
    assert [b - a for a, b in zip([start, *fires], fires, strict=False)] == [timedelta(minutes=45)] * 4
    assert [f.astimezone(BERLIN).strftime("%H:%M%z") for f in fires] == [
        "00:45+0100", "01:30+0100", "03:15+0200", "04:00+0200",
    ]


def test_every_is_direct_far_from_the_start() -> None:
    start = at("2025-01-01T00:00:00+00:00")
    t = Timing(kind="every", zone="UTC", start=start, interval=timedelta(seconds=1))
    later = at("2026-01-01T00:00:00.500000+00:00")
    assert t.next_fire(later) == at("2026-01-01T00:00:01+00:00")
    assert t.next_fire(at("2026-01-01T00:00:00+00:00")) == at("2026-01-01T00:00:01+00:00")
    assert t.last_fire(later) == at("2026-01-01T00:00:00+00:00")
    seven = Timing(kind="every", zone="UTC", start=start, interval=timedelta(seconds=7))
    assert seven.next_fire(later) == start + 4_505_143 * timedelta(seconds=7)


def test_iter_fires_is_lazy_and_stops_at_finish() -> None:
    t = parse(every="1h", start="2026-05-06T00:00", finish="2026-05-06T03:00")
    assert [f.astimezone(BERLIN).hour for f in iter_fires(t, NOW)] == [0, 1, 2, 3]


# ----------------------------------------------------------------------
# Finish


def test_fire_at_finish_is_included_and_nothing_after() -> None:
    t = parse(daily=True, start="2026-05-06T09:30", finish="2026-05-08T09:30")
    fires = t.fires(NOW, 10)
    assert [f.astimezone(BERLIN).day for f in fires] == [6, 7, 8]
    assert t.next_fire(fires[-1]) is None
    assert t.next_fire(at("2027-01-01T00:00:00+00:00")) is None
    assert t.last_fire(at("2027-01-01T00:00:00+00:00")) == fires[-1]


def test_finish_before_next_fire() -> None:
    t = parse(every="1h", start="2026-05-06T00:00", finish="2026-05-06T01:59")
    assert len(t.fires(NOW, 10)) == 2


def test_one_time_fires_once() -> None:
    t = parse(at="2026-05-06T09:30")
    assert t.first_fire() == t.start
    assert t.next_fire(t.start - timedelta(microseconds=1)) == t.start
    assert t.next_fire(t.start) is None
    assert t.fires(NOW, 5) == [t.start]


# ----------------------------------------------------------------------
# First fire, due_from


def test_first_fire_is_the_start_when_it_matches() -> None:
    assert parse(daily=True, start="2026-05-06T09:30").first_fire() == at("2026-05-06T07:30:00+00:00")
    # 09:30 on a Wednesday does not match "Mondays at 10:00": the first fire is Monday's.
    t = parse(cron="0 10 * * mon", start="2026-05-06T09:30")
    assert t.first_fire() == at("2026-05-11T08:00:00+00:00")
    # Weekly on other days than the start's: the next matching day at the start's time.
    t = parse(weekly=True, days="fri", start="2026-05-06T09:30")
    assert t.first_fire() == at("2026-05-08T07:30:00+00:00")


def test_first_fire_at_a_start_that_is_the_end_of_a_gap() -> None:
    # 02:30 does not exist on 2026-03-08 in New York: that fire is at 03:00, the start.
    start = at("2026-03-08T03:00:00-04:00")
    t = Timing(kind="cron", zone="America/New_York", start=start, cron="30 2 * * *")
    assert t.first_fire() == start


def test_due_from() -> None:
    # A start in the past: fires before now (beyond the grace) are not caught up.
    t = parse(every="10m", start="2026-05-04T13:00")  # 11:00 UTC
    assert t.due_from(NOW) == NOW  # 12:00 UTC is a fire
    assert t.due_from(NOW + timedelta(seconds=30)) == NOW  # within the grace
    assert t.due_from(NOW + timedelta(seconds=61)) == NOW + timedelta(minutes=10)
    # A start in the future: the start.
    t = parse(daily=True, start="2026-05-06T09:30")
    assert t.due_from(NOW) == t.start
    # A default start (now) for a calendar timing: its first fire.
    assert parse(cron="0 * * * *").due_from(NOW) == NOW
    assert parse(cron="5 * * * *").due_from(NOW) == NOW + timedelta(minutes=5)


# ----------------------------------------------------------------------
# Backlog


def test_backlog_every_is_exact() -> None:
    start = at("2025-01-01T00:00:00+00:00")
    t = Timing(kind="every", zone="UTC", start=start, interval=timedelta(seconds=1))
    count, last = t.backlog(start, at("2026-01-01T00:00:00.5+00:00"))
    assert count == 365 * 86400
    assert last == at("2026-01-01T00:00:00+00:00")
    assert t.backlog(start, start) == (0, None)
    # planned before the start (a request created early): the start counts.
    assert t.backlog(start - timedelta(days=1), start + timedelta(seconds=2)) == (3, start + timedelta(seconds=2))
    finished = Timing(kind="every", zone="UTC", start=start, finish=start + timedelta(seconds=10),
                      interval=timedelta(seconds=3))
    assert finished.backlog(start, start + timedelta(days=1)) == (3, start + timedelta(seconds=9))


def test_backlog_daily_across_dst() -> None:
    t = Timing(kind="daily", zone="Europe/Berlin", start=at("2026-03-20T02:30:00+01:00"))
    planned = at("2026-03-20T02:30:00+01:00")
    count, last = t.backlog(planned, at("2026-04-02T12:00:00+02:00"))
    assert count == 13
    assert last == at("2026-04-02T02:30:00+02:00")
    assert t.backlog(planned, planned) == (0, None)
    assert t.backlog(planned, at("2026-03-21T02:30:00+01:00")) == (1, at("2026-03-21T02:30:00+01:00"))


def test_backlog_is_bounded_and_last_is_exact() -> None:
    start = at("2025-01-01T00:00:00+00:00")
    t = Timing(kind="cron", zone="Europe/Berlin", start=start, cron="* * * * * *")
    now = at("2026-01-01T00:00:00.250+00:00")
    count, last = t.backlog(start, now)
    assert count == BACKLOG_LIMIT
    assert last == at("2026-01-01T00:00:00+00:00")
    count, last = t.backlog(start, now, limit=5)
    assert (count, last) == (5, at("2026-01-01T00:00:00+00:00"))
    # Under the limit the count is exact.
    assert t.backlog(start, start + timedelta(seconds=100)) == (100, start + timedelta(seconds=100))


def test_backlog_one_time() -> None:
    t = parse(at="2026-05-06T09:30")
    assert t.backlog(NOW, at("2026-05-07T00:00:00+00:00")) == (1, t.start)
    assert t.backlog(t.start, at("2026-05-07T00:00:00+00:00")) == (0, None)


def test_last_fire() -> None:
    t = parse(cron="*/15 * * * *", start="2026-05-04T14:00")
    assert t.last_fire(at("2026-05-04T12:29:59+00:00")) == at("2026-05-04T12:15:00+00:00")
    assert t.last_fire(at("2026-05-04T12:30:00+00:00")) == at("2026-05-04T12:30:00+00:00")
    assert t.last_fire(at("2026-05-04T11:59:00+00:00")) is None  # before the start
    yearly = parse(cron="0 0 29 2 *", start="2026-01-01T00:00")
    assert yearly.last_fire(at("2035-01-01T00:00:00+00:00")) == at("2032-02-28T23:00:00+00:00")


# ----------------------------------------------------------------------
# Cron dialect details (cronsim checks the bulk, in test_timing_cronsim.py)


def cron_fires(expr: str, after: str, n: int = 4, zone: str = "UTC") -> list[str]:
    t = Timing(kind="cron", zone=zone, start=at("2000-01-01T00:00:00+00:00"), cron=expr)
    tz = ZoneInfo(zone)
    return [f.astimezone(tz).isoformat() for f in t.fires(at(after), n)]


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("*/90 * * * *", "bad minute field '*/90': a step of 90 is larger than the minute range 0-59, so it "
         "would fire at minute 0 only; write 0 for that, a step from 2 to 59 or --every 90m for every 90 "
         "minutes of elapsed time"),
        ("*/60 * * * *", "minute range 0-59, so it would fire at minute 0 only"),
        ("*/99999999999999999999 * * * *", "a step of 99999999999999999999 is larger than the minute range "
         "0-59, so it would fire at minute 0 only; write 0 for that or a step from 2 to 59"),
        ("0-30/45 * * * *", "bad minute field '0-30/45': a step of 45 is larger than the range 0-30, so it "
         "would fire at minute 0 only; write 0 for that or a step from 2 to 30"),
        ("57/5 * * * *", "a step of 5 is larger than the range 57-59, so it would fire at minute 57 only; "
         "write 57 for that or a step of 2"),
        ("*/61 0 * * * *", "bad second field '*/61': a step of 61 is larger than the second range 0-59, so it "
         "would fire at second 0 only; write 0 for that, a step from 2 to 59 or --every 61s"),
        ("0 */24 * * *", "bad hour field '*/24': a step of 24 is larger than the hour range 0-23, so it would "
         "fire at hour 0 only; write 0 for that, a step from 2 to 23 or --every 24h for every 24 hours"),
        ("0 2-5/9 * * *", "bad hour field '2-5/9': a step of 9 is larger than the range 2-5"),
        ("0 0 */31 * *", "bad day of month field '*/31': a step of 31 is larger than the day of month range "
         "1-31, so it would fire at day of month 1 only; write 1 for that or a step from 2 to 30"),
        ("0 0 10-20/11 * *", "bad day of month field '10-20/11'"),
        ("0 0 1 */12 *", "bad month field '*/12': a step of 12 is larger than the month range 1-12, so it "
         "would fire at month 1 only; write 1 for that or a step from 2 to 11"),
        ("0 0 1 jun-aug/3 *", "bad month field 'jun-aug/3': a step of 3 is larger than the range 6-8"),
        ("0 0 * * */8", "bad day of week field '*/8': a step of 8 is larger than the day of week range 0-7, "
         "so it would fire at day of week 0 only; write 0 for that or a step from 2 to 7"),
        ("0 0 * * mon-fri/5", "bad day of week field 'mon-fri/5': a step of 5 is larger than the range 1-5"),
        ("20-20/10 * * * *", "a step of 10 is larger than the range 20-20, so it would fire at minute 20 only; "
         "write 20 for that"),
    ],
)
def test_a_step_that_never_reaches_a_second_value_is_refused(expr: str, words: str) -> None:
    # Described as "every 90 minutes", */90 would fire at minute 0 of every hour.
    assert words in refused(cron=expr)


def test_steps_that_reach_a_second_value_fire_as_before() -> None:
    assert cron_fires("*/59 * * * *", "2026-05-04T00:00+00:00", 3) == [
        "2026-05-04T00:59:00+00:00", "2026-05-04T01:00:00+00:00", "2026-05-04T01:59:00+00:00",
    ]
    assert cron_fires("0-30/30 * * * *", "2026-05-04T00:00+00:00", 3) == [
        "2026-05-04T00:30:00+00:00", "2026-05-04T01:00:00+00:00", "2026-05-04T01:30:00+00:00",
    ]
    assert cron_fires("0 */23 * * *", "2026-05-04T00:00+00:00", 2) == [
        "2026-05-04T23:00:00+00:00", "2026-05-05T00:00:00+00:00",
    ]
    assert cron_fires("0 0 */30 * *", "2026-05-01T00:00+00:00", 2) == [
        "2026-05-31T00:00:00+00:00", "2026-06-01T00:00:00+00:00",
    ]
    assert cron_fires("0 0 1 */11 *", "2026-01-01T00:00+00:00", 2) == [
        "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00",
    ]
    assert cron_fires("0 0 * * */7", "2026-05-04T00:00+00:00", 1) == ["2026-05-10T00:00:00+00:00"]  # Sunday
    assert cron_fires("59/1 * * * *", "2026-05-04T00:00+00:00", 1) == ["2026-05-04T00:59:00+00:00"]
    assert cron_fires("*/59 0 0 * * *", "2026-05-04T00:00+00:00", 2) == [
        "2026-05-04T00:00:59+00:00", "2026-05-05T00:00:00+00:00",
    ]


def test_durations_up_to_a_hundred_years_are_taken() -> None:
    assert parse(every="36525d").interval == timedelta(days=36525)
    assert parse(at="+36525d").start == NOW.replace(microsecond=0) + timedelta(days=36525)


@pytest.mark.parametrize(
    ("timing", "last"),
    [
        (dict(kind="monthly"), "9998-12-15T09:30:00+00:00"),
        (dict(kind="daily"), "9998-12-31T09:30:00+00:00"),
        (dict(kind="hourly"), "9998-12-31T23:30:00+00:00"),
        (dict(kind="every", interval=timedelta(days=36525)), "9998-11-15T09:30:00+00:00"),
        (dict(kind="cron", cron="0 11 * * *", zone="Etc/GMT+12"), "9998-12-31T11:00:00-12:00"),
        (dict(kind="cron", cron="59 23 * * *", zone="Pacific/Kiritimati"), "9998-12-31T23:59:00+14:00"),
        (dict(kind="cron", cron="* * * * *"), "9998-12-31T23:59:00+00:00"),
    ],
)
def test_fires_end_with_the_calendar_without_overflowing(timing: dict[str, object], last: str) -> None:
    # A schedule that reaches the end of the calendar has no fire left (its request
    # then becomes complete, saying why), never a traceback or a fire that cannot be shown.
    kind, zone = timing.pop("kind"), timing.pop("zone", "UTC")
    start = datetime(9998, 11, 15, 9, 30, tzinfo=UTC) - (timedelta(days=36525) if kind == "every" else timedelta(0))
    t = Timing(kind=kind, zone=zone, start=start, **timing)  # type: ignore[arg-type]
    fires = t.fires(datetime(9998, 11, 14, tzinfo=UTC), 100_000)
    assert fires and fires[-1].astimezone(ZoneInfo(zone)).isoformat() == last
    assert t.next_fire(fires[-1]) is None and t.next_fire(datetime(9999, 6, 1, tzinfo=UTC)) is None
    assert t.end_reason() == "its next fire would fall after 9999-01-01, where bgproc's calendar ends"
    assert t.last_fire(datetime(9999, 12, 31, tzinfo=UTC)) == fires[-1]
    assert t.backlog(datetime(9998, 11, 14, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC))[1] == fires[-1]


def test_a_schedule_with_no_fire_before_the_calendars_end_is_refused() -> None:
    late = datetime(9998, 12, 20, tzinfo=UTC)
    with pytest.raises(TimingError, match="never fires: its next fire would fall after 9999-01-01"):
        parse_timing(TimingOptions(cron="0 0 1 1 *"), late, "UTC")


def test_a_finished_schedule_says_its_finish_is_the_reason() -> None:
    t = parse(daily=True, start="2026-05-05T09:00", finish="2026-05-07T10:00")
    assert t.next_fire(at("2026-05-07T09:00+02:00")) is None
    assert t.end_reason() == "its finish (2026-05-07 10:00:00 CEST) has passed"


def test_cron_dialect() -> None:
    assert cron_fires("0 9-9 * * *", "2026-05-04T00:00+00:00", 2) == [
        "2026-05-04T09:00:00+00:00", "2026-05-05T09:00:00+00:00",
    ]
    assert cron_fires("50/5 * * * *", "2026-05-04T00:00+00:00", 3) == [
        "2026-05-04T00:50:00+00:00", "2026-05-04T00:55:00+00:00", "2026-05-04T01:50:00+00:00",
    ]
    # Day of month and day of week: OR when both are restricted, AND when either starts with *.
    assert cron_fires("0 0 13 * fri", "2026-01-01T00:00+00:00", 3) == [
        "2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00", "2026-01-13T00:00:00+00:00",
    ]
    assert cron_fires("0 0 */13 * fri", "2026-01-01T00:00+00:00", 3) == [  # Fridays 1, 14, 27
        "2026-02-27T00:00:00+00:00", "2026-03-27T00:00:00+00:00", "2026-05-01T00:00:00+00:00",
    ]
    # A field listing every value is not '*': 1-31 OR friday is every day.
    assert cron_fires("0 0 1-31 * fri", "2026-01-01T00:00+00:00", 2) == [
        "2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00",
    ]
    assert cron_fires("0 0 * * 7", "2026-01-01T00:00+00:00", 1) == ["2026-01-04T00:00:00+00:00"]
    assert cron_fires("0 0 1 jan,JUL *", "2026-01-01T00:00+00:00", 2) == [
        "2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00",
    ]
    assert cron_fires("0 0 L * *", "2026-01-31T00:00+00:00", 2) == [
        "2026-02-28T00:00:00+00:00", "2026-03-31T00:00:00+00:00",
    ]
    assert cron_fires("0 0 LW * *", "2026-01-01T00:00+00:00", 3) == [
        "2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00", "2026-03-31T00:00:00+00:00",
    ]
    # 15W: the weekday nearest the 15th (Feb 15 2026 is a Sunday; Aug 15 a Saturday).
    assert cron_fires("0 0 15W 2,8 *", "2026-01-01T00:00+00:00", 2) == [
        "2026-02-16T00:00:00+00:00", "2026-08-14T00:00:00+00:00",
    ]
    # 1W on a Saturday moves forward to Monday the 3rd, not back into the previous month.
    assert cron_fires("0 0 1W 8 *", "2026-01-01T00:00+00:00", 1) == ["2026-08-03T00:00:00+00:00"]
    # 31W in a shorter month: the weekday nearest its last day (Sat 28 Feb -> Fri 27).
    assert cron_fires("0 0 31W 2,4 *", "2026-01-01T00:00+00:00", 2) == [
        "2026-02-27T00:00:00+00:00", "2026-04-30T00:00:00+00:00",
    ]
    # Special forms follow the same OR rule: 15W or any Monday.
    assert cron_fires("0 0 15W * 1", "2026-01-01T00:00+00:00", 3) == [
        "2026-01-05T00:00:00+00:00", "2026-01-12T00:00:00+00:00", "2026-01-15T00:00:00+00:00",
    ]
    assert cron_fires("0 0 * * 5#3", "2026-01-01T00:00+00:00", 2) == [
        "2026-01-16T00:00:00+00:00", "2026-02-20T00:00:00+00:00",
    ]
    assert cron_fires("0 0 * * 5L", "2026-01-01T00:00+00:00", 2) == cron_fires(
        "0 0 * * L5", "2026-01-01T00:00+00:00", 2
    ) == ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00"]
    assert cron_fires("*/20 * * * * *", "2026-01-01T00:00:00.5+00:00", 3) == [
        "2026-01-01T00:00:20+00:00", "2026-01-01T00:00:40+00:00", "2026-01-01T00:01:00+00:00",
    ]
    assert cron_fires("0 0 29 2 *", "2026-01-01T00:00+00:00", 2) == [
        "2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00",
    ]
    # Fires across the 2100 non-leap year: eight years apart.
    assert cron_fires("0 0 29 2 *", "2097-01-01T00:00+00:00", 1) == ["2104-02-29T00:00:00+00:00"]


def test_cron_normalizes_and_keeps_names() -> None:
    assert validate_cron(" 0  9 * *  MON ") == "0 9 * * MON"
    assert validate_cron("@weekly") == "0 0 * * 0"


def test_far_future_ends_quietly() -> None:
    t = Timing(kind="every", zone="UTC", start=NOW, interval=timedelta(days=365))
    assert t.next_fire(datetime(9999, 6, 1, tzinfo=UTC)) is None
    d = Timing(kind="daily", zone="Europe/Berlin", start=NOW)  # 14:00 CEST, 13:00 UTC in winter
    assert d.next_fire(datetime(9998, 12, 31, 12, tzinfo=UTC)) == datetime(9998, 12, 31, 13, tzinfo=UTC)
    assert d.next_fire(datetime(9998, 12, 31, 13, tzinfo=UTC)) is None  # the calendar ends at 9999-01-01
    assert d.next_fire(datetime(9999, 12, 31, 12, tzinfo=UTC)) is None
    c = Timing(kind="cron", zone="Pacific/Kiritimati", start=NOW, cron="0 0 * * *")
    assert c.next_fire(datetime(9999, 12, 31, 12, tzinfo=UTC)) is None


# ----------------------------------------------------------------------
# Zones with unusual changes (the 2026 rules of three zones are pinned in
# test_timing_dst.py)


@pytest.mark.parametrize(
    ("kind", "zone", "start", "extra", "after", "expected"),
    [
        # Samoa skipped 2011-12-30 entirely: that day's 09:00 fires when the gap ends.
        ("daily", "Pacific/Apia", "2011-12-01T09:00-10:00", {}, "2011-12-28T12:00-10:00",
         ["2011-12-29T09:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T09:00:00+14:00"]),
        # Following the clock: one real hour after 23:00 on the 29th is midnight on the 31st.
        ("hourly", "Pacific/Apia", "2011-12-01T09:00-10:00", {}, "2011-12-29T22:30-10:00",
         ["2011-12-29T23:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T01:00:00+14:00"]),
        # Sao Paulo moved clocks at midnight: 00:30 did not exist on 2018-11-04.
        ("daily", "America/Sao_Paulo", "2018-10-01T00:30-03:00", {}, "2018-11-03T12:00-03:00",
         ["2018-11-04T01:00:00-02:00", "2018-11-05T00:30:00-02:00"]),
        ("hourly", "America/Sao_Paulo", "2018-10-01T00:30-03:00", {}, "2018-11-03T23:00-03:00",
         ["2018-11-03T23:30:00-03:00", "2018-11-04T01:30:00-02:00"]),
        # Moscow left permanent +04 in 2014: 01:00-01:59 happened twice; first occurrence.
        ("daily", "Europe/Moscow", "2014-10-01T01:30+04:00", {}, "2014-10-25T12:00+04:00",
         ["2014-10-26T01:30:00+04:00", "2014-10-27T01:30:00+03:00"]),
        # Tehran's DST began at midnight (2021-03-22 00:00 became 01:00).
        ("cron", "Asia/Tehran", "2020-01-01T00:00+03:30", {"cron": "30 0 * * *"}, "2021-03-21T12:00+03:30",
         ["2021-03-22T01:00:00+04:30", "2021-03-23T00:30:00+04:30"]),
        # Troll jumps two hours (+00 to +02 at 01:00 UTC).
        ("daily", "Antarctica/Troll", "2026-03-01T01:30+00:00", {}, "2026-03-28T12:00+00:00",
         ["2026-03-29T03:00:00+02:00", "2026-03-30T01:30:00+02:00"]),
        # Half-hour offset, no DST.
        ("hourly", "Asia/Kolkata", "2026-03-01T01:30+05:30", {}, "2026-03-28T12:00+05:30",
         ["2026-03-28T12:30:00+05:30", "2026-03-28T13:30:00+05:30"]),
    ],
)
def test_unusual_zones(
    kind: str, zone: str, start: str, extra: dict[str, object], after: str, expected: list[str]
) -> None:
    t = Timing(kind=kind, zone=zone, start=at(start), **extra)  # type: ignore[arg-type]
    tz = ZoneInfo(zone)
    assert [f.astimezone(tz).isoformat() for f in t.fires(at(after), len(expected))] == expected


def test_naive_instants_are_refused() -> None:
    # A naive "now" would be read in the host's zone.
    t = parse(daily=True)
    for call in (lambda: t.next_fire(datetime(2026, 5, 5)), lambda: t.due_from(datetime(2026, 5, 5)),
                 lambda: t.backlog(NOW, datetime(2026, 5, 5)), lambda: t.last_fire(datetime(2026, 5, 5))):
        with pytest.raises(ValueError, match="aware"):
            call()


# ----------------------------------------------------------------------
# The zone data: offset changes are found by probing a day at a time, which
# relies on no zone changing its offset twice within two days.


def test_no_zone_changes_offset_twice_within_two_days() -> None:
    try:
        from zoneinfo import available_timezones
        from zoneinfo._zoneinfo import ZoneInfo as PyZoneInfo
    except ImportError:  # pragma: no cover
        pytest.skip("pure-Python zoneinfo not available")
    close = []
    for name in sorted(available_timezones()):
        transitions = getattr(PyZoneInfo.no_cache(name), "_trans_utc", None)
        if transitions is None:  # pragma: no cover
            pytest.skip("zoneinfo internals changed")
        close += [(name, a) for a, b in zip(transitions, transitions[1:], strict=False) if b - a < 2 * 86400]
    assert close == []


# ----------------------------------------------------------------------
# Property tests


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",  # +05:30, no DST
    "Australia/Lord_Howe",  # 30-minute DST
    "Europe/Moscow",  # permanent DST 2011, back in 2014
    "America/Sao_Paulo",  # DST at midnight until 2019
    "Pacific/Apia",  # skipped 2011-12-30 entirely
    "Asia/Tehran",  # DST until 2022, transitions at midnight
    "Antarctica/Troll",  # a two-hour DST jump
    "Pacific/Chatham",  # +12:45 / +13:45
]
LOW, HIGH = datetime(1990, 1, 1), datetime(2040, 1, 1)


@functools.cache
def transitions(zone: str) -> list[datetime]:
    """Offset changes between 1990 and 2040, found by weekly probes and bisection."""
    tz = ZoneInfo(zone)
    out: list[datetime] = []
    t = LOW.replace(tzinfo=UTC)
    end = HIGH.replace(tzinfo=UTC)
    step = timedelta(days=7)
    while t < end:
        if t.astimezone(tz).utcoffset() != (t + step).astimezone(tz).utcoffset():
            lo, hi = t, t + step
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi.replace(microsecond=0))
        t += step
    return out


def cron_field(lo: int, hi: int, near: tuple[int, ...] = ()) -> st.SearchStrategy[str]:
    value = st.sampled_from(near) if near else st.integers(lo, hi)
    single = st.one_of(value, st.integers(lo, hi)).map(str)
    ranged = st.tuples(st.integers(lo, hi), st.integers(1, hi - lo)).map(
        lambda p: f"{p[0]}-{min(hi, p[0] + p[1])}" if p[0] < hi else str(p[0])
    )
    stepped_range = st.tuples(st.integers(lo, hi - 1), st.integers(1, hi - lo), st.integers(1, 7)).map(
        lambda p: f"{p[0]}-{min(hi, p[0] + p[1])}/{p[2]}"
    )
    return st.one_of(
        st.just("*"),
        st.integers(1, max(1, (hi - lo) // 2)).map(lambda s: f"*/{s}"),
        single,
        ranged,
        stepped_range,
        st.lists(st.one_of(value, st.integers(lo, hi)), min_size=2, max_size=4, unique=True).map(
            lambda xs: ",".join(map(str, sorted(xs)))
        ),
    )


# Built once: building strategies inside a draw costs more than the checks.
_SECONDS = cron_field(0, 59, (0, 30))
_MINUTES = cron_field(0, 59, (0, 15, 30, 45))
_HOURS = cron_field(0, 23, (0, 1, 2, 3))  # where most DST changes happen
_DAYS = st.one_of(st.just("*"), st.just("*"), cron_field(1, 31))
_MONTHS = st.one_of(st.just("*"), st.just("*"), cron_field(1, 12))
_WEEKDAYS = st.one_of(st.just("*"), st.just("*"), cron_field(0, 6))


@st.composite
def cron_expr(draw: st.DrawFn) -> str:
    fields = [draw(_MINUTES), draw(_HOURS), draw(_DAYS), draw(_MONTHS), draw(_WEEKDAYS)]
    if draw(st.integers(0, 4)) == 0:
        fields.insert(0, draw(_SECONDS))
    expr = " ".join(fields)
    try:
        validate_cron(expr)
    except TimingError:
        reject()
    return expr


_CRON = cron_expr()
_INTERVALS = st.sampled_from([1, 7, 60, 900, 3600, 5400, 86400, 3 * 86400])
_KINDS = st.sampled_from(["every", "hourly", "daily", "weekly", "monthly", "cron", "cron"])
_MONTH_DAYS = st.one_of(st.integers(1, 31), st.just(LAST_DAY))
_WEEKDAY_SETS = st.sets(st.integers(0, 6), min_size=1)
_PLAIN = st.datetimes(LOW, HIGH)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Timing, datetime]:
    zone = draw(st.sampled_from(ZONES))
    changes = transitions(zone)
    near_change: bool = draw(st.booleans())
    if changes and near_change:
        # Near an offset change, with the start's wall time near the change's, so
        # that daily/weekly/monthly/hourly wall times fall into gaps and folds.
        change = draw(st.sampled_from(changes))
        start = change - timedelta(days=draw(st.integers(0, 40)), seconds=draw(st.integers(-7200, 7200)))
        after = change - timedelta(seconds=draw(st.integers(0, 3 * 86400)))
    else:
        start = draw(_PLAIN).replace(tzinfo=UTC)
        after = start + timedelta(seconds=draw(st.integers(-86400, 400 * 86400)))
    start = start.replace(microsecond=0)
    if draw(st.booleans()):
        start = start.replace(second=0)
    finish = None
    if draw(st.integers(0, 3)) == 0:
        finish = max(start, after) + timedelta(seconds=draw(st.integers(1, 30 * 86400)))
    kind = draw(_KINDS)
    extra: dict[str, object] = {}
    if kind == "every":
        extra["interval"] = timedelta(seconds=draw(_INTERVALS))
    elif kind == "weekly":
        extra["weekdays"] = tuple(draw(_WEEKDAY_SETS))
    elif kind == "monthly":
        extra["month_day"] = draw(_MONTH_DAYS)
    elif kind == "cron":
        extra["cron"] = draw(_CRON)
    return Timing(kind=kind, zone=zone, start=start, finish=finish, **extra), after  # type: ignore[arg-type]


def wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def exists(w: datetime, tz: ZoneInfo) -> bool:
    # Through UTC: astimezone to the datetime's own zone would not convert at all.
    return wall(w.replace(tzinfo=tz).astimezone(UTC), tz) == w


def swallowed_by_gap_before(fire: datetime, w: datetime, tz: ZoneInfo) -> bool:
    """Whether wall time ``w`` lies in the gap that ends at ``fire``."""
    return not exists(w, tz) and wall(fire - timedelta(microseconds=1), tz) < w < wall(fire, tz)


def cron_matches(expr: str, w: datetime) -> bool:
    """cronsim, on naive wall times, as the independent matcher."""
    return next(CronSim(expr, w - timedelta(seconds=1))) == w


def candidate_day(t: Timing, fire: datetime) -> date:
    """The calendar day whose fixed wall time ``fire`` is; checks the gap rule on the way."""
    tz = t.tz
    clock = time(*t._time_of_day)  # noqa: SLF001 - the start's time of day
    w = wall(fire, tz)
    if w.time() == clock:
        return w.date()
    for day in (w.date(), w.date() - timedelta(days=1)):
        if swallowed_by_gap_before(fire, datetime.combine(day, clock), tz):
            return day
    raise AssertionError(f"{fire} ({w}) is neither at {clock} nor the end of a gap swallowing it")


def day_matches(t: Timing, day: date) -> bool:
    if t.kind == "daily":
        return True
    if t.kind == "weekly":
        return day.weekday() in t.weekdays
    last = calendar.monthrange(day.year, day.month)[1]
    assert t.month_day is not None
    return day.day == (last if t.month_day == LAST_DAY else min(t.month_day, last))


def check_wall(t: Timing, fire: datetime) -> None:
    tz = t.tz
    w = wall(fire, tz)
    if t.kind == "every":
        assert t.interval is not None
        assert (fire - t.start) % t.interval == timedelta(0)
    elif t.kind == "hourly":
        s = wall(t.start, tz)
        assert (w.minute, w.second, w.microsecond) == (s.minute, s.second, s.microsecond)
    elif t.kind in ("daily", "weekly", "monthly"):
        assert day_matches(t, candidate_day(t, fire))
    else:
        assert t.cron is not None
        if fire == t.start and cron_matches(t.cron, w):
            return
        if t.follows_clock:
            assert cron_matches(t.cron, w), (t.cron, w)
        elif not cron_matches(t.cron, w):
            # A fixed-time wall time swallowed by the gap that ends at this fire.
            before = wall(fire - timedelta(microseconds=1), tz)
            swallowed = next(CronSim(t.cron, before))
            assert swallowed_by_gap_before(fire, swallowed, tz), (t.cron, w, swallowed)


PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


@PROPERTY
@given(scenario())
def test_fires_are_ordered_bounded_and_match(case: tuple[Timing, datetime]) -> None:
    t, after = case
    fires = t.fires(after, 8)
    previous = after
    for fire in fires:
        assert fire > previous
        assert fire >= t.start
        assert t.finish is None or fire <= t.finish
        check_wall(t, fire)
        previous = fire
    if t.finish is None and t.kind != "cron":
        assert len(fires) == 8


@PROPERTY
@given(scenario())
def test_next_fire_between_fires_and_last_fire(case: tuple[Timing, datetime]) -> None:
    t, after = case
    fires = t.fires(after, 4)
    for a, b in zip(fires, fires[1:], strict=False):
        middle = a + (b - a) / 2
        assert t.next_fire(middle) == b
        assert t.next_fire(b - timedelta(microseconds=1)) == b
        assert t.last_fire(b) == b
        assert t.last_fire(b - timedelta(microseconds=1)) == a
        assert t.backlog(a, b) == (1, b)


@PROPERTY
@given(scenario())
def test_fixed_time_fires_once_per_calendar_day(case: tuple[Timing, datetime]) -> None:
    t, after = case
    if t.kind not in ("daily", "weekly", "monthly"):
        return
    t = Timing(kind=t.kind, zone=t.zone, start=t.start, weekdays=t.weekdays, month_day=t.month_day)
    days = [candidate_day(t, f) for f in t.fires(after, 6)]
    # Consecutive fires are consecutive matching days: none is lost, none doubled.
    for a, b in zip(days, days[1:], strict=False):
        expected = a + timedelta(days=1)
        while not day_matches(t, expected):
            expected += timedelta(days=1)
        assert b == expected


@PROPERTY
@given(scenario())
def test_first_fire_and_round_trip(case: tuple[Timing, datetime]) -> None:
    t, _ = case
    first = t.first_fire()
    if first is not None:
        assert first >= t.start
        assert t.next_fire(t.start - timedelta(days=400)) == first
        check_wall(t, first)
    back = Timing.from_dict(t.to_dict(), zone=t.zone, start=t.start, finish=t.finish)
    assert back == t


def test_a_new_recurring_request_never_starts_with_a_backlog() -> None:
    now = datetime(2026, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)
    every = parse_timing(TimingOptions(every="1s", start="2026-05-01T11:55:00+00:00"), now, "UTC")
    due = every.due_from(now)
    assert due == datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)  # the latest past fire, not 11:55
    assert every.backlog(due, now)[0] == 0
    daily = parse_timing(TimingOptions(daily=True, start="2026-05-01T11:59:40+00:00"), now, "UTC")
    assert daily.due_from(now) == datetime(2026, 5, 1, 11, 59, 40, tzinfo=UTC)  # within the grace: today
    late = parse_timing(TimingOptions(daily=True, start="2026-05-01T09:00:00+00:00"), now, "UTC")
    assert late.due_from(now) == datetime(2026, 5, 2, 9, 0, tzinfo=UTC)  # long past: tomorrow
