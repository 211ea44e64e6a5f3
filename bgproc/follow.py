"""``bgproc monitor --follow``: a live view of executions until Ctrl-C."""

from __future__ import annotations

from typing import Any

from . import monitor
from .clock import Clock
from .store import Store

REFRESH_S = 0.25
REDRAW_S = 1.0  # elapsed times and progress move even when nothing is written


def follow_runs(store: Store, filters: dict[str, Any], console: Any, clock: Clock | None = None) -> None:
    from rich.live import Live

    clock = clock or Clock()

    def render() -> Any:
        return monitor.runs_table(
            store.list_runs(**filters), clock.now(), title="Executions (Ctrl-C to stop)", width=console.width
        )

    marker = store.runs_changed_marker()
    drawn = clock.monotonic()
    try:
        with Live(render(), console=console, auto_refresh=False, transient=False) as live:
            while True:
                clock.sleep(REFRESH_S)
                current = store.runs_changed_marker()
                if current != marker or clock.monotonic() - drawn >= REDRAW_S:
                    marker, drawn = current, clock.monotonic()
                    live.update(render(), refresh=True)
    except KeyboardInterrupt:
        pass
