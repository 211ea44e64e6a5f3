"""The child's lifeline: its job pipe, once the job is read.

The daemon's lease renewals arrive on it, and its closing says the daemon is
gone. A child whose daemon is gone kills its own process group (and removes
its working directory) rather than run on unobserved; one that hears nothing
within its lease (its daemon stopped or suspended, or cut off from its
database: it may soon be declared dead and the request run elsewhere) stops
its task as on SIGTERM, says why in the run's log and with a ``LeaseExpired``
event, and kills what is left of its process group after the grace.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import threading
import time
from collections.abc import Callable

from .daemon.protocol import WORKDIR_PREFIX, Event, LeaseExpired


class Lifeline:
    """Watches the job pipe in a thread of its own (``start``).

    The lease is measured on this machine's monotonic clock, which the daemon
    shares; a renewal that comes after the lease ran out does not bring it back
    (the daemon was silent too long, whatever it says now)."""

    def __init__(
        self, fd: int, run_id: int, lease_s: float | None, grace_s: float, tell: Callable[[Event], None]
    ) -> None:
        self._fd = fd
        self._run_id = run_id
        self._lease_s = lease_s
        self._grace_s = grace_s
        self._tell = tell
        # Where the lease line goes: a copy of the output pipe, made before the task
        # runs (a task may close its stderr).
        self._out = os.dup(2)
        self.expired_at: float | None = None  # monotonic time the lease ran out

    def start(self) -> None:
        """Watch from now on (the SIGTERM handler must be installed first)."""
        threading.Thread(target=self.watch, daemon=True, name="lifeline").start()

    def watch(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        renewed = time.monotonic()
        while True:
            left = None if self._lease_s is None else renewed + self._lease_s - time.monotonic()
            if left is not None and left <= 0:
                break
            if not poller.poll(None if left is None else max(1, int(left * 1000) + 1)):
                continue  # nothing came: the lease may have run out
            if not self._read():
                self._daemon_gone()
            now = time.monotonic()
            if self._lease_s is None or now - renewed <= self._lease_s:
                renewed = now  # else it ran out before this renewal came: expire above
        expired_at = self._expire(time.monotonic() - renewed)
        # Stopping: the task has its grace, unless the daemon goes meanwhile.
        while (left := expired_at + self._grace_s - time.monotonic()) > 0:
            if poller.poll(max(1, int(left * 1000) + 1)) and not self._read():
                self._daemon_gone()
        _kill_group()

    def _read(self) -> bool:
        """Read what the daemon wrote (renewals); False when the pipe is closed (the
        daemon is gone)."""
        try:
            return bool(os.read(self._fd, 4096))
        except OSError:
            return False

    def _daemon_gone(self) -> None:
        # The daemon would have removed the run's working directory; with the daemon
        # gone, the child removes it itself (only a directory the daemon made).
        remove_workdir()
        _kill_group()

    def _expire(self, silent_s: float) -> float:
        """No word from the daemon within the lease: stop the task as the daemon would
        (SIGTERM to the process group raises ``Cancelled`` in ``run``). Returns when."""
        self.expired_at = expired_at = time.monotonic()
        # Said first where it can be; but a full pipe (the daemon, stopped, reads
        # nothing) must not hold back the stop, nor the kill after the grace.
        saying = threading.Thread(target=self._say, args=(silent_s,), daemon=True, name="lease")
        saying.start()
        saying.join(0.2)
        try:
            os.killpg(os.getpgrp(), signal.SIGTERM)
        except OSError:
            pass
        return expired_at

    def _say(self, silent_s: float) -> None:
        """The ``LeaseExpired`` event for the daemon, and one line in the run's log."""
        self._tell(LeaseExpired(silent_s))
        line = (
            f"bgproc: no word from the daemon for {silent_s:.1f}s (the worker's lease is {self._lease_s:g}s): "
            f"stopping run {self._run_id} before another daemon can declare that one dead and run it again\n"
        )
        try:
            os.write(self._out, line.encode())
        except OSError:
            pass

    def end_group(self) -> None:
        """After the task unwound from an expired lease: wait out the grace for what it
        left in the process group, then kill that (the daemon, silent, cannot)."""
        assert self.expired_at is not None
        deadline = self.expired_at + self._grace_s
        while _others_in_group() and time.monotonic() < deadline:
            time.sleep(0.02)
        if _others_in_group():
            _kill_group()


def _kill_group() -> None:
    """Kill this child's process group, the child with it."""
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _others_in_group() -> bool:
    """Whether a process of this child's process group other than itself still runs
    (Linux ``/proc``; True where it cannot tell)."""
    me, group = os.getpid(), os.getpgrp()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if len(fields) > 2 and fields[2] == str(group).encode() and fields[0] not in (b"Z", b"X"):
            return True
    return False


def remove_workdir() -> None:
    """Remove the working directory the daemon made for this child (only that)."""
    workdir = os.getcwd()
    if os.path.basename(workdir).startswith(WORKDIR_PREFIX):
        shutil.rmtree(workdir, ignore_errors=True)
