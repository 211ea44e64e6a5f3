"""Rendering of tasks, requests and runs for the terminal (rich). No database access.

Logs, names, descriptions and details are untrusted text: control, format and
separator characters are shown escaped (``safetext.escape``), never sent to the
terminal, and nothing in them is read as markup.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..reruns import RetryPolicy, attempt_text
from ..safetext import escape
from ..store.records import RequestRecord, RunRecord, TaskRecord
from ..timing import format_duration

STATUS_STYLE = {
    "running": "bold cyan",
    "success": "green",
    "error": "bold red",
    "timeout": "red",
    "cancelled": "yellow",
    "interrupted": "magenta",
    "skipped": "dim",
    "missed": "dim yellow",
    "scheduled": "cyan",
    "unscheduled": "dim",
    "complete": "green",
}
def status_text(status: str | None) -> Text:
    if status is None:
        return Text("-", style="dim")
    return Text(status, style=STATUS_STYLE.get(status, ""))


def local_time(value: datetime | None, zone: str | None = None, *, date: bool = True, label: bool = False) -> str:
    """An instant as wall time in ``zone`` (default: the system's), with the zone's
    abbreviation at that instant when ``label`` (EST and EDT tell the hours apart)."""
    if value is None:
        return "-"
    shown = value.astimezone(ZoneInfo(zone or _system_zone()))
    text = shown.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
    return f"{text} {shown.tzname()}" if label else text


def _system_zone() -> str:
    from ..localzone import system_zone_name

    return system_zone_name()


def times_in() -> str:
    """Says which zone the unlabelled times of a table are in."""
    return f"times in {_system_zone()}"


def duration_text(seconds: float | None) -> str:
    """A table cell: ``2m 05s``, or ``-`` for none."""
    return "-" if seconds is None else format_duration(seconds, "compact")


def tasks_table(tasks: list[TaskRecord]) -> Table:
    table = Table(title="Registered tasks", title_justify="left", expand=False)
    table.add_column("task", style="bold")
    table.add_column("parameters")
    table.add_column("timeout", justify="right")
    table.add_column("import path", style="dim")
    table.add_column("description")
    for task in tasks:
        fields = []
        for f in task.fields:
            text = f"{f['name']}: {f['type']}"
            if not f["required"]:
                text += f" = {f.get('default')!r}"
            fields.append(escape(text))
        table.add_row(
            Text(escape(task.name)), Text("\n".join(fields) or "-"), duration_text(task.timeout_s),
            Text(escape(task.import_path)), Text(escape(task.description)),
        )
    return table


def requests_table(requests: list[RequestRecord], width: int = 160) -> Table:
    """Requests with their timing in words; on narrow terminals the last run and
    the dates give way so that the timing stays readable."""
    compact = width < 110
    table = Table(title="Process requests", title_justify="left")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("task", style="bold", no_wrap=True, overflow="ellipsis", max_width=20 if compact else 28)
    table.add_column("timing")
    table.add_column("status", no_wrap=True)
    table.add_column("next run", no_wrap=True)
    if not compact:
        table.add_column("last run", no_wrap=True)
    for r in requests:
        cells: list[RenderableType] = [
            str(r.id), Text(escape(r.task)), Text(escape(r.timing.describe())), status_text(r.status),
            next_run_text(r, short=compact),
        ]
        if not compact:
            last = status_text(r.last_run_status)
            if r.last_run_at is not None:
                last.append(f" {zoned_time(r.last_run_at, r.timing.zone, short=True)}", style="dim")
            cells.append(last)
        table.add_row(*cells)
    return table


def next_run_text(request: RequestRecord, *, short: bool = False) -> str:
    """When a request runs next: its next fire, or the retry or recovery waiting
    if that comes first, said as such."""
    follow_up = request.follow_up_at
    if follow_up is not None and (request.next_run_at is None or follow_up <= request.next_run_at):
        return f"{zoned_time(follow_up, request.timing.zone, short=short)} ({request.follow_up_reason})"
    return zoned_time(request.next_run_at, request.timing.zone, short=short)


def zoned_time(value: datetime | None, zone: str, *, short: bool = False) -> str:
    if value is None:
        return "-"
    shown = value.astimezone(ZoneInfo(zone))
    return f"{shown:%m-%d %H:%M} {shown.tzname()}" if short else f"{shown:%Y-%m-%d %H:%M:%S} {shown.tzname()}"


def fires_table(fires: list[datetime], zone: str, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column(f"fire ({zone})")
    table.add_column("offset", style="dim")
    for i, fire in enumerate(fires, 1):
        shown = fire.astimezone(ZoneInfo(zone))
        table.add_row(str(i), f"{shown:%a %Y-%m-%d %H:%M:%S} {shown.tzname()}", shown.strftime("%z"))
    return table


def runs_table(runs: list[RunRecord], now: datetime, title: str = "Executions", width: int = 160) -> Table:
    """Executions, newest first. Columns give way to ``width`` in order (pid and
    request, then the end time and the date), and the log gets what is left."""
    wide, compact = width >= 125, width < 100
    task_w = min(16 if compact else 28, max([4, *(len(escape(r.task)) for r in runs)]))
    id_w = max([3, *(len(str(r.id)) for r in runs)])
    fixed = [id_w, task_w, 11, 14 if compact else 19, 8] + ([] if compact else [8]) + ([id_w, 7] if wide else [])
    log_w = max(10, width - sum(w + 3 for w in fixed) - 4)
    table = Table(title=f"{title} · {times_in()}", title_justify="left")
    table.add_column("run", justify="right", no_wrap=True)
    if wide:
        table.add_column("req", justify="right", no_wrap=True)
    table.add_column("task", style="bold", no_wrap=True, overflow="ellipsis", max_width=task_w)
    table.add_column("status", no_wrap=True, min_width=11)
    if wide:
        table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("started" if not compact else "started/slot", no_wrap=True)
    if not compact:
        table.add_column("ended", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("log / progress", overflow="ellipsis", no_wrap=True, max_width=log_w)
    for run in runs:
        cells: list[RenderableType] = [str(run.id)]
        if wide:
            cells.append(str(run.request_id))
        cells += [Text(escape(run.task)), _status_with_attempt(run)]
        if wide:
            cells.append(str(run.pid) if run.pid else "-")
        cells.append(_started(run, compact))
        if not compact:
            cells.append(local_time(run.ended_at, date=False) if run.ended_at and run.started_at else "-")
        cells += [duration_text(run.duration_s(now)), _last_column(run)]
        table.add_row(*cells)
    return table


def _status_with_attempt(run: RunRecord) -> Text:
    """The status, and for a run that may be retried or is a retry, ``2/4`` (attempt
    2 of 4); a recovery run says so."""
    text = status_text(run.status)
    if run.reason == "recovery":
        text.append(" recovery", style="dim")
    elif run.retries or run.attempt > 1:
        text.append(f" {run.attempt}/{max(run.retries + 1, run.attempt)}", style="dim")
    return text


def policy_text(policy: RetryPolicy) -> str:
    """``retries 3 (first after 30s); recover`` or ``no retries; no recovery``."""
    retries = (
        f"retries {policy.retries} (first after {duration_text(policy.retry_delay_s)})"
        if policy.retries else "no retries"
    )
    return f"{retries}; {'recover' if policy.recover else 'no recovery'}"


def _started(run: RunRecord, compact: bool) -> Text:
    """When it started; a slot that never ran shows its planned time, dimmed."""
    value = run.started_at or run.planned_at
    if value is None:
        return Text("-")
    shown = value.astimezone()
    text = shown.strftime("%m-%d %H:%M:%S" if compact else "%Y-%m-%d %H:%M:%S")
    return Text(text, style="" if run.started_at else "dim")


def _last_column(run: RunRecord) -> RenderableType:
    if run.status == "running" and run.progress_done is not None:
        return _progress(run)
    if run.status in ("skipped", "missed"):
        return Text(escape(run.detail or ""), style="dim")
    line = last_line(run.log_tail or run.log_head or "")
    if not line and run.detail:
        return Text(escape(run.detail), style="dim")
    return Text(line)


def progress_numbers(run: RunRecord) -> tuple[float, float | None]:
    """(done, total) as reported, with what cannot be shown (inf, NaN) left out."""
    done, total = run.progress_done or 0.0, run.progress_total
    if total is not None and not math.isfinite(total):
        total = None
    if not math.isfinite(done):
        done = 0.0
    return done, total


def progress_line(run: RunRecord) -> str:
    """Progress as one line of text: ``3/4 (75%) step 3``."""
    done, total = progress_numbers(run)
    text = f"{done:g}/{total:g} ({100 * done / total:.0f}%)" if total else f"{done:g} done"
    message = escape(run.progress_message or "")
    return f"{text} {message}" if message else text


def _progress(run: RunRecord) -> RenderableType:
    done, total = progress_numbers(run)
    grid = Table.grid(padding=(0, 1))
    if total:
        grid.add_row(
            ProgressBar(total=total, completed=min(done, total), width=20),
            Text(f"{100 * done / total:3.0f}%"),
            Text(escape(run.progress_message or "")),
        )
    else:
        grid.add_row(Text(f"{done:g} done"), Text(escape(run.progress_message or "")))
    return grid


_STAMP = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} ")


def last_line(log: str) -> str:
    """The log's last non-empty line, without its timestamp. Lines end at newlines
    only: a U+2028 inside a line is part of it (and shown escaped)."""
    for line in reversed(log.split("\n")):
        text = _STAMP.sub("", line).strip()
        if text:
            return escape(text)
    return ""


def run_detail(run: RunRecord, now: datetime) -> RenderableType:
    props = Table.grid(padding=(0, 2))
    props.add_column(style="bold")
    props.add_column()
    rows: list[tuple[str, RenderableType]] = [
        ("run", str(run.id)),
        ("request", str(run.request_id)),
        ("task", Text(escape(run.task))),
        ("status", status_text(run.status)),
        ("reason", Text(escape(run.reason or "-"))),
        *_attempt_rows(run),
        ("planned", local_time(run.planned_at, label=True)),
        ("started", local_time(run.started_at, label=True)),
        ("ended", local_time(run.ended_at, label=True)),
        ("duration", duration_text(run.duration_s(now))),
        ("lateness", duration_text(run.lateness_s())),
        ("process", f"pid {run.pid}" if run.pid else "-"),
        ("exit", _exit_text(run)),
        ("cpu", f"{run.cpu_s:.3f}s" if run.cpu_s is not None else "-"),
        ("peak memory", f"{run.max_rss_kb / 1024:.1f} MiB" if run.max_rss_kb else "-"),
        ("host", Text(escape(run.host or "-"))),
        ("daemon", Text(escape(run.daemon_id or "-"))),
    ]
    if run.detail:
        rows.append(("detail", Text(escape(run.detail))))
    if run.missed_count and run.status == "skipped":
        rows.append(("skipped", f"{run.missed_count + 1} slots, up to {local_time(run.missed_until, label=True)}"))
    elif run.missed_count:
        rows.append(("missed", f"{run.missed_count} slot(s) until {local_time(run.missed_until, label=True)}"))
    if run.progress_done is not None:
        rows.append(("progress", _progress(run)))
    for key, value in rows:
        props.add_row(key, value)
    log = escape(run.log.rstrip("\n"), lines=True) if run.log else ""
    title = "process log"
    if run.log_dropped:
        title += f" ({run.log_dropped} bytes dropped from the middle)"
    return Group(props, Panel(Text(log or "(empty)", style="" if log else "dim"), title=title, title_align="left"))


def _attempt_rows(run: RunRecord) -> list[tuple[str, RenderableType]]:
    """"attempt 2 of 4, retries run 17" and "followed by run 18 (retry)", where they apply."""
    rows: list[tuple[str, RenderableType]] = []
    if run.retries or run.attempt > 1 or run.retry_of is not None:
        rows.append(("attempt", attempt_text(run.attempt, run.retries, run.reason, run.retry_of)))
    if run.followed_by is not None:
        how = "recovery" if run.status == "interrupted" else "retry"
        rows.append(("followed by", f"run {run.followed_by} ({how})"))
    return rows


def _exit_text(run: RunRecord) -> str:
    if run.signal:
        import signal

        try:
            name = signal.Signals(run.signal).name
        except ValueError:
            name = str(run.signal)
        return f"killed by {name}"
    return "-" if run.exit_code is None else f"code {run.exit_code}"
