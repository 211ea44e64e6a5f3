"""``bgproc monitor --follow``: a live view of executions until Ctrl-C."""

from __future__ import annotations

import time
from typing import Any

from . import monitor
from .clock import utcnow
from .store import Store

REFRESH_S = 0.25
REDRAW_S = 1.0  # elapsed times and progress move even when nothing is written


def follow_runs(store: Store, filters: dict[str, Any], console: Any) -> None:
    from rich.live import Live

    def render() -> Any:
        return monitor.runs_table(
            store.list_runs(**filters), utcnow(), title="Executions (Ctrl-C to stop)", width=console.width
        )

    marker = store.runs_changed_marker()
    drawn = time.monotonic()
    try:
        with Live(render(), console=console, auto_refresh=False, transient=False) as live:
            while True:
                time.sleep(REFRESH_S)
                current = store.runs_changed_marker()
                if current != marker or time.monotonic() - drawn >= REDRAW_S:
                    marker, drawn = current, time.monotonic()
                    live.update(render(), refresh=True)
    except KeyboardInterrupt:
        pass
