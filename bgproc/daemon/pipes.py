"""The pipes of a daemon's runs, read and written without ever blocking.

Each run has three: the job pipe (the rest of the job while the pipe is
full, then lease renewals), the output pipe (stdout and stderr, into the
run's log), and the events pipe (``protocol.py``'s events, into the run).
They are registered on the daemon's selector with ``(kind, run)`` as data;
the daemon hands back what is ready to ``ready``.
"""

from __future__ import annotations

import os
import selectors
from collections.abc import Callable
from datetime import datetime

from . import protocol
from .active import ActiveRun
from .runlog import stamp

# Reads of one pipe per wake-up before the loop looks at everything else again.
READ_BURST = 16


class Pipes:
    """The runs' pipes on the daemon's ``selector``; ``now`` and ``mono`` are the
    daemon's clock (wall and monotonic), read at each use."""

    def __init__(
        self, selector: selectors.BaseSelector, now: Callable[[], datetime], mono: Callable[[], float]
    ) -> None:
        self._selector = selector
        self._now = now
        self._mono = mono

    def watch(self, run: ActiveRun, job_pending: bytes) -> None:
        """Watch a run's pipes from now on; ``job_pending``: what of its job is left to write."""
        run.job_pending = job_pending
        if job_pending:
            self._selector.register(run.lifeline_fd, selectors.EVENT_WRITE, ("job", run))
        self._selector.register(run.output_fd, selectors.EVENT_READ, ("output", run))
        self._selector.register(run.events_fd, selectors.EVENT_READ, ("events", run))

    def ready(self, kind: str, run: ActiveRun) -> None:
        """One of a run's pipes is ready (``kind`` as registered): read or write it."""
        if kind == "output":
            for _ in range(READ_BURST):
                if not self._read_output(run):
                    break
        elif kind == "events":
            for _ in range(READ_BURST):
                if not self._read_events(run):
                    break
        elif kind == "job":
            self._write_job(run)

    def drain(self, run: ActiveRun) -> None:
        """Read what is left in a reaped run's pipes. A grandchild may hold them open
        (and keep writing): read what is there, boundedly, and do not wait for EOF."""
        for _ in range(1024):
            if not self._read_output(run):
                break
        for _ in range(1024):
            if not self._read_events(run):
                break

    def renew(self, run: ActiveRun) -> None:
        """Renew the child's lease, never blocking. Not while the job itself is still
        going over (the child's lease starts once it has it)."""
        if run.reaped or run.job_pending:
            return
        try:
            os.write(run.lifeline_fd, protocol.RENEWAL)
        except OSError:
            pass  # full (the child reads it as fast as it comes) or the child is gone

    def close(self, run: ActiveRun) -> None:
        """Stop watching a run's pipes and close them."""
        self._unregister(run.output_fd)
        self._close_events(run)
        self._unregister(run.lifeline_fd)
        try:
            os.close(run.lifeline_fd)
        except OSError:
            pass
        try:
            os.close(run.output_fd)
        except OSError:
            pass

    def _read(self, fd: int) -> bytes | None:
        """What a pipe has now (b"" at its end, unregistered then); None if nothing yet."""
        try:
            data = os.read(fd, protocol.READ_CHUNK)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            self._unregister(fd)
        return data

    def _read_output(self, run: ActiveRun) -> bool:
        """Read what the child printed; returns False when nothing more is there now."""
        data = self._read(run.output_fd)
        if data:
            run.log.feed(data, self._now())
        return bool(data)

    def _read_events(self, run: ActiveRun) -> bool:
        """Read the child's events; returns False when nothing more is there now."""
        data = None if run.events_fd < 0 else self._read(run.events_fd)
        if not data:
            if data == b"":
                self._started(run)  # it can no longer say so: its timeout counts from now
            return False
        try:
            run.event_reader.feed(data)
            for message in run.event_reader:
                self._event(run, protocol.read_event(message))
        except Exception as exc:  # noqa: BLE001 - the task may write anything to the pipe
            # Whatever the task wrote there, the daemon carries on; the run's
            # own outcome is still recorded when it ends. Close our end: a child
            # blocked writing more events gets EPIPE (which it ignores) and goes on.
            run.log.add(stamp(self._now()), f"[bgproc] events from the run ignored from here on: {exc!r}")
            run.events_lost = True
            run.sample_peak()  # its own word on its peak (the ended event) is lost with them
            self._close_events(run)
            self._started(run)
            return False
        return True

    def _event(self, run: ActiveRun, event: protocol.Event | None) -> None:
        if isinstance(event, protocol.Started):
            self._started(run)
        elif isinstance(event, protocol.Progress):
            run.progress = (event.done, event.total, event.message)
            run.progress_dirty = True
        elif isinstance(event, protocol.LeaseExpired):
            run.lease_expired = True
        elif isinstance(event, protocol.Ended):
            run.worker_ended = True
            if event.rss_kb is not None:
                run.peak_rss_kb = max(run.peak_rss_kb or 0, event.rss_kb)

    def _started(self, run: ActiveRun) -> None:
        """The run started: its timeout counts from now (not for a run being stopped)."""
        if run.started_mono is None and run.stop_reason is None and not run.reaped:
            run.started_mono = self._mono()
            run.deadline = run.started_mono + run.timeout_s

    def _close_events(self, run: ActiveRun) -> None:
        if run.events_fd < 0:
            return
        self._unregister(run.events_fd)
        try:
            os.close(run.events_fd)
        except OSError:
            pass
        run.events_fd = -1  # never read again: the number may be reused

    def _write_job(self, run: ActiveRun) -> None:
        try:
            run.job_pending = run.job_pending[os.write(run.lifeline_fd, run.job_pending):]
        except BlockingIOError:
            return
        except OSError:
            run.job_pending = b""  # the child is gone; reaping records it
        if not run.job_pending:
            self._unregister(run.lifeline_fd)

    def _unregister(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass
