"""DST rules pinned with exact instants, for the 2026 transitions of three zones.

Europe/Berlin        2026-03-29 02:00 CET  -> 03:00 CEST (gap 02:00-03:00)
                     2026-10-25 03:00 CEST -> 02:00 CET  (02:00-03:00 twice)
America/New_York     2026-03-08 02:00 EST  -> 03:00 EDT  (gap 02:00-03:00)
                     2026-11-01 02:00 EDT  -> 01:00 EST  (01:00-02:00 twice)
Australia/Lord_Howe  2026-04-05 02:00 +11  -> 01:30 +10:30 (01:30-02:00 twice)
                     2026-10-04 02:00 +10:30 -> 02:30 +11  (gap 02:00-02:30)

Fixed-time timings (daily, weekly, monthly, cron with a fixed minute and hour)
fire once: at the first instant after a gap that swallows their wall time, and
at the first occurrence of a repeated one. Timings that follow the clock
(hourly, cron whose minute or hour starts with '*')
fire at every real instant whose wall time matches: nothing in a gap, both
passes of a fold. --every is elapsed time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bgproc.timing import Timing

BERLIN, NEW_YORK, LORD_HOWE = "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"


def timing(kind: str, zone: str, start: str, **extra: object) -> Timing:
    return Timing(kind=kind, zone=zone, start=datetime.fromisoformat(start), **extra)  # type: ignore[arg-type]


def fires(t: Timing, after: str, n: int) -> list[str]:
    tz = ZoneInfo(t.zone)
    return [f.astimezone(tz).isoformat() for f in t.fires(datetime.fromisoformat(after), n)]


# Each case: (timing, after, expected fires in the zone's local time with offset).
CASES = {
    # ------------------------------------------------------------------ Berlin
    "berlin daily spring": (
        timing("daily", BERLIN, "2026-03-20T02:30+01:00"), "2026-03-27T12:00+01:00",
        ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    "berlin daily fall": (
        timing("daily", BERLIN, "2026-10-20T02:30+02:00"), "2026-10-23T12:00+02:00",
        ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    ),
    "berlin weekly spring": (
        timing("weekly", BERLIN, "2026-03-15T02:15+01:00"), "2026-03-16T00:00+01:00",
        ["2026-03-22T02:15:00+01:00", "2026-03-29T03:00:00+02:00", "2026-04-05T02:15:00+02:00"],
    ),
    "berlin weekly fall": (
        timing("weekly", BERLIN, "2026-10-18T02:15+02:00", weekdays=(5, 6)), "2026-10-24T00:00+02:00",
        ["2026-10-24T02:15:00+02:00", "2026-10-25T02:15:00+02:00", "2026-10-31T02:15:00+01:00"],
    ),
    "berlin monthly spring": (
        timing("monthly", BERLIN, "2026-01-29T02:45+01:00"), "2026-02-01T00:00+01:00",
        # No 29 February in 2026: the last day, the 28th.
        ["2026-02-28T02:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-04-29T02:45:00+02:00"],
    ),
    "berlin monthly fall": (
        timing("monthly", BERLIN, "2026-09-25T02:45+02:00"), "2026-10-01T00:00+02:00",
        ["2026-10-25T02:45:00+02:00", "2026-11-25T02:45:00+01:00"],
    ),
    "berlin hourly spring": (
        timing("hourly", BERLIN, "2026-03-01T00:30+01:00"), "2026-03-29T00:00+01:00",
        ["2026-03-29T00:30:00+01:00", "2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00",
         "2026-03-29T04:30:00+02:00"],
    ),
    "berlin hourly fall": (
        timing("hourly", BERLIN, "2026-10-01T00:30+02:00"), "2026-10-25T00:00+02:00",
        ["2026-10-25T00:30:00+02:00", "2026-10-25T01:30:00+02:00", "2026-10-25T02:30:00+02:00",
         "2026-10-25T02:30:00+01:00", "2026-10-25T03:30:00+01:00"],
    ),
    "berlin cron fixed spring": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="30 2 * * *"), "2026-03-28T12:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    "berlin cron fixed fall": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="30 2 * * *"), "2026-10-24T12:00+02:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    ),
    # Two fixed times swallowed by the same gap fire once, at its end.
    "berlin cron fixed list in gap": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="0,30 2 * * *"), "2026-03-29T00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    "berlin cron fixed with seconds spring": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="15 30 2 * * *"), "2026-03-28T12:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:15+02:00"],
    ),
    "berlin cron wildcard spring": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="*/30 * * * *"), "2026-03-29T01:00+01:00",
        ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"],
    ),
    "berlin cron wildcard fall": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="*/30 * * * *"), "2026-10-25T01:45+02:00",
        ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
         "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"],
    ),
    # A wildcard minute in a fixed hour follows the clock: nothing in the gap ...
    "berlin cron wildcard minute in gap hour": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="*/20 2 * * *"), "2026-03-28T12:00+01:00",
        ["2026-03-30T02:00:00+02:00"],
    ),
    # ... and both passes of the repeated hour.
    "berlin cron wildcard minute in fold hour": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="*/20 2 * * *"), "2026-10-25T00:00+02:00",
        ["2026-10-25T02:00:00+02:00", "2026-10-25T02:20:00+02:00", "2026-10-25T02:40:00+02:00",
         "2026-10-25T02:00:00+01:00", "2026-10-25T02:20:00+01:00", "2026-10-25T02:40:00+01:00",
         "2026-10-26T02:00:00+01:00"],
    ),
    # A star step in the hour follows the clock too.
    "berlin cron hour step spring": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="0 */2 * * *"), "2026-03-29T00:30+01:00",
        ["2026-03-29T04:00:00+02:00"],
    ),
    "berlin cron hour step fall": (
        timing("cron", BERLIN, "2026-01-01T00:00+01:00", cron="0 */2 * * *"), "2026-10-25T01:30+02:00",
        ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T04:00:00+01:00"],
    ),
    "berlin every": (
        timing("every", BERLIN, "2026-03-28T00:00+01:00", interval=timedelta(hours=1)),
        "2026-03-29T00:00+01:00",
        ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
    ),
    "berlin every fall": (
        timing("every", BERLIN, "2026-10-24T00:00+02:00", interval=timedelta(minutes=40)),
        "2026-10-25T02:00+02:00",
        ["2026-10-25T02:40:00+02:00", "2026-10-25T02:20:00+01:00", "2026-10-25T03:00:00+01:00"],
    ),
    # --------------------------------------------------------------- New York
    "new york daily spring": (
        timing("daily", NEW_YORK, "2026-03-01T02:30-05:00"), "2026-03-07T12:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    "new york daily fall": (
        timing("daily", NEW_YORK, "2026-10-25T01:30-04:00"), "2026-10-31T12:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    "new york weekly spring": (
        timing("weekly", NEW_YORK, "2026-03-01T02:00-05:00", weekdays=(6,)), "2026-03-02T00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-15T02:00:00-04:00"],
    ),
    "new york weekly fall": (
        timing("weekly", NEW_YORK, "2026-10-25T01:00-04:00"), "2026-10-26T00:00-04:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-08T01:00:00-05:00"],
    ),
    "new york monthly spring": (
        timing("monthly", NEW_YORK, "2026-02-08T02:59:59-05:00"), "2026-02-09T00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-04-08T02:59:59-04:00"],
    ),
    "new york monthly fall": (
        timing("monthly", NEW_YORK, "2026-10-01T01:59-04:00"), "2026-10-02T00:00-04:00",
        ["2026-11-01T01:59:00-04:00", "2026-12-01T01:59:00-05:00"],
    ),
    "new york hourly spring": (
        timing("hourly", NEW_YORK, "2026-03-01T00:05-05:00"), "2026-03-08T00:30-05:00",
        ["2026-03-08T01:05:00-05:00", "2026-03-08T03:05:00-04:00"],
    ),
    "new york hourly fall": (
        timing("hourly", NEW_YORK, "2026-10-01T00:05-04:00"), "2026-11-01T00:30-04:00",
        ["2026-11-01T01:05:00-04:00", "2026-11-01T01:05:00-05:00", "2026-11-01T02:05:00-05:00"],
    ),
    "new york cron fixed spring": (
        timing("cron", NEW_YORK, "2026-01-01T00:00-05:00", cron="30 2 * * *"), "2026-03-07T12:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    "new york cron fixed fall": (
        timing("cron", NEW_YORK, "2026-01-01T00:00-05:00", cron="30 1 * * *"), "2026-10-31T12:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    "new york cron wildcard spring": (
        timing("cron", NEW_YORK, "2026-01-01T00:00-05:00", cron="*/15 * * * *"), "2026-03-08T01:30-05:00",
        ["2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00"],
    ),
    "new york cron wildcard fall": (
        timing("cron", NEW_YORK, "2026-01-01T00:00-05:00", cron="*/15 * * * *"), "2026-11-01T01:30-04:00",
        ["2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:15:00-05:00",
         "2026-11-01T01:30:00-05:00", "2026-11-01T01:45:00-05:00", "2026-11-01T02:00:00-05:00"],
    ),
    "new york cron wildcard hour fall": (
        timing("cron", NEW_YORK, "2026-01-01T00:00-05:00", cron="30 * * * *"), "2026-11-01T00:00-04:00",
        ["2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00",
         "2026-11-01T02:30:00-05:00"],
    ),
    # ------------------------------------------------------------ Lord Howe
    "lord howe daily spring": (
        timing("daily", LORD_HOWE, "2026-09-01T02:15+10:30"), "2026-10-03T12:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    "lord howe daily fall": (
        timing("daily", LORD_HOWE, "2026-03-01T01:45+11:00"), "2026-04-04T12:00+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    ),
    "lord howe weekly spring": (
        timing("weekly", LORD_HOWE, "2026-09-27T02:00+10:30"), "2026-09-28T00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-11T02:00:00+11:00"],
    ),
    "lord howe weekly fall": (
        timing("weekly", LORD_HOWE, "2026-03-29T01:30+11:00"), "2026-03-30T00:00+11:00",
        ["2026-04-05T01:30:00+11:00", "2026-04-12T01:30:00+10:30"],
    ),
    "lord howe monthly spring": (
        timing("monthly", LORD_HOWE, "2026-09-04T02:29+10:30"), "2026-09-05T00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-11-04T02:29:00+11:00"],
    ),
    "lord howe monthly fall": (
        timing("monthly", LORD_HOWE, "2026-03-05T01:59+11:00"), "2026-03-06T00:00+11:00",
        ["2026-04-05T01:59:00+11:00", "2026-05-05T01:59:00+10:30"],
    ),
    # Minute 15 of the hour: wall 02:15 does not exist on 2026-10-04.
    "lord howe hourly spring": (
        timing("hourly", LORD_HOWE, "2026-09-01T00:15+10:30"), "2026-10-04T00:30+10:30",
        ["2026-10-04T01:15:00+10:30", "2026-10-04T03:15:00+11:00"],
    ),
    # Minute 45: 02:45 exists, half a real hour after 01:45.
    "lord howe hourly spring late minute": (
        timing("hourly", LORD_HOWE, "2026-09-01T00:45+10:30"), "2026-10-04T00:50+10:30",
        ["2026-10-04T01:45:00+10:30", "2026-10-04T02:45:00+11:00", "2026-10-04T03:45:00+11:00"],
    ),
    "lord howe hourly fall": (
        timing("hourly", LORD_HOWE, "2026-03-01T00:45+11:00"), "2026-04-05T00:50+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-05T01:45:00+10:30", "2026-04-05T02:45:00+10:30"],
    ),
    "lord howe hourly fall early minute": (
        timing("hourly", LORD_HOWE, "2026-03-01T00:15+11:00"), "2026-04-05T00:50+11:00",
        ["2026-04-05T01:15:00+11:00", "2026-04-05T02:15:00+10:30"],
    ),
    "lord howe cron fixed spring": (
        timing("cron", LORD_HOWE, "2026-01-01T00:00+11:00", cron="15 2 * * *"), "2026-10-03T12:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    "lord howe cron fixed fall": (
        timing("cron", LORD_HOWE, "2026-01-01T00:00+11:00", cron="40 1 * * *"), "2026-04-04T12:00+11:00",
        ["2026-04-05T01:40:00+11:00", "2026-04-06T01:40:00+10:30"],
    ),
    "lord howe cron wildcard spring": (
        timing("cron", LORD_HOWE, "2026-01-01T00:00+11:00", cron="*/20 * * * *"), "2026-10-04T01:30+10:30",
        ["2026-10-04T01:40:00+10:30", "2026-10-04T02:40:00+11:00", "2026-10-04T03:00:00+11:00"],
    ),
    "lord howe cron wildcard fall": (
        timing("cron", LORD_HOWE, "2026-01-01T00:00+11:00", cron="*/20 * * * *"), "2026-04-05T01:30+11:00",
        ["2026-04-05T01:40:00+11:00", "2026-04-05T01:40:00+10:30", "2026-04-05T02:00:00+10:30"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dst_table(name: str) -> None:
    t, after, expected = CASES[name]
    assert fires(t, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("zone", "start", "inside_second_pass", "expected"),
    [
        # Fixed-time: asked from inside the second pass of the repeated hour, the
        # day's fire (already given in the first pass) is not repeated.
        (BERLIN, "2026-10-20T02:30+02:00", "2026-10-25T02:10+01:00", "2026-10-26T02:30:00+01:00"),
        (NEW_YORK, "2026-10-20T01:30-04:00", "2026-11-01T01:10-05:00", "2026-11-02T01:30:00-05:00"),
        (LORD_HOWE, "2026-03-20T01:45+11:00", "2026-04-05T01:35+10:30", "2026-04-06T01:45:00+10:30"),
    ],
)
def test_fixed_time_is_not_repeated_in_the_second_pass(
    zone: str, start: str, inside_second_pass: str, expected: str
) -> None:
    t = timing("daily", zone, start)
    assert fires(t, inside_second_pass, 1) == [expected]


def test_start_in_the_second_pass_fires_at_the_start() -> None:
    # --daily --start at the repeated 02:30: the time of day comes from the start, and
    # the start matches it, so the start is the first fire; the next day follows.
    t = timing("daily", BERLIN, "2026-10-25T02:30+01:00")
    assert t.first_fire() == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert fires(t, "2026-10-25T00:00+02:00", 2) == ["2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"]


def test_fires_are_utc_instants() -> None:
    t = timing("daily", NEW_YORK, "2026-03-01T02:30-05:00")
    fire = t.next_fire(datetime.fromisoformat("2026-03-07T12:00-05:00"))
    assert fire == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert fire is not None and fire.tzinfo is UTC
