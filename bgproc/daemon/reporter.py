"""What the daemon tells its operator: one line per event on stderr, and a live
status line when stderr is a terminal.

The status line is redrawn only when its text changes (no spinner), so an
idle daemon in a terminal stays idle.
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

from ..clock import Clock
from ..safetext import escape

_CLEAR = "\r\x1b[2K"


class Reporter:
    def __init__(
        self, stream: TextIO | None = None, *, live: bool | None = None, clock: Clock | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.clock = clock or Clock()
        if live is None:
            try:
                live = self.stream.isatty()
            except (AttributeError, ValueError):
                live = False
        self._live = live
        self._status = ""

    def event(self, message: str) -> None:
        line = f"{self.clock.now().astimezone():%Y-%m-%d %H:%M:%S} {escape(message)}"
        try:
            if self._live:
                self.stream.write(_CLEAR + line + "\n" + self._status_line())
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # the operator's terminal went away; the daemon carries on

    def finished(
        self, run_id: int, task: str, outcome: str, detail: str | None, duration_s: float | None = None
    ) -> None:
        took = f" in {duration_s:.2f}s" if duration_s is not None else ""
        self.event(f"finished run {run_id} ({task}): {outcome}{took}" + (f", {detail}" if detail else ""))

    @property
    def live(self) -> bool:
        """Whether a status line is shown (worth computing its text)."""
        return self._live

    def status(self, text: str) -> None:
        if not self._live or text == self._status:
            return
        self._status = text
        try:
            self.stream.write(_CLEAR + self._status_line())
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _status_line(self) -> str:
        if not self._status:
            return ""
        width = shutil.get_terminal_size((80, 24)).columns
        return escape(self._status)[: max(1, width - 1)]

    def close(self) -> None:
        if self._live and self._status:
            self._status = ""
            try:
                self.stream.write(_CLEAR)
                self.stream.flush()
            except (OSError, ValueError):
                pass
