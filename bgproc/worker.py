"""The worker: the subprocess that runs one task. ``python -m bgproc.worker``.

It knows the task API and the parameter codec, nothing of the daemon, the
store or the command line. The daemon hands it two pipes (their numbers in
``BGPROC_WORKER_FDS``):

- the *job* pipe carries one message (a 4-byte length, then MessagePack:
  run id, request id, task import path, search path, parameter bytes,
  user, application database, the worker's lease and its grace) and then
  stays open as a lifeline: when it reads as closed, the daemon is gone and
  the worker kills its own process group rather than run on unobserved;
  each byte the daemon writes on it afterwards renews the worker's *lease*.
  A worker that hears nothing for its lease (its daemon is stopped or
  suspended: it may soon be declared dead and the request run elsewhere)
  stops its task as on SIGTERM, says why in the run's log, sends a
  ``lease`` event, and kills what is left of its process group after the
  grace;
- the *events* pipe carries MessagePack events back: ``connection.progress``
  reports, and last an ``ended`` event once ``run()`` has come back (with the
  worker's peak memory). The daemon closes its end if the run writes what it
  cannot read; the events are then dropped.

stdout and stderr are the process log; ``connection.log`` records join them
as ``[LEVEL] message`` lines, in the order they happened. Exit 0 after the
``ended`` event is success; an exception prints its traceback and exits 1;
an exit 0 without ``ended`` (``os._exit(0)`` inside the task) is an error.
The daemon records the outcome.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import struct
import sys
import threading
import time
import traceback
from typing import Any

import msgpack

from . import params as params_codec
from .errors import BgprocError
from .loader import load_task_class
from .task import Cancelled, Connection, ConnectionRequired

FDS_ENV = "BGPROC_WORKER_FDS"
# One connection.log record or progress message at most, in characters (the daemon
# keeps 1 MiB of log per run by default, and reads at most 8 MiB of one event).
MAX_RECORD = 256 * 1024
EXIT_ERROR = 1
EXIT_CANCELLED = 143


def read_job(fd: int) -> dict[str, Any]:
    """Read the one length-prefixed job message from the job pipe."""
    header = _read_exactly(fd, 4)
    (length,) = struct.unpack(">I", header)
    return msgpack.unpackb(_read_exactly(fd, length), raw=False)


def pack_job(job: dict[str, Any]) -> bytes:
    body = msgpack.packb(job, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError("the daemon closed the job pipe before sending the job")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class EventSink:
    """Writes events to the daemon; thread-safe, and quiet once the pipe is gone."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def send(self, event: dict[str, Any]) -> None:
        if os.getpid() != self._pid:
            # A forked child of the task: its writes could split the worker's own
            # events on the pipe (only writes under 4 KiB are atomic). It stays quiet.
            return
        data = msgpack.packb(event, use_bin_type=True)
        with self._lock:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:
                pass


def _cut(message: str) -> str:
    if len(message) > MAX_RECORD:
        return f"{message[:MAX_RECORD]}... ({len(message) - MAX_RECORD} characters cut)"
    return message


def exit_code(value: object) -> int:
    """The process exit code for ``sys.exit(value)``. Only 0 to 255 pass through: the
    system keeps the low 8 bits, and ``sys.exit(256)`` must not read as success."""
    if value is None:
        return 0
    if isinstance(value, int):
        if 0 <= value <= 255:
            return value
        print(f"bgproc: sys.exit({value}): exit codes are 0 to 255; exiting with {EXIT_ERROR}", file=sys.stderr)
    return EXIT_ERROR


class OutputLogHandler(logging.Handler):
    """Writes ``connection.log`` records as ``[LEVEL] message`` lines to file
    descriptor 2, the pipe that also carries the task's prints: one stream keeps
    records and prints in the order they happened."""

    def __init__(self) -> None:
        super().__init__()
        # A private copy of the output pipe, made before the task runs: a task that
        # closes or redirects its stderr (to quiet a C library) keeps its records.
        self._fd = os.dup(2)  # not inherited by the task's own children
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            lines = record_lines(_cut(message))
            data = "".join(f"[{record.levelname}] {line}\n" for line in lines).encode("utf-8", "replace")
            with self._write_lock:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
        except Exception:  # noqa: BLE001 - logging must never fail the task
            self.handleError(record)


def record_lines(message: str) -> list[str]:
    """A record's lines: cut at newlines only. ``str.splitlines`` would also cut at
    U+2028, U+2029, U+0085 and other separators a task may log inside one line."""
    lines = message.replace("\r\n", "\n").split("\n")
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # a message ending in a newline has no empty last line
    return lines


