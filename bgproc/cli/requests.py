"""Commands for process requests: schedule, requests, unschedule, reschedule,
run, upcoming."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import BgprocError
from ..safetext import escape
from .app import app, open_store, print_json, stdout_console, system_zone, utcnow
from .options import (
    MAX_ID,
    TIMING_HELP,
    AtOpt,
    CronOpt,
    DailyOpt,
    DayOpt,
    DaysOpt,
    DryRunCountOpt,
    DryRunOpt,
    EveryOpt,
    FinishOpt,
    HourlyOpt,
    JsonOpt,
    MonthlyOpt,
    NowOpt,
    RecoverOpt,
    RequestArg,
    RescheduleNowOpt,
    RetriesOpt,
    RetryDelayOpt,
    StartOpt,
    TzOpt,
    WeeklyOpt,
    timing_options,
)


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
    from .. import requests, views

    shown = _fires_shown(count, dry_run)
    text = _params_text(params_json, params_file)
    options = timing_options(now, at, every, hourly, daily, weekly, days, monthly, day, cron, start, finish, tz)
    moment = utcnow()
    with open_store(ctx) as store:
        planned = requests.plan(
            store,
            task,
            now=moment,
            # --now reads no wall time: an unusable TZ need not stop it
            default_zone=tz if tz is not None else system_zone(strict=options.chosen() not in ([], ["--now"])),
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
                print_json(views.plan_json(preview, planned.next_fires, planned.timing.zone))
            else:
                what = f"{planned.task.name}, {planned.timing.describe()}"
                _show_dry_run(what, planned.next_fires, planned.timing.zone)
            return
        record = requests.create(store, planned, moment)
    if as_json:
        print_json(views.request_json(record))
    else:
        print(record.id)


def _params_text(params_json: str | None, params_file: Path | None) -> str | None:
    if params_json is not None and params_file is not None:
        raise BgprocError("give --params-json or --params-file, not both")
    if params_file is None:
        return params_json
    from ..params import read_limited

    try:
        if str(params_file) == "-":
            return read_limited(sys.stdin.buffer, "--params-file - (stdin)")
        with params_file.open("rb") as source:
            return read_limited(source, f"--params-file {params_file}")
    except (OSError, UnicodeDecodeError) as exc:
        raise BgprocError(f"cannot read --params-file {params_file}: {getattr(exc, 'strerror', None) or exc}") from None


def _preview(planned: Any, now: Any) -> dict[str, Any]:
    """The request object that schedule would write (id null)."""
    from .. import views
    from ..store.records import RequestRecord

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
    from . import render

    console = stdout_console()
    console.print(escape(f"dry run: {what}; nothing written"), markup=False, highlight=False)
    console.print(render.fires_table(fires, zone, "Next fires"))


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
    from .. import views
    from . import render

    with open_store(ctx) as store:
        records = store.list_requests(include_all=show_all)
    if as_json:
        print_json([views.request_json(r) for r in records])
    elif not records:
        print("no scheduled requests" + ("" if show_all else "; `--all` shows the others"))
    else:
        console = stdout_console()
        console.print(render.requests_table(records, width=console.width))


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
    from .. import requests as ops
    from .. import views

    with open_store(ctx) as store:
        records = ops.unschedule_all(store, requests, utcnow())
    if as_json:
        docs = [views.request_json(r) for r in records]
        print_json(docs[0] if len(requests) == 1 else docs)
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
    from .. import requests as ops
    from .. import views

    shown = _fires_shown(count, dry_run)
    options = timing_options(now, at, every, hourly, daily, weekly, days, monthly, day, cron, start, finish, tz)
    policy = ops.retry_policy(retries, retry_delay, recover)
    moment = utcnow()
    with open_store(ctx) as store:
        # The request's own zone is kept unless --tz is given: no default is needed.
        if dry_run:
            timing, next_at = ops.plan_reschedule(store, request, moment, tz or "UTC", options, policy)
            current = dataclasses.replace(store.get_request(request), **policy)
        else:
            record = ops.reschedule(store, request, moment, tz or "UTC", options, policy)
    if dry_run:
        fires = timing.fires_from(next_at, shown)
        if as_json:
            after = dataclasses.replace(current, status="scheduled", timing=timing, next_run_at=next_at)
            print_json(views.plan_json(views.request_json(after), fires, timing.zone))
        else:
            _show_dry_run(f"request {request} would be {timing.describe()}", fires, timing.zone)
        return
    if as_json:
        print_json(views.request_json(record))
    else:
        from . import render

        nxt = render.zoned_time(record.next_run_at, record.timing.zone)
        followed = f"; {render.policy_text(record.policy())}" if policy else ""
        print(escape(f"request {record.id} scheduled: {record.timing.describe()}; next run {nxt}{followed}"))


@app.command("run")
def run_command(
    ctx: typer.Context,
    request: RequestArg,
    as_json: JsonOpt = False,
) -> None:
    """Run a request once, now, outside its timing (reason `manual`); its schedule is unchanged."""
    from .. import requests as ops
    from .. import views

    moment = utcnow()
    with open_store(ctx) as store:
        record = ops.run_now(store, request, moment)
        running = [] if record.allow_overlap else store.list_runs(request_id=request, status="running", limit=1)
    if as_json:
        print_json(views.request_json(record))
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
    from .. import views
    from . import render

    with open_store(ctx) as store:
        record = store.get_request(request)
    fires = []
    if record.status == "scheduled" and record.next_run_at is not None:
        fires = record.timing.fires_from(record.next_run_at, count)
    if as_json:
        print_json(views.plan_json(views.request_json(record), fires, record.timing.zone))
    elif not fires:
        print(f"request {record.id} is {record.status}; it has no upcoming fires")
    else:
        stdout_console().print(
            render.fires_table(fires, record.timing.zone, escape(f"Request {record.id}: {record.timing.describe()}"))
        )

