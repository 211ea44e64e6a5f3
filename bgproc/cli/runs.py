"""Commands for runs: monitor (tables, one run, --follow) and cancel."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ..errors import BgprocError, TimingError
from .app import app, open_store, print_json, stdout_console, system_zone, utcnow
from .options import MAX_ID, JsonOpt


@app.command("monitor")
def monitor_command(
    ctx: typer.Context,
    run: Annotated[
        int | None, typer.Argument(metavar="RUN", min=1, max=MAX_ID, help="Show one execution in full.")
    ] = None,
    task: Annotated[list[str] | None, typer.Option("--task", metavar="TASK", help="Only runs of this task.")] = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", metavar="STATUS", help="Only runs with this status.")
    ] = None,
    request: Annotated[
        list[int] | None,
        typer.Option("--request", metavar="REQUEST", min=1, max=MAX_ID, help="Only runs of this request."),
    ] = None,
    since: Annotated[
        list[str] | None,
        typer.Option(
            "--since", metavar="WHEN", help="Only runs since WHEN: ISO 8601, or a duration back from now (1h, 1h30m)."
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", metavar="HOST", help="Only runs recorded by a daemon on this host (its exact name)."),
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
    from .. import views
    from . import render

    given = {"--task": task, "--status": status, "--request": request, "--since": since, "--host": host}
    _check_once(given)
    limit_source = ctx.get_parameter_source("limit")
    if limit_source is not None and limit_source.name != "DEFAULT":
        given["--limit"] = [limit]
    _check_run_alone(run, given)
    task_, status_, request_, since_, host_ = (_single(v) for v in (task, status, request, since, host))
    _check_filters(task_, status_, host_)
    since_at = _parse_since(since_) if since_ is not None else None
    with open_store(ctx) as store:
        from ..daemon import membership

        if run is not None:
            store.get_run(run)  # an unknown id is refused before anything is written
        membership.settle(store, utcnow())
        filters: dict[str, Any] = {
            "task": task_, "status": status_, "request_id": request_, "since": since_at, "host": host_, "limit": limit,
        }
        if follow and as_json:
            from .follow import follow_json

            follow_json(store, filters, sys.stdout, run_id=run)
            return
        if run is not None and follow:
            from .follow import follow_run

            follow_run(store, run, stdout_console())
            return
        if run is not None:
            record = store.get_run(run)
            if as_json:
                print_json(views.run_json(record, utcnow()))
            else:
                stdout_console().print(render.run_detail(record, utcnow()))
            return
        if follow:
            from .follow import follow_runs

            follow_runs(store, filters, stdout_console())
            return
        records = store.list_runs(**filters, with_log=as_json)
        if as_json:
            moment = utcnow()
            print_json([views.run_json(r, moment) for r in records])
        elif not records:
            filtered = any(v is not None for k, v in filters.items() if k != "limit")
            print("no executions match these filters" if filtered else "no executions yet")
        else:
            console = stdout_console()
            console.print(render.runs_table(records, utcnow(), width=console.width))


def _check_once(given: dict[str, list[Any] | None]) -> None:
    """Each filter at most once: a second would silently replace the first."""
    for option, values in given.items():
        if values is not None and len(values) > 1:
            shown = " ".join(f"{option} {v}" for v in values)
            raise BgprocError(
                f"{option} is given {len(values)} times ({shown}); give it once: each filter takes one value"
            )


def _check_run_alone(run: int | None, given: dict[str, list[Any] | None]) -> None:
    """With RUN, monitor shows that run: a filter would be silently ignored."""
    filters = [option for option, values in given.items() if values]
    if run is not None and filters:
        raise BgprocError(
            f"`bgproc monitor {run}` shows that one run, so {', '.join(filters)} would be ignored; "
            f"drop {'it' if len(filters) == 1 else 'them'}, or drop RUN to list runs with "
            f"{'that filter' if len(filters) == 1 else 'those filters'}"
        )


def _single(values: list[Any] | None) -> Any:
    return values[0] if values else None


def _check_filters(task: str | None, status: str | None, host: str | None) -> None:
    from ..store.records import RUN_STATUSES

    if task is not None and not task.strip():
        raise BgprocError("--task is empty; give a task's name as `bgproc tasks` lists it")
    if status is not None and status not in RUN_STATUSES:
        raise BgprocError(f"--status {status!r} is not a run status; use one of {', '.join(RUN_STATUSES)}")
    if host is not None and not host.strip():
        raise BgprocError("--host is empty; give a host name as `bgproc monitor RUN` shows it")


def _parse_since(text: str) -> Any:
    """ISO 8601, or a duration back from now (``1h``, ``-30m``, ``1h30m``, ``90``)."""
    from zoneinfo import ZoneInfo

    from ..timing import is_duration, parse_duration, parse_when

    now = utcnow()
    back = text.strip().removeprefix("-")
    try:
        if not back.startswith("+") and is_duration(back):
            return now - parse_duration(back, "--since", least="zero")
        since = parse_when(text, now, ZoneInfo(system_zone()), "--since")
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
    from ..daemon import membership

    with open_store(ctx) as store:
        store.get_run(run)  # an unknown id is refused before anything is written
        membership.settle(store, utcnow())  # a run whose daemon is gone cannot be cancelled
        store.request_cancel(run, utcnow())
    print(f"run {run}: cancel requested")

