"""Commands for tasks: register, unregister, tasks."""

from __future__ import annotations

from typing import Annotated

import typer

from ..safetext import escape
from .app import app, open_store, print_json, stdout_console, utcnow
from .options import JsonOpt


@app.command()
def register(
    ctx: typer.Context,
    targets: Annotated[list[str], typer.Argument(metavar="MODULE_OR_FILE", help="Dotted module names or .py files.")],
    as_json: JsonOpt = False,
) -> None:
    """Import modules and record every task class they define (re-registering updates)."""
    from .. import registry, views

    collected = registry.collect(targets)  # import everything before touching the database
    with open_store(ctx, create=True) as store:
        results = registry.save(store, collected, utcnow())
    if as_json:
        print_json(
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
    with open_store(ctx) as store:
        count = store.unregister_task(task, utcnow())
    suffix = f"; unscheduled {count} request{'s' if count != 1 else ''}" if count else ""
    print(escape(f"unregistered {task}{suffix}"))


@app.command()
def tasks(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List registered tasks with their parameter fields and types."""
    from .. import views
    from . import render

    with open_store(ctx) as store:
        records = store.list_tasks()
    if as_json:
        print_json([views.task_json(t) for t in records])
    elif not records:
        print("no tasks registered; run `bgproc register MODULE`")
    else:
        stdout_console().print(render.tasks_table(records))

