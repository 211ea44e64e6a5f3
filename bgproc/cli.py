"""The command line: parse, call one operation, render or print JSON.

Errors a user can cause become one line on stderr and a non-zero exit;
nothing here writes SQL or decides semantics.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from . import dbfaults
from .errors import BgprocError, TimingError
from .safetext import escape, json_text
from .timing import TimingOptions

app = typer.Typer(
    name="bgproc",
    help=(
        "Typed background tasks with an embedded scheduler and a process monitor.\n\n"
        "Register task classes, schedule process requests, run `bgproc daemon`, "
        "and watch executions with `bgproc monitor`. One SQLite file holds it all."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class State:
    db: Path | None


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            envvar="BGPROC_DB",
            metavar="PATH",
            help="Database file (default: bgproc.db in the user's data directory); refused in a "
            "directory others can write, or when another user owns it.",
        ),
    ] = None,
) -> None:
    ctx.obj = State(db)


@contextmanager
def _store(ctx: typer.Context, *, create: bool = False) -> Iterator[Any]:
    """The database; only commands that start something new may create it."""
    from .store import Store

    store = Store.open(ctx.obj.db if ctx.obj else None, create=create)
    try:
        yield store
    finally:
        store.close()


def _console() -> Any:
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    # Piped: no colours, and wide enough for a table unless COLUMNS says otherwise.
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 160
    return Console(width=width, color_system=None, soft_wrap=False)


def _print_json(document: Any) -> None:
    sys.stdout.write(json_text(document, indent=2) + "\n")


def _now() -> Any:
    from .clock import utcnow

    return utcnow()


def _zone(strict: bool = True) -> str:
    """The system's zone, for wall times given without --tz; an unusable ``TZ`` is
    refused, or with ``strict`` off passed over (/etc/localtime decides)."""
    from .localzone import system_zone_name, unusable_tz

    bad = unusable_tz()
    if bad is not None and strict:
        raise TimingError(
            f"TZ={bad!r} is not an IANA time zone name, so wall times cannot be read in it; "
            "pass --tz ZONE (such as Europe/Berlin), or set TZ to one"
        )
    return system_zone_name()


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


def _timing(
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


# ----------------------------------------------------------------------
# Tasks


@app.command()
def register(
    ctx: typer.Context,
    targets: Annotated[list[str], typer.Argument(metavar="MODULE_OR_FILE", help="Dotted module names or .py files.")],
    as_json: JsonOpt = False,
) -> None:
    """Import modules and record every task class they define (re-registering updates)."""
    from . import registry, views

    collected = registry.collect(targets)  # import everything before touching the database
    with _store(ctx, create=True) as store:
        results = registry.save(store, collected, _now())
    if as_json:
        _print_json(
            [
                {"module": r.module, "tasks": [views.task_json(t) for t in r.tasks], "unregistered": r.unregistered}
                for r in results
            ]
        )
        return
    for r in results:
        names = ", ".join(t.name for t in r.tasks)
        print(escape(f"registered {r.module}: {names}"))
        for name in r.unregistered:
            print(escape(f"  {name} is no longer in {r.module}: unregistered"))


@app.command()
def unregister(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(metavar="TASK", help="The task's name.")],
) -> None:
    """Remove a task from the registry; its scheduled requests are unscheduled, history stays."""
    with _store(ctx) as store:
        count = store.unregister_task(task, _now())
    suffix = f"; unscheduled {count} request{'s' if count != 1 else ''}" if count else ""
    print(escape(f"unregistered {task}{suffix}"))


@app.command()
def tasks(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List registered tasks with their parameter fields and types."""
    from . import monitor, views

    with _store(ctx) as store:
        records = store.list_tasks()
    if as_json:
        _print_json([views.task_json(t) for t in records])
    elif not records:
        print("no tasks registered; run `bgproc register MODULE`")
    else:
        _console().print(monitor.tasks_table(records))


# ----------------------------------------------------------------------
# Requests


