"""The Typer app, its root options, and what every command shares: the database
it opens, the console it renders to, JSON on stdout, the time and the zone."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import TimingError
from ..safetext import json_text

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

    from ..store import Store

app = typer.Typer(
    name="bgproc",
    help=(
        "Typed background tasks with an embedded scheduler and a process monitor.\n\n"
        "Register task classes, schedule process requests, run `bgproc daemon`, "
        "and watch executions with `bgproc monitor`. One SQLite file holds it all "
        "(or, for daemons on several hosts, one PostgreSQL database)."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class State:
    db: str | None


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="BGPROC_DB",
            metavar="PATH_OR_URL",
            help="Database: a file path or sqlite:///ABSOLUTE/PATH (default: bgproc.db in the user's data "
            "directory; refused in a directory others can write, or when another user owns it), or "
            "postgresql://USER@HOST:PORT/DBNAME (the postgres extra).",
        ),
    ] = None,
) -> None:
    if db is not None and not db.strip():
        # An empty BGPROC_DB is unset (click passes None); an empty or blank --db is a slip.
        source = ctx.get_parameter_source("db")
        from_env = source is not None and source.name == "ENVIRONMENT"
        raise typer.BadParameter(
            f"{db!r} is {'blank' if db else 'empty'}; give a database file path or sqlite:///ABSOLUTE/PATH"
            + (", or unset BGPROC_DB" if from_env else ", or leave --db out")
            + " for the default (bgproc.db in the user's data directory)",
            param_hint="BGPROC_DB" if from_env else "'--db'",
        )
    ctx.obj = State(db)


def db_target(ctx: typer.Context) -> str | None:
    """The database that --db or BGPROC_DB names (a path or a URL), if any."""
    state: State | None = ctx.obj
    return state.db if state else None


@contextmanager
def open_store(ctx: typer.Context, *, create: bool = False) -> Iterator[Store]:
    """The database; only commands that start something new may create it."""
    from .. import store as stores

    store = stores.open_store(db_target(ctx), create=create)
    try:
        yield store
    finally:
        store.close()


def stdout_console() -> Console:
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    # Piped: no colours, and wide enough for a table unless COLUMNS says otherwise.
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 160
    return Console(width=width, color_system=None, soft_wrap=False)


def print_json(document: Any) -> None:
    sys.stdout.write(json_text(document, indent=2) + "\n")


def utcnow() -> datetime:
    from ..clock import utcnow

    return utcnow()


def system_zone(strict: bool = True) -> str:
    """The system's zone, for wall times given without --tz; an unusable ``TZ`` is
    refused, or with ``strict`` off passed over (/etc/localtime decides)."""
    from ..localzone import system_zone_name, unusable_tz

    bad = unusable_tz()
    if bad is not None and strict:
        raise TimingError(
            f"TZ={bad!r} is not an IANA time zone name, so wall times cannot be read in it; "
            "pass --tz ZONE (such as Europe/Berlin), or set TZ to one"
        )
    return system_zone_name()
