"""A run in progress in this daemon: its child, pipes, log, deadline, and once
reaped, how it ended. The pool fills it in; the daemon decides and records."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import protocol
from .forking import Forked
from .protocol import EXIT_CANCELLED
from .runlog import RunLog


@dataclass
class ActiveRun:
    """A child that this daemon started and whose outcome is not recorded yet."""

    run_id: int
    request_id: int
    task: str
    proc: subprocess.Popen[bytes] | Forked
    output_fd: int
    events_fd: int  # -1 once closed (the run wrote what could not be read)
    lifeline_fd: int
    workdir: str
    timeout_s: float
    # Monotonic time the run is stopped as timed out: the start-up limit from
    # ``spawned_mono`` until the child says it started, then the timeout from then.
    deadline: float
    log: RunLog
    spawned_mono: float = 0.0  # given its job
    startup_s: float | None = None  # the start-up limit (None: the deadline is the timeout's)
    started_mono: float | None = None  # the child said it started (run() is called)
    event_reader: Any = field(default_factory=protocol.reader)  # the events pipe, parsed
    stop_reason: str | None = None
    term_at: float | None = None
    killed: bool = False
    progress: tuple[float, float | None, str | None] | None = None
    progress_dirty: bool = False
    peak_rss_kb: int | None = None  # the child's own peak (VmHWM), sampled and reported
    worker_ended: bool = False  # the child said run() came back: exit 0 is then a success
    events_lost: bool = False  # the events pipe was given up on (the task wrote garbage to it)
    lease_s: float | None = None  # how long the child goes on without a renewal (None: no lease)
    lease_expired: bool = False  # the child heard nothing within its lease and stopped its task
    job_pending: bytes = b""  # the rest of the job message, while the pipe is full
    # When the run was claimed (its recorded start), on the wall and the monotonic
    # clock: its end is recorded as that start plus the monotonic time since, so that a
    # wall clock set back meanwhile never makes it end before it started.
    claimed_at: datetime | None = None
    claimed_mono: float = 0.0
    # Once reaped (its wait status and usage kept until the outcome is committed).
    reaped: bool = False
    wait_status: int = 0
    usage: Any = None
    ended_at: datetime | None = None
    ended_mono: float | None = None
    outcome: str | None = None  # decided when reaped; written when the database allows
    noted: bool = False  # the log says the outcome came after the run was recorded ended

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def end_at(self, mono: float, now: datetime) -> datetime:
        """When the run ended, for its record, its worker seen exited at ``mono``
        (``now``: the wall clock then, for a run with no recorded start)."""
        if self.claimed_at is None:
            return now
        return self.claimed_at + timedelta(seconds=max(0.0, mono - self.claimed_mono))

    def timeout_why(self) -> str:
        """What the run's deadline was, for a run stopped at it."""
        if self.started_mono is None and self.startup_s is not None:
            return f"did not start within the start-up limit of {self.startup_s:g}s"
        return f"passed its timeout of {self.timeout_s:g}s"

    def sample_peak(self) -> None:
        """Note the child's own peak memory, if it can be read now (not once it has
        exited: a zombie has none)."""
        peak = None if self.reaped else protocol.peak_rss_kb(self.pid)
        if peak is not None:
            self.peak_rss_kb = max(self.peak_rss_kb or 0, peak)

    def exit_status(self) -> tuple[int | None, int | None]:
        """Once reaped: (exit code, signal that killed it); both None when its status
        is unknown (it was reaped elsewhere)."""
        code = os.waitstatus_to_exitcode(self.wait_status) if self.usage is not None else None
        signum = -code if code is not None and code < 0 else None
        exit_code = code if code is not None and code >= 0 else None
        return exit_code, signum

    def how_ended(self) -> str:
        """How the process ended, for a run's detail ("" for a plain exit 0 or unknown)."""
        exit_code, signum = self.exit_status()
        if (self.stop_reason is not None or self.lease_expired) and exit_code == EXIT_CANCELLED:
            return "ended on SIGTERM"
        if signum is not None:
            try:
                return f"killed by {signal.Signals(signum).name}"
            except ValueError:
                return f"killed by signal {signum}"
        if exit_code not in (None, 0):
            return f"exit code {exit_code}"
        if exit_code == 0 and self.exited_early():
            return "exited with code 0 before run() returned (os._exit in the task?)"
        return ""

    def exited_early(self) -> bool:
        """Exit 0, but the child never said run() came back: something in the task
        ended the process (``os._exit(0)``), so the work may be half done."""
        exit_code, _ = self.exit_status()
        return exit_code == 0 and not self.worker_ended and not self.events_lost

    def cpu_s(self) -> float | None:
        """CPU time used, user and system, once reaped."""
        return (self.usage.ru_utime + self.usage.ru_stime) if self.usage is not None else None

    def max_rss_kb(self) -> int | None:
        """Peak resident memory in KiB: the child's own (reported, or sampled while it
        ran), else none. Never ``ru_maxrss``: on Linux it carries the daemon's own
        peak across fork and exec (see ``peak_rss_kb``), which is not the run's."""
        return self.peak_rss_kb