@app.command(epilog=TIMING_HELP)
def schedule(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(metavar="TASK", help="Registered task name, or module:Class.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "-p", "--param", metavar="FIELD=VALUE", help="A parameter, converted by the field's type (repeat)."
        ),
    ] = None,
    params_json: Annotated[
        str | None, typer.Option("--params-json", metavar="JSON", help="Parameters as a JSON object.")
    ] = None,
    params_file: Annotated[
        Path | None, typer.Option("--params-file", metavar="FILE", help="Parameters from a JSON file ('-' for stdin).")
    ] = None,
    now: NowOpt = False,
    at: AtOpt = None,
    every: EveryOpt = None,
    hourly: HourlyOpt = False,
    daily: DailyOpt = False,
    weekly: WeeklyOpt = False,
    days: DaysOpt = None,
    monthly: MonthlyOpt = False,
    day: DayOpt = None,
    cron: CronOpt = None,
    start: StartOpt = None,
    finish: FinishOpt = None,
    tz: TzOpt = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout", metavar="DURATION", help="Stop a run after this long (90s, 5m, 1h30m; default: the task's)."
        ),
    ] = None,
    allow_overlap: Annotated[
        bool, typer.Option("--allow-overlap", help="Start a run even while the previous one is still going.")
    ] = False,
    retries: RetriesOpt = None,
    retry_delay: RetryDelayOpt = None,
    recover: RecoverOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", metavar="NAME", help="Who makes the request (default: the OS user).")
    ] = None,
    dry_run: DryRunOpt = False,
    count: DryRunCountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a process request: run TASK now, later, or on a schedule. Prints the request id."""
    from . import requests, views

    shown = _fires_shown(count, dry_run)
    text = _params_text(params_json, params_file)
    options = _timing(now, at, every, hourly, daily, weekly, days, monthly, day, cron, start, finish, tz)
    moment = _now()
    with _store(ctx) as store:
        planned = requests.plan(
            store,
            task,
            now=moment,
            # --now reads no wall time: an unusable TZ need not stop it
            default_zone=tz if tz is not None else _zone(strict=options.chosen() not in ([], ["--now"])),
            pairs=param or [],
            params_json=text,
            timing=options,
            timeout=timeout,
            allow_overlap=allow_overlap,
            user=user,
            count=shown,
            retries=retries,
            retry_delay=retry_delay,
            recover=recover,
        )
        if dry_run:
            preview = _preview(planned, moment)
            if as_json:
                _print_json(views.plan_json(preview, planned.next_fires, planned.timing.zone))
            else:
                what = f"{planned.task.name}, {planned.timing.describe()}"
                _show_dry_run(what, planned.next_fires, planned.timing.zone)
            return
        record = requests.create(store, planned, moment)
    if as_json:
        _print_json(views.request_json(record))
    else:
        print(record.id)


def _params_text(params_json: str | None, params_file: Path | None) -> str | None:
    if params_json is not None and params_file is not None:
        raise BgprocError("give --params-json or --params-file, not both")
    if params_file is None:
        return params_json
    from .params import read_limited

    try:
        if str(params_file) == "-":
            return read_limited(sys.stdin.buffer, "--params-file - (stdin)")
        with params_file.open("rb") as source:
            return read_limited(source, f"--params-file {params_file}")
    except (OSError, UnicodeDecodeError) as exc:
        raise BgprocError(f"cannot read --params-file {params_file}: {getattr(exc, 'strerror', None) or exc}") from None


def _preview(planned: Any, now: Any) -> dict[str, Any]:
    """The request object that schedule would write (id null)."""
    from . import views
    from .records import RequestRecord

    record = RequestRecord(
        id=0,
        task=planned.task.name,
        params=planned.params,
        timing=planned.timing,
        status="scheduled",
        next_run_at=planned.next_fires[0] if planned.next_fires else None,
        timeout_s=planned.timeout_s,
        allow_overlap=planned.allow_overlap,
        user=planned.user,
        created_at=now,
        updated_at=now,
        retries=planned.retries,
        retry_delay_s=planned.retry_delay_s,
        recover=planned.recover,
        task_policy=planned.task.policy(),
    )
    document = views.request_json(record)
    document["id"] = None
    return document


def _show_dry_run(what: str, fires: list[Any], zone: str) -> None:
    from . import monitor

    console = _console()
    console.print(escape(f"dry run: {what}; nothing written"), markup=False, highlight=False)
    console.print(monitor.fires_table(fires, zone, "Next fires"))


def _fires_shown(count: int | None, dry_run: bool) -> int:
    """How many fires a dry run shows; ``-n`` without ``--dry-run`` is a mistake."""
    if count is not None and not dry_run:
        raise BgprocError("-n sets how many fires --dry-run shows; add --dry-run or drop -n")
    return count or 5


@app.command()
def requests(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Include unscheduled and complete requests.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List process requests with their timing, status and next run."""
    from . import monitor, views

    with _store(ctx) as store:
        records = store.list_requests(include_all=show_all)
    if as_json:
        _print_json([views.request_json(r) for r in records])
    elif not records:
        print("no scheduled requests" + ("" if show_all else "; `--all` shows the others"))
    else:
        console = _console()
        console.print(monitor.requests_table(records, width=console.width))


