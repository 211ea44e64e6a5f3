"""The worker protocol: what the daemon's pool and a child say to each other.

Standard library and MessagePack only: the child imports this at every run,
before the task. Both sides use it; neither repeats any of it.

A child gets two pipes (their numbers in ``FDS_ENV``). Each is a stream of
MessagePack objects, one framing both ways (MessagePack delimits its own
objects):

- the *job* pipe, daemon to child: first the ``Job``, then a ``RENEWAL`` at
  every heartbeat, each renewing the child's lease. It stays open as the
  child's lifeline: read as closed, the daemon is gone.
- the *events* pipe, child to daemon: ``Started`` just before ``run()`` (the
  run's timeout counts from there; what comes before it, interpreter start,
  imports and loading the task, has the daemon's start-up limit),
  ``Progress`` (``connection.progress``), ``LeaseExpired`` (the child heard
  nothing within its lease and stops its task), and last ``Ended``
  (``run()`` came back, or raised). Each is a map whose ``"t"`` names it.
  The task runs in this process and may write anything to the pipe: what
  reads it takes nothing for granted (``read_event``).

The child's stdout and stderr are the run's log, outside this protocol; its
exit code says how ``run()`` ended (``EXIT_ERROR``, ``EXIT_CANCELLED``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import msgpack

# The child's two pipes: "JOB_FD,EVENTS_FD".
FDS_ENV = "BGPROC_WORKER_FDS"
# The child's working directory, made by the daemon; the child removes it only if
# it is named so (a daemon gone cannot).
WORKDIR_PREFIX = "bgproc-run-"
# Exit codes: an exception or a task that cannot start; the task unwound from a stop
# (SIGTERM, or its lease ran out), as a shell reports a SIGTERM.
EXIT_ERROR = 1
EXIT_CANCELLED = 143
# The most either side buffers of one message, in bytes (parameters are at most
# 1 MiB; a progress message is cut at 256 Ki characters).
MAX_MESSAGE = 8 * 1024 * 1024
# One lease renewal: the MessagePack for 0, one byte, so that a write to a pipe
# with any room left is whole. The child takes any byte after the job for one.
RENEWAL = b"\x00"
# How much one read takes from a pipe.
READ_CHUNK = 64 * 1024


def pack(message: object) -> bytes:
    """One message, framed: the one framing of both pipes."""
    data: bytes = msgpack.packb(message, use_bin_type=True)
    return data


def unpack(data: bytes) -> Any:
    """One whole message (as ``pack`` framed it). Raises ``ValueError`` (and
    ``msgpack`` errors) on what is not one."""
    return msgpack.unpackb(data, raw=False)


def reader() -> msgpack.Unpacker:
    """Reads a stream of framed messages: ``feed`` it bytes, iterate the messages.
    Raises (``ValueError``, ``msgpack`` errors) on what is not a message or too big."""
    return msgpack.Unpacker(raw=False, max_buffer_size=MAX_MESSAGE)


class ProtocolError(Exception):
    """What came over a pipe is not what the protocol says."""


# ----------------------------------------------------------------------
# The job


@dataclass(kw_only=True)
class Job:
    """One run for a child: which task, its parameters, and its lease."""

    run_id: int
    request_id: int
    task: str
    import_path: str  # module:Qualname
    search_path: str | None
    params: bytes  # the parameter codec's bytes
    user: str
    app_db: str  # the application database (``connection.db``)
    lease_s: float | None = None  # how long the child goes on without a renewal (None: no lease)
    lease_grace_s: float | None = None  # then, how long its task has to stop

    def pack(self) -> bytes:
        """The job, framed, as the daemon writes it on the job pipe."""
        return pack(asdict(self))

    @classmethod
    def from_message(cls, message: object) -> Job:
        if not isinstance(message, dict):
            raise ProtocolError(f"the job is not a map: {message!r:.80}")
        missing = {f.name for f in fields(cls)} - message.keys()
        if missing:
            raise ProtocolError(f"the job has no {', '.join(sorted(missing))}")
        return cls(**{f.name: message[f.name] for f in fields(cls)})


def read_job(fd: int) -> Job:
    """Read the job, the first message on the job pipe, waiting for it. Whatever came
    after it in the same read is renewals, already received. Raises EOFError if the
    pipe closes first (a spare let go, or its daemon gone)."""
    unpacker = reader()
    while True:
        data = os.read(fd, READ_CHUNK)
        if not data:
            raise EOFError("the daemon closed the job pipe before sending the job")
        unpacker.feed(data)
        for message in unpacker:
            return Job.from_message(message)


# ----------------------------------------------------------------------
# The events


@dataclass
class Started:
    """The task is loaded, its parameters decoded: ``run()`` is called next."""

    KIND: ClassVar[str] = "started"


@dataclass
class Progress:
    """``connection.progress(done, total, message)``."""

    KIND: ClassVar[str] = "progress"
    done: float
    total: float | None
    message: str | None


@dataclass
class LeaseExpired:
    """No renewal came within the lease: the child stops its task."""

    KIND: ClassVar[str] = "lease"
    silent_s: float | None


@dataclass
class Ended:
    """``run()`` came back or raised; the child's own peak memory (``peak_rss_kb``)."""

    KIND: ClassVar[str] = "ended"
    rss_kb: int | None


Event = Started | Progress | LeaseExpired | Ended


def event_message(event: Event) -> dict[str, Any]:
    """An event as the child writes it (``pack`` frames it)."""
    return {"t": event.KIND, **asdict(event)}


def read_event(message: object) -> Event | None:
    """An event from a message read on the events pipe; None for what is not one
    (an unknown kind, or not a map). Fields of the wrong type read as absent."""
    if not isinstance(message, dict):
        return None
    kind = message.get("t")
    if kind == Progress.KIND:
        text = message.get("message")
        return Progress(_number(message.get("done")) or 0.0, _number(message.get("total")), _text(text))
    if kind == Started.KIND:
        return Started()
    if kind == Ended.KIND:
        rss = message.get("rss_kb")
        return Ended(rss if isinstance(rss, int) and rss > 0 else None)
    if kind == LeaseExpired.KIND:
        return LeaseExpired(_number(message.get("silent_s")))
    return None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def peak_rss_kb(pid: int | str = "self") -> int | None:
    """A process's own peak resident memory in KiB (Linux ``VmHWM``), else None: what
    ``Ended.rss_kb`` carries, and what the pool samples while the child runs.

    ``ru_maxrss`` from ``wait4`` cannot serve: Linux carries the parent's
    peak across fork and exec, so every child would report at least the
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
