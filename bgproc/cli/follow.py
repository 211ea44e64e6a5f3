"""``bgproc monitor --follow``: live views until Ctrl-C (or SIGTERM).

On a terminal the view redraws in place. Piped to a file or another program,
the executions view prints a new table whenever runs change, and a single
run's view streams its log as it grows, then its final state: a pipe gets
everything, not only what a terminal would have shown last.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..clock import Clock
from ..safetext import escape, json_text
from ..store import Store
from . import render

REFRESH_S = 0.25
REDRAW_S = 1.0  # elapsed times and progress move even when nothing is written
SETTLE_S = 5.0  # how often a live view looks for runs whose daemon died


@contextmanager
def _until_stopped() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP (a closed terminal) like Ctrl-C, so a live view
    always restores the terminal and exits 0."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def follow_runs(store: Store, filters: dict[str, Any], console: Any, clock: Clock | None = None) -> None:
    """Executions, newest first, kept up to date."""
    from rich.live import Live

    clock = clock or Clock()
    pause = _pauser(store, clock)

    def table(runs: list[Any] | None = None) -> Any:
        return render.runs_table(
            store.list_runs(**filters) if runs is None else runs, clock.now(),
            title="Executions (Ctrl-C to stop)", width=console.width,
        )

    marker = store.changes()
    drawn = clock.monotonic()
    with _until_stopped():
        if not console.is_terminal:
            # Piped: a new table only when a run starts or ends, not on every
            # progress report or log line (those would flood a file).
            runs = store.list_runs(**filters)
            shown = _signature(runs)
            console.print(table(runs))
            while True:
                pause()
                current = store.changes()
                if current != marker:
                    marker = current
                    runs = store.list_runs(**filters)
                    if _signature(runs) != shown:
                        shown = _signature(runs)
                        console.print(table(runs))
        with Live(table(), console=console, auto_refresh=False, transient=False) as live:
            while True:
                pause()
                current = store.changes()
                if current != marker or clock.monotonic() - drawn >= REDRAW_S:
                    marker, drawn = current, clock.monotonic()
                    live.update(table(), refresh=True)


def follow_run(store: Store, run_id: int, console: Any, clock: Clock | None = None) -> None:
    """One execution, until it ends: its log as it grows, its progress, then its outcome."""
    from rich.live import Live

    clock = clock or Clock()
    pause = _pauser(store, clock)
    run = store.get_run(run_id)
    with _until_stopped():
        if not console.is_terminal:
            stream = _LogStream()
            progress: tuple[Any, ...] | None = None
            while True:
                text = stream.new_text(run)
                if text:
                    console.out(escape(text, lines=True), end="", highlight=False)
                if run.progress_done is not None and _progress_of(run) != progress:
                    progress = _progress_of(run)
                    console.print(f"[progress] {render.progress_line(run)}", highlight=False, markup=False)
                if run.status != "running":
                    ended = f"run {run.id} {run.status} after {render.duration_text(run.duration_s())}"
                    ended += f": {escape(run.detail)}" if run.detail else ""
                    console.print(ended, highlight=False, markup=False)
                    return
                pause()
                run = store.get_run(run_id)
        with Live(render.run_detail(run, clock.now()), console=console, auto_refresh=False) as live:
            while run.status == "running":
                pause()
                run = store.get_run(run_id)
                live.update(render.run_detail(run, clock.now()), refresh=True)


def follow_json(
    store: Store, filters: dict[str, Any], out: Any, run_id: int | None = None, clock: Clock | None = None
) -> None:
    """A stream for scripts: one JSON object per line (the ``monitor --json`` run
    object, without its log) for each run as it is first seen, and again whenever
    its status, progress or end changes. With ``run_id``, that run until it ends."""
    from .. import views

    clock = clock or Clock()
    pause = _pauser(store, clock)
    seen: dict[int, tuple[Any, ...]] = {}
    with _until_stopped():
        while True:
            runs = [store.get_run(run_id)] if run_id is not None else store.list_runs(**filters)
            # A run seen running that has left the list (--status running, or pushed
            # past --limit) still has its end to tell.
            listed = {run.id for run in runs}
            gone = [i for i, state in seen.items() if state[0] == "running" and i not in listed]
            runs += [store.get_run(i) for i in sorted(gone, reverse=True)]
            for run in sorted(runs, key=lambda r: r.id):  # oldest first, as things happened
                state = (run.status, run.ended_at, run.missed_count, *_progress_of(run))
                if seen.get(run.id) != state:
                    seen[run.id] = state
                    document = views.run_json(run, clock.now())
                    document.pop("log", None)
                    out.write(json_text(document) + "\n")
                    out.flush()
            if run_id is not None and runs and runs[0].status != "running":
                return
            pause()


def _pauser(store: Store, clock: Clock) -> Any:
    """Waits between looks; now and then also settles runs whose daemon died (with
    no daemon left to do it, a followed run would otherwise never end)."""
    from ..daemon import membership

    last = clock.monotonic()

    def pause() -> None:
        nonlocal last
        clock.sleep(REFRESH_S)
        if clock.monotonic() - last >= SETTLE_S:
            last = clock.monotonic()
            membership.settle(store, clock.now())

    return pause


def _signature(runs: list[Any]) -> list[tuple[Any, ...]]:
    """What a piped table shows that is worth a new table: which runs, and how they stand."""
    return [(r.id, r.status, r.ended_at) for r in runs]


def _progress_of(run: Any) -> tuple[Any, ...]:
    return (run.progress_done, run.progress_total, run.progress_message)


class _LogStream:
    """What of a run's stored log has not been shown yet.

    The head only grows; the tail is a window that rolls once the log passes
    its limit, so it is followed by its last shown line, and a gap is said.
    """

    def __init__(self) -> None:
        self.head_shown = 0
        self.last_tail_line: str | None = None
        self.dropped_said = 0

    def new_text(self, run: Any) -> str:
        head, tail = run.log_head or "", run.log_tail or ""
        out = head[self.head_shown:]
        self.head_shown = len(head)
        lines = _lines(tail)
        if not lines:
            return out
        start = 0
        if self.last_tail_line is not None:
            try:
                start = len(lines) - lines[::-1].index(self.last_tail_line)
            except ValueError:
                start = 0  # rolled past what was shown: some lines went unseen
        if run.log_dropped > self.dropped_said and (start == 0 or self.last_tail_line is None):
            out += f"[... {run.log_dropped - self.dropped_said} bytes of log dropped ...]\n"
            self.dropped_said = run.log_dropped
        out += "".join(lines[start:])
        self.last_tail_line = lines[-1]
        return out


def _lines(text: str) -> list[str]:
    """``text`` cut after each newline (only there: a U+2028 is inside a line)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines
