"""What the daemon tells its operator: one line per event on stderr, and a live
status line when stderr is a terminal."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, TextIO


class Reporter:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self._status: Any = None
        self._console: Any = None
        if live if live is not None else self.stream.isatty():
            from rich.console import Console

            self._console = Console(file=self.stream)
            self._status = self._console.status("starting")
            self._status.start()

    def event(self, message: str) -> None:
        line = f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S} {message}"
        if self._console is not None:
            from rich.text import Text

            self._console.print(Text(line))
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def finished(self, run_id: int, task: str, outcome: str, detail: str | None) -> None:
        self.event(f"finished run {run_id} ({task}): {outcome}" + (f", {detail}" if detail else ""))

    def status(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
