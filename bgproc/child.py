"""The child: the process that runs one task. ``python -P -m bgproc.child``, or
forked from the daemon's fork server (``forkserver.py``), which calls ``main``.

It knows the task API, the parameter codec, the loader and the worker
protocol (``daemon/protocol.py``), nothing of the daemon's loop, the store
or the command line. The daemon's pool starts it with two pipes: it reads
its job on the job pipe, which then stays open as its lifeline
(``lifeline.py``: lease renewals, the daemon gone), and sends its events on
the events pipe: ``Started`` just before ``run()``, progress, and ``Ended``
once ``run()`` has come back.

stdout and stderr are the process log; ``connection.log`` records join them
as ``[LEVEL] message`` lines, in the order they happened. Exit 0 after the
``Ended`` event is success; an exception prints its traceback and exits 1;
an exit 0 without ``Ended`` (``os._exit(0)`` inside the task) is an error.
The daemon records the outcome.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping
from types import FrameType
from typing import Any

from . import params as params_codec
from .daemon import protocol
from .daemon.protocol import EXIT_CANCELLED, EXIT_ERROR, Job
from .errors import BgprocError
from .lifeline import Lifeline, remove_workdir
from .loader import load_task_class
from .task import BackgroundTask, Cancelled, Connection, ConnectionRequired

# One connection.log record or progress message at most, in characters (the daemon
# keeps 1 MiB of log per run by default, and reads at most protocol.MAX_MESSAGE of one event).
MAX_RECORD = 256 * 1024


class EventSink:
    """Writes events to the daemon; thread-safe, and quiet once the pipe is gone."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def tell(self, event: protocol.Event) -> None:
        self.send(protocol.event_message(event))

    def send(self, message: Mapping[str, Any]) -> None:
        if os.getpid() != self._pid:
            # A forked child of the task: its writes could split the child's own
            # events on the pipe (only writes under 4 KiB are atomic). It stays quiet.
            return
        data = protocol.pack(message)
        with self._lock:
            try:
                _write_all(self._fd, data)
            except OSError:
                pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
                _write_all(self._fd, data)
        except Exception:  # noqa: BLE001 - logging must never fail the task
            self.handleError(record)


def record_lines(message: str) -> list[str]:
    """A record's lines: cut at newlines only. ``str.splitlines`` would also cut at
    U+2028, U+2029, U+0085 and other separators a task may log inside one line."""
    lines = message.replace("\r\n", "\n").split("\n")
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # a message ending in a newline has no empty last line
    return lines


class _NotStarted(Exception):
    """The task could not be loaded; what went wrong is already printed."""


def main() -> int:
    job_fd, events_fd = (int(x) for x in os.environ[protocol.FDS_ENV].split(","))
    try:
        job = protocol.read_job(job_fd)
    except EOFError:
        # A spare let go, or the daemon gone before sending a job: the working
        # directory is ours to remove (a let-go spare's daemon does too).
        remove_workdir()
        return 0
    sink = EventSink(events_fd)
    lifeline = Lifeline(job_fd, job.run_id, job.lease_s, job.lease_grace_s or 0.0, sink.tell)
    connection = _connection(job, sink)
    signal.signal(signal.SIGTERM, _on_term(connection, lifeline))
    lifeline.start()  # only now: the lease's SIGTERM must find the handler installed
    code = _run(job, connection, sink, lifeline)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a task may close or replace them
    # The child's own word that run() came back (or raised): an exit 0 without it
    # means the process was ended from inside the task (os._exit(0)), not a success.
    sink.tell(protocol.Ended(protocol.peak_rss_kb()))
    if lifeline.expired_at is not None:
        lifeline.end_group()
    return code


def _connection(job: Job, sink: EventSink) -> Connection:
    log = logging.getLogger(f"bgproc.run.{job.run_id}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(OutputLogHandler())

    def progress(done: float, total: float | None, message: str | None) -> None:
        sink.tell(protocol.Progress(done, total, None if message is None else _cut(str(message))))

    return Connection(
        run_id=job.run_id, request_id=job.request_id, user=job.user, app_db_path=job.app_db, log=log,
        on_progress=progress,
    )


def _on_term(connection: Connection, lifeline: Lifeline) -> Any:
    def on_term(signum: int, frame: FrameType | None) -> None:
        # The first SIGTERM unwinds the task (finally blocks run); the daemon (or
        # the lifeline, once the lease ran out) sends SIGKILL if it does not end
        # within its grace.
        if not connection.cancelled:
            connection.cancel()
            expired = lifeline.expired_at is not None
            raise Cancelled("no word from the daemon within its lease" if expired else signal.Signals(signum).name)

    return on_term


def _load(job: Job, connection: Connection) -> tuple[BackgroundTask[Any], Any]:
    """The task, ready to run, and its parameters; raises ``_NotStarted``."""
    try:
        cls = load_task_class(job.import_path, job.search_path)
        parameters = params_codec.decode(cls.params_type(), job.params)
    except BgprocError as exc:
        # The task cannot be loaded or its parameters no longer fit: one line that
        # says what to do, not bgproc's own traceback.
        print(f"bgproc: run {job.run_id} cannot start: {exc}", file=sys.stderr)
        raise _NotStarted from None
    task = cls()
    if isinstance(task, ConnectionRequired):
        task.set_connection(connection)
    return task, parameters


def _run(job: Job, connection: Connection, sink: EventSink, lifeline: Lifeline) -> int:
    """Load the task and run it; returns the exit code."""
    try:
        task, parameters = _load(job, connection)
        sink.tell(protocol.Started())  # the run's timeout counts from here
        task.run(parameters)
        return 0
    except _NotStarted:
        return EXIT_ERROR
    except Cancelled as exc:
        if not connection.cancelled:
            # Raised by the task itself, with no stop asked: its own failure, not a stop.
            traceback.print_exc()
            print(
                f"bgproc: run {job.run_id}: the task raised bgproc.Cancelled itself, but nothing asked "
                "it to stop (no cancel, timeout or shutdown); recorded as an error",
                file=sys.stderr,
            )
            return EXIT_ERROR
        if lifeline.expired_at is None:  # else the lifeline has said why
            why = f" ({exc})" if str(exc) else ""
            print(f"bgproc: the daemon stopped run {job.run_id}{why}", file=sys.stderr)
        return EXIT_CANCELLED
    except SystemExit as exc:
        if exc.code not in (None, 0):
            traceback.print_exc()
        return exit_code(exc.code)
    except BaseException:  # noqa: BLE001 - report anything the task raises
        traceback.print_exc()
        return EXIT_ERROR
    finally:
        connection.close()


if __name__ == "__main__":
    # os._exit: a task's stray non-daemon threads must not keep the run alive.
    os._exit(main())