@app.command()
def unschedule(
    ctx: typer.Context,
    requests: Annotated[
        list[int],
        typer.Argument(metavar="REQUEST...", min=1, max=MAX_ID, help="One or more request ids."),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Stop future runs of requests; a run in progress finishes; history stays.

    Several ids are unscheduled together, or none of them when one cannot be.
    """
    from . import requests as ops
    from . import views

    with _store(ctx) as store:
        records = ops.unschedule_all(store, requests, _now())
    if as_json:
        docs = [views.request_json(r) for r in records]
        _print_json(docs[0] if len(requests) == 1 else docs)
    else:
        for record in records:
            print(f"request {record.id} unscheduled")


@app.command(epilog=TIMING_HELP)
def reschedule(
    ctx: typer.Context,
    request: RequestArg,
    now: RescheduleNowOpt = False,
    at: AtOpt = None,
    every: EveryOpt = None,
    hourly: HourlyOpt = False,
    daily: DailyOpt = False,
    weekly: WeeklyOpt = False,
    days: DaysOpt = None,
    monthly: MonthlyOpt = False,
    day: DayOpt = None,
    cron: CronOpt = None,
    start: StartOpt = None,
    finish: FinishOpt = None,
    tz: TzOpt = None,
    retries: RetriesOpt = None,
    retry_delay: RetryDelayOpt = None,
    recover: RecoverOpt = None,
    dry_run: DryRunOpt = False,
    count: DryRunCountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Schedule a request again, optionally with a new timing; or change how its runs
    are retried and recovered (--retries, --retry-delay, --recover)."""
    from . import requests as ops
    from . import views

    shown = _fires_shown(count, dry_run)
    options = _timing(now, at, every, hourly, daily, weekly, days, monthly, day, cron, start, finish, tz)
    policy = ops.retry_policy(retries, retry_delay, recover)
    moment = _now()
    with _store(ctx) as store:
        # The request's own zone is kept unless --tz is given: no default is needed.
        if dry_run:
            timing, next_at = ops.plan_reschedule(store, request, moment, tz or "UTC", options, policy)
            current = dataclasses.replace(store.get_request(request), **policy)
        else:
            record = ops.reschedule(store, request, moment, tz or "UTC", options, policy)
    if dry_run:
        from . import monitor

        fires = timing.fires_from(next_at, shown)
        if as_json:
            after = dataclasses.replace(current, status="scheduled", timing=timing, next_run_at=next_at)
            _print_json(views.plan_json(views.request_json(after), fires, timing.zone))
        else:
            _show_dry_run(f"request {request} would be {timing.describe()}", fires, timing.zone)
        return
    if as_json:
        _print_json(views.request_json(record))
    else:
        from . import monitor

        nxt = monitor.zoned_time(record.next_run_at, record.timing.zone)
        followed = f"; {monitor.policy_text(record.policy())}" if policy else ""
        print(escape(f"request {record.id} scheduled: {record.timing.describe()}; next run {nxt}{followed}"))


@app.command("run")
def run_command(
    ctx: typer.Context,
    request: RequestArg,
    as_json: JsonOpt = False,
) -> None:
    """Run a request once, now, outside its timing (reason `manual`); its schedule is unchanged."""
    from . import requests as ops
    from . import views

    moment = _now()
    with _store(ctx) as store:
        record = ops.run_now(store, request, moment)
        running = [] if record.allow_overlap else store.list_runs(request_id=request, status="running", limit=1)
    if as_json:
        _print_json(views.request_json(record))
        return
    if record.manual_at is not None and record.manual_at < moment:  # an earlier ask still stands
        print(f"request {record.id}: a manual run was already waiting; still one")
    elif running:
        print(f"request {record.id}: a manual run is due; it starts when run {running[0].id} ends")
    else:
        print(f"request {record.id}: a manual run is due now")


@app.command()
def upcoming(
    ctx: typer.Context,
    request: RequestArg,
    count: Annotated[int, typer.Option("-n", min=1, max=1000, metavar="N", help="How many fires.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Show the next fires of a stored request."""
    from . import monitor, views

    with _store(ctx) as store:
        record = store.get_request(request)
    fires = []
    if record.status == "scheduled" and record.next_run_at is not None:
        fires = record.timing.fires_from(record.next_run_at, count)
    if as_json:
        _print_json(views.plan_json(views.request_json(record), fires, record.timing.zone))
    elif not fires:
        print(f"request {record.id} is {record.status}; it has no upcoming fires")
    else:
        _console().print(
            monitor.fires_table(fires, record.timing.zone, escape(f"Request {record.id}: {record.timing.describe()}"))
        )


# ----------------------------------------------------------------------
# Runs


@app.command("monitor")
def monitor_command(
    ctx: typer.Context,
    run: Annotated[
        int | None, typer.Argument(metavar="RUN", min=1, max=MAX_ID, help="Show one execution in full.")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", metavar="TASK", help="Only runs of this task.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", metavar="STATUS", help="Only runs with this status.")
    ] = None,
    request: Annotated[
        int | None, typer.Option("--request", metavar="REQUEST", min=1, max=MAX_ID, help="Only runs of this request.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="WHEN", help="Only runs since WHEN: ISO 8601, or a duration back from now (1h, 1h30m)."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100_000, metavar="N", help="At most this many runs.")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep updating until Ctrl-C; with RUN, until the run ends.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show executions, newest first: process, start, end, duration, status and log."""
    from . import monitor, views
    from .records import RUN_STATUSES

    if status is not None and status not in RUN_STATUSES:
        raise BgprocError(f"--status {status!r} is not a run status; use one of {', '.join(RUN_STATUSES)}")
    since_at = _parse_since(since) if since is not None else None
    with _store(ctx) as store:
        from . import orphans

        if run is not None:
            store.get_run(run)  # an unknown id is refused before anything is written
        orphans.settle(store, _now())
        filters = {"task": task, "status": status, "request_id": request, "since": since_at, "limit": limit}
        if follow and as_json:
            from .follow import follow_json

            follow_json(store, filters, sys.stdout, run_id=run)
            return
        if run is not None and follow:
            from .follow import follow_run

            follow_run(store, run, _console())
            return
        if run is not None:
            record = store.get_run(run)
            if as_json:
                _print_json(views.run_json(record, _now()))
            else:
                _console().print(monitor.run_detail(record, _now()))
            return
        if follow:
            from .follow import follow_runs

            follow_runs(store, filters, _console())
            return
        records = store.list_runs(**filters, with_log=as_json)
        if as_json:
            moment = _now()
            _print_json([views.run_json(r, moment) for r in records])
        elif not records:
            filtered = any(v is not None for k, v in filters.items() if k != "limit")
            print("no executions match these filters" if filtered else "no executions yet")
        else:
            console = _console()
            console.print(monitor.runs_table(records, _now(), width=console.width))


def _parse_since(text: str) -> Any:
    """ISO 8601, or a duration back from now (``1h``, ``-30m``, ``1h30m``, ``90``)."""
    from zoneinfo import ZoneInfo

    from .timing import is_duration, parse_duration, parse_when

    now = _now()
    back = text.strip().removeprefix("-")
    try:
        if not back.startswith("+") and is_duration(back):
            return now - parse_duration(back, "--since", least="zero")
        since = parse_when(text, now, ZoneInfo(_zone()), "--since")
    except OverflowError:
        raise BgprocError(f"--since {text!r} reaches before year 1; give a later time") from None
    except TimingError as exc:
        if "is not a date-time" not in str(exc) and "is not a relative time" not in str(exc):
            raise  # well formed but impossible, in a DST gap, out of range: said as it is
        raise TimingError(
            f"--since {text!r} is not a time; write ISO 8601 (2026-05-01T09:30, local wall time, "
            "or with an offset) or a duration back from now (1h, 30m, 2d, 1h30m)"
        ) from None
    if since > now:
        raise TimingError(f"--since {text!r} is in the future; give a past time or a duration back from now (1h)")
    return since


@app.command()
def cancel(
    ctx: typer.Context,
    run: Annotated[int, typer.Argument(metavar="RUN", min=1, max=MAX_ID, help="The run id.")],
) -> None:
    """Ask the daemon to stop a running execution (it becomes cancelled)."""
    from . import orphans

    with _store(ctx) as store:
        store.get_run(run)  # an unknown id is refused before anything is written
        orphans.settle(store, _now())  # a run whose daemon is gone cannot be cancelled
        store.request_cancel(run, _now())
    print(f"run {run}: cancel requested")


@app.command()
def daemon(
    ctx: typer.Context,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=1024, metavar="N", help="Runs at once (default: the number of CPUs)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, wait for it, exit.")] = False,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, metavar="SECONDS", help="On SIGTERM/SIGINT, how long running runs may finish."),
    ] = 30.0,
    kill_after: Annotated[
        float,
        typer.Option("--kill-after", min=0, metavar="SECONDS", help="After SIGTERM to a run, how long before SIGKILL."),
    ] = 5.0,
    log_limit: Annotated[
        int,
        typer.Option(
            "--log-limit", min=1024, max=1 << 30, metavar="BYTES", help="Process log kept per run (head and tail)."
        ),
    ] = 1024 * 1024,
    spare: Annotated[
        bool, typer.Option("--spare/--no-spare", help="Keep one worker started ahead, so a run starts in milliseconds.")
    ] = True,
    startup_timeout: Annotated[
        float,
        typer.Option(
            "--startup-timeout", min=1, metavar="SECONDS",
            help="How long a worker may take to start its task (imports, loading); the timeout counts from then.",
        ),
    ] = 60.0,
) -> None:
    """Run due work, each run in its own subprocess, until stopped (or --once)."""
    import os

    from .daemon import TEST_CONFIG_ENV, Daemon, DaemonConfig, overrides_for_tests

    try:
        intervals, hostname = overrides_for_tests(os.environ.get(TEST_CONFIG_ENV, ""))
    except ValueError as exc:
        raise BgprocError(f"{exc}; unset it (it is for bgproc's own tests)") from None
    config = DaemonConfig(
        workers=workers or os.cpu_count() or 1,
        once=once,
        grace_s=grace,
        kill_after_s=kill_after,
        log_limit=log_limit,
        spare=spare,
        startup_timeout_s=startup_timeout,
        **intervals,  # type: ignore[arg-type]
    )
    with _store(ctx, create=True) as store:
        code = Daemon(store, config, hostname=hostname).run()
    raise typer.Exit(code)


@app.command()
def demo(
    ctx: typer.Context,
    delay: Annotated[float, typer.Option("--delay", min=0, metavar="SECONDS", help="The sample task's wait.")] = 3.0,
) -> None:
    """Register the sample, schedule it, run the daemon once, and show the monitor."""
    from .demo import run_demo
    from .store import Store

    # Without --db or BGPROC_DB the demo keeps to its own file in the current directory.
    path = ctx.obj.db if ctx.obj and ctx.obj.db else Path("bgproc-demo.db")
    with Store.open(path) as store:
        code = run_demo(store, delay, _console())
    raise typer.Exit(code)


# ----------------------------------------------------------------------
# Entry point


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"bgproc: {message}\n")
    raise SystemExit(code)


# Typer now carries its own copy of click, so find click's exception classes
# through what typer exports rather than importing click.
_USAGE_ERROR: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
# Raised for `bgproc` alone by click 8.2+; older versions print the help themselves.
_NO_ARGS_IS_HELP: Any = getattr(sys.modules[_USAGE_ERROR.__module__], "NoArgsIsHelpError", ())


@functools.cache
def _command() -> Any:
    return typer.main.get_command(app)


def run(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors are one line on stderr)."""
    command = _command()
    args = sys.argv[1:] if argv is None else argv
    try:
        result = command.main(args=args, prog_name="bgproc", standalone_mode=False)
    except _NO_ARGS_IS_HELP as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n")
        return 0
    except _USAGE_ERROR as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "bgproc"
        message = _one_line(exc.format_message()).rstrip(".")
        sys.stderr.write(f"bgproc: error: {message} (see `{escape(command)} --help`)\n")
        return 2
    except typer.Abort:
        sys.stderr.write("bgproc: aborted\n")
        return 130
    except BgprocError as exc:
        sys.stderr.write(f"bgproc: error: {_one_line(str(exc))}\n")
        return exc.exit_code
    except sqlite3.Error as exc:
        fault = dbfaults.classify(exc)
        if fault is None:
            raise  # a bug in bgproc: its traceback is what helps
        sys.stderr.write(f"bgproc: error: {fault.explain()}\n")
        return 1
    except BrokenPipeError:
        return 0
    return result if isinstance(result, int) else 0


def _one_line(message: str) -> str:
    """A message on one line: ASCII whitespace runs folded to a space, and what a
    user or a task wrote in it (a bidi override, a U+2028, an escape sequence)
    shown escaped rather than obeyed."""
    return escape(re.sub(r"[ \t\n\r\f\v]+", " ", message).strip())


def main() -> None:
    sys.exit(run())
