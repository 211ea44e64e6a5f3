"""Options and arguments that several commands share: ids, --json, --dry-run,
the timing options of `schedule` and `reschedule`, and their retry options."""

from __future__ import annotations

from typing import Annotated

import typer

from ..timing import TimingOptions

MAX_ID = 2**63 - 1  # SQLite's largest integer: larger ids are refused, not overflowed
RequestArg = Annotated[int, typer.Argument(metavar="REQUEST", min=1, max=MAX_ID, help="The request id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Check everything, write nothing, show the next fires.")]
DryRunCountOpt = Annotated[
    int | None, typer.Option("-n", min=1, max=1000, metavar="N", help="How many fires --dry-run shows (default 5).")
]

# Timing options, shared by `schedule` and `reschedule`.
NowOpt = Annotated[
    bool, typer.Option("--now", help="Run once, as soon as a daemon can (the default).", rich_help_panel="Timing")
]
RescheduleNowOpt = Annotated[
    bool, typer.Option("--now", help="Run once, as soon as a daemon can.", rich_help_panel="Timing")
]
AtOpt = Annotated[str | None, typer.Option("--at", metavar="WHEN", help="Run once, at WHEN.", rich_help_panel="Timing")]
EveryOpt = Annotated[
    str | None,
    typer.Option(
        "--every",
        metavar="DURATION",
        help="Every DURATION of elapsed time (30s, 90, 5m, 1.5h, 1h30m, 3d; whole seconds).",
        rich_help_panel="Timing",
    ),
]
HourlyOpt = Annotated[
    bool, typer.Option("--hourly", help="Every hour at the minute and second of --start.", rich_help_panel="Timing")
]
DailyOpt = Annotated[
    bool, typer.Option("--daily", help="Every day at the time of day of --start.", rich_help_panel="Timing")
]
WeeklyOpt = Annotated[
    bool,
    typer.Option("--weekly", help="Every week on --days (default: the weekday of --start).", rich_help_panel="Timing"),
]
DaysOpt = Annotated[
    str | None,
    typer.Option("--days", metavar="mon,fri|mon-fri", help="Weekdays for --weekly.", rich_help_panel="Timing"),
]
MonthlyOpt = Annotated[
    bool,
    typer.Option("--monthly", help="Every month on --day (default: the day of --start).", rich_help_panel="Timing"),
]
DayOpt = Annotated[
    str | None,
    typer.Option(
        "--day",
        metavar="N|last",
        help="Day of the month for --monthly; past the month's end it fires on the last day.",
        rich_help_panel="Timing",
    ),
]
CronOpt = Annotated[
    str | None,
    typer.Option(
        "--cron", metavar="EXPR", help="A cron expression: 5 fields, or 6 with seconds first.", rich_help_panel="Timing"
    ),
]
StartOpt = Annotated[
    str | None,
    typer.Option(
        "--start",
        metavar="WHEN",
        help="First possible fire of a recurring timing (default: now).",
        rich_help_panel="Timing",
    ),
]
FinishOpt = Annotated[
    str | None,
    typer.Option(
        "--finish",
        metavar="WHEN",
        help="No fires after WHEN; the request then becomes complete.",
        rich_help_panel="Timing",
    ),
]
TzOpt = Annotated[
    str | None,
    typer.Option(
        "--tz", metavar="ZONE", help="IANA zone of wall times (default: the system's zone).", rich_help_panel="Timing"
    ),
]

# Retries and recovery, shared by `schedule` and `reschedule`.
RetriesOpt = Annotated[
    int | None,
    typer.Option(
        "--retries", min=0, max=1000, metavar="N",
        help="Retry a run that ends in error or timeout up to N times (default: the task's, else 0).",
    ),
]
RetryDelayOpt = Annotated[
    str | None,
    typer.Option(
        "--retry-delay", metavar="DURATION",
        help="Wait before the first retry (30s, 5m), doubled at each, up to 1h (default: the task's, else 30s).",
    ),
]
RecoverOpt = Annotated[
    bool | None,
    typer.Option(
        "--recover/--no-recover",
        help="Start a run again, once, if its daemon died or stopped while it ran (default: the task's, else no).",
    ),
]

TIMING_HELP = """
WHEN is ISO 8601 with or without an offset (without one it is wall time in
--tz), or relative to now: +90s, +5m, +2h, +1d, +1h30m.

Time and DST: daily, weekly, monthly and cron expressions with a fixed
minute and hour fire at wall-clock times in the request's zone. A wall time
that a spring-forward gap skips fires once, at the first instant after the
gap (30 2 * * * in America/New_York on 2026-03-08 fires at 03:00 EDT); one
that occurs twice at fall-back fires once, at its first occurrence.
--hourly and cron expressions whose minute or hour field starts with *
(*/15 * * * *, 0 */3 * * *) follow the clock: they fire at every real
instant whose wall time matches, so */15 * * * * fires every 15 real
minutes through both transitions. --every is elapsed time and ignores DST.
"""


def timing_options(
    now: bool,
    at: str | None,
    every: str | None,
    hourly: bool,
    daily: bool,
    weekly: bool,
    days: str | None,
    monthly: bool,
    day: str | None,
    cron: str | None,
    start: str | None,
    finish: str | None,
    tz: str | None,
) -> TimingOptions:
    """The timing options as given (one call for `schedule` and `reschedule`)."""
    return TimingOptions(
        now=now,
        at=at,
        every=every,
        hourly=hourly,
        daily=daily,
        weekly=weekly,
        days=days,
        monthly=monthly,
        day=day,
        cron=cron,
        start=start,
        finish=finish,
        tz=tz,
    )