def peak_rss_kb(pid: int | str = "self") -> int | None:
    """A process's own peak resident memory in KiB (Linux ``VmHWM``), else None.

    ``ru_maxrss`` from ``wait4`` cannot serve: Linux carries the parent's
    peak across fork and exec, so every worker would report at least the
    daemon's size.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


WORKDIR_PREFIX = "bgproc-run-"


class Lifeline:
    """The job pipe once the job is read: the daemon's lease renewals arrive on it,
    and its closing says the daemon is gone.

    ``watch`` runs in a thread of its own. The lease is measured on this machine's
    monotonic clock, which the daemon shares; a renewal that comes after the lease
    ran out does not bring it back (the daemon was silent too long, whatever it
    says now)."""

    def __init__(self, fd: int, run_id: int, lease_s: float | None, grace_s: float, sink: EventSink) -> None:
        self._fd = fd
        self._run_id = run_id
        self._lease_s = lease_s
        self._grace_s = grace_s
        self._sink = sink
        # Where the lease line goes: a copy of the output pipe, made before the task
        # runs (a task may close its stderr).
        self._out = os.dup(2)
        self.expired_at: float | None = None  # monotonic time the lease ran out

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
        """Read what the daemon wrote; False when the pipe is closed (the daemon is gone)."""
        try:
            return bool(os.read(self._fd, 4096))
        except OSError:
            return False

    def _daemon_gone(self) -> None:
        # The daemon would have removed the run's working directory; with the daemon
        # gone, the worker removes it itself (only a directory the daemon made).
        _remove_workdir()
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
        """The ``lease`` event for the daemon, and one line in the run's log."""
        self._sink.send({"t": "lease", "silent_s": silent_s})
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
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _others_in_group() -> bool:
    """Whether a process of this worker's process group other than itself still runs
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


def _remove_workdir() -> None:
    """Remove the working directory the daemon made for this worker (only that)."""
    workdir = os.getcwd()
    if os.path.basename(workdir).startswith(WORKDIR_PREFIX):
        shutil.rmtree(workdir, ignore_errors=True)


class _NotStarted(Exception):
    """The task could not be loaded; what went wrong is already printed."""


def main() -> int:
    job_fd, events_fd = (int(x) for x in os.environ[FDS_ENV].split(","))
    try:
        job = read_job(job_fd)
    except EOFError:
        # A spare worker let go, or the daemon gone before sending a job: the
        # working directory is ours to remove (a let-go spare's daemon does too).
        _remove_workdir()
        return 0
    sink = EventSink(events_fd)
    lifeline = Lifeline(job_fd, job["run_id"], job.get("lease_s"), job.get("lease_grace_s") or 0.0, sink)

    log = logging.getLogger(f"bgproc.run.{job['run_id']}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(OutputLogHandler())

    def progress(done: float, total: float | None, message: str | None) -> None:
        text = None if message is None else _cut(str(message))
        sink.send({"t": "progress", "at": time.time(), "done": done, "total": total, "msg": text})

    connection = Connection(
        run_id=job["run_id"],
        request_id=job["request_id"],
        user=job["user"],
        app_db_path=job["app_db"],
        log=log,
        on_progress=progress,
    )

    def on_term(signum: int, frame: Any) -> None:
        # The first SIGTERM unwinds the task (finally blocks run); the daemon (or
        # the lifeline, once the lease ran out) sends SIGKILL if it does not end
        # within its grace.
        if not connection.cancelled:
            connection.cancel()
            expired = lifeline.expired_at is not None
            raise Cancelled("no word from the daemon within its lease" if expired else signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_term)
    # Only now: the lease's SIGTERM must find the handler installed.
    threading.Thread(target=lifeline.watch, daemon=True, name="lifeline").start()
    try:
        try:
            cls = load_task_class(job["import_path"], job.get("search_path"))
            parameters = params_codec.decode(cls.params_type(), job["params"])
        except BgprocError as exc:
            # The task cannot be loaded or its parameters no longer fit: one line
            # that says what to do, not bgproc's own traceback.
            print(f"bgproc: run {job['run_id']} cannot start: {exc}", file=sys.stderr)
            raise _NotStarted from None
        task = cls()
        if isinstance(task, ConnectionRequired):
            task.set_connection(connection)
        task.run(parameters)
        code = 0
    except _NotStarted:
        code = EXIT_ERROR
    except Cancelled as exc:
        if lifeline.expired_at is None:  # else the lifeline has said why
            print(f"bgproc: the daemon stopped run {job['run_id']} ({exc})", file=sys.stderr)
        code = EXIT_CANCELLED
    except SystemExit as exc:
        if exc.code not in (None, 0):
            traceback.print_exc()
        code = exit_code(exc.code)
    except BaseException:  # noqa: BLE001 - report anything the task raises
        traceback.print_exc()
        code = EXIT_ERROR
    finally:
        connection.close()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a task may close or replace them
    # The worker's own word that run() came back (or raised): an exit 0 without it
    # means the process was ended from inside the task (os._exit(0)), not a success.
    sink.send({"t": "ended", "rss_kb": peak_rss_kb()})
    if lifeline.expired_at is not None:
        lifeline.end_group()
    return code


if __name__ == "__main__":
    # os._exit: a task's stray non-daemon threads must not keep the run alive.
    os._exit(main())
