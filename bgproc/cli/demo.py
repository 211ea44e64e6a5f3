"""``bgproc demo``: the sample, end to end, in under a minute.

Registers ``sample_tasks.activities``, schedules ``BackgroundActivityCreator``,
runs a daemon until it is done, then shows the monitor and the activity row
the task inserted.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import registry, requests
from ..clock import utcnow
from ..daemon import Daemon, DaemonConfig
from ..localzone import system_zone_name
from ..store import RunRecord, Store, shown
from ..task import APP_DB_ENV, application_db
from . import render

TITLE = "Activity created by background task"
# The sample task's timeout is 300 s: its wait plus a minute to start and write fits in it.
MAX_DELAY_S = 240.0


def _sample_target() -> str:
    """The sample module: from the current directory, else beside the bgproc sources."""
    if (Path.cwd() / "sample_tasks" / "activities.py").is_file():
        return "sample_tasks.activities"
    beside = Path(__file__).resolve().parents[2] / "sample_tasks" / "activities.py"
    if beside.is_file():
        return str(beside)
    return "sample_tasks.activities"  # fails with the registry's clear message


DEMO_APP_DB = "bgproc-demo-app.db"


def run_demo(store: Store, delay_s: float, console: Any) -> int:
    now = utcnow()
    where = f"database {shown(store.target)}"
    if store.path is None and not os.environ.get(APP_DB_ENV):
        # On a server the sample's own rows go to a file beside the demo, as BGPROC_APP_DB would say.
        os.environ[APP_DB_ENV] = os.path.abspath(DEMO_APP_DB)
        where += f"; application database {DEMO_APP_DB}"
    console.print(f"[bold]1.[/] bgproc register sample_tasks.activities   ({where})")
    for result in registry.register(store, [_sample_target()], now):
        console.print(f"   registered {result.module}: {', '.join(t.name for t in result.tasks)}")

    console.print(
        f'[bold]2.[/] bgproc schedule BackgroundActivityCreator -p title="{TITLE}" -p delay_s={delay_s:g}'
    )
    planned = requests.plan(
        store, "BackgroundActivityCreator", now=now, default_zone=system_zone_name(),
        pairs=[f"title={TITLE}", f"delay_s={delay_s}"],
    )
    request = requests.create(store, planned, now)
    console.print(f"   request {request.id}: {request.timing.describe()}")

    console.print("[bold]3.[/] bgproc daemon --once")
    sys.stderr.flush()
    Daemon(store, DaemonConfig(workers=2, once=True)).run()

    console.print(f"[bold]4.[/] bgproc monitor --request {request.id}")
    runs = store.list_runs(request_id=request.id, limit=5)
    console.print(render.runs_table(runs, utcnow(), width=console.width))
    if runs:
        console.print(render.run_detail(store.get_run(runs[0].id), utcnow()))

    run = runs[0] if runs else None
    # Only this run's own row: a failed run created none, whatever earlier demos left.
    rows = _created_activities(store, run) if run is not None and run.status == "success" else []
    ok = bool(rows)
    if rows:
        row = rows[0]
        console.print(
            f"[bold]5.[/] the activity row: id {row['id']}, category {row['category']!r}, created {row['created_at']}"
        )
    else:
        console.print(f"[bold]5.[/] no activity row: the run {'ended ' + run.status if run else 'did not start'}")
    console.print(
        ("[green]demo succeeded[/]" if ok else "[red]demo failed[/]")
        + f"; explore with: bgproc --db {shown(store.target)} monitor"
    )
    return 0 if ok else 1


def _created_activities(store: Store, run: RunRecord) -> list[dict[str, Any]]:
    """The activity row ``run`` created, read from the application database (the
    sample application's own table, not bgproc's): the newest with the demo's
    title created while the run ran, so never one an earlier demo left."""
    import sqlite_utils

    app_db = application_db(store.path, os.environ.get(APP_DB_ENV))
    if app_db is None or run.started_at is None or run.ended_at is None:
        return []
    app = sqlite_utils.Database(app_db)
    try:
        table = app["activities"]
        if not table.exists():
            return []
        rows = table.rows_where("title = ?", [TITLE], order_by="created_at desc")
        return [row for row in rows if _created_within(row, run.started_at, run.ended_at)][:1]
    finally:
        app.close()


def _created_within(row: dict[str, Any], start: datetime, end: datetime) -> bool:
    try:
        created = datetime.fromisoformat(str(row.get("created_at")))
    except ValueError:
        return False
    return created.tzinfo is not None and start <= created <= end
