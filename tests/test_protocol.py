"""The worker protocol: one framing both ways, the job, the renewal, the events, and
what the daemon makes of whatever a task writes to the events pipe."""

from __future__ import annotations

import os
from typing import Any

import msgpack
import pytest

from bgproc.daemon import protocol
from bgproc.daemon.protocol import Ended, Job, LeaseExpired, Progress, Started


def a_job(**changes: Any) -> Job:
    fields: dict[str, Any] = {
        "run_id": 7, "request_id": 3, "task": "Noop", "import_path": "tasks:Noop", "search_path": "/srv/app",
        "params": b"\x81\xa1x\x01", "user": "ann", "app_db": "/srv/app/app.db", "lease_s": 45.0,
        "lease_grace_s": 5.0,
    }
    return Job(**{**fields, **changes})


def test_the_job_goes_over_the_job_pipe_and_renewals_after_it() -> None:
    read_fd, write_fd = os.pipe()
    job = a_job(params=b"p" * 100_000)  # more than one read
    try:
        os.set_blocking(write_fd, False)
        data = job.pack() + protocol.RENEWAL * 3
        os.write(write_fd, data[:60_000])
        # The reader waits for the rest; write it from another process, as the daemon does.
        child = os.fork()
        if child == 0:
            os.set_blocking(write_fd, True)
            os.write(write_fd, data[60_000:])
            os._exit(0)
        assert protocol.read_job(read_fd) == job
        os.waitpid(child, 0)
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_closed_job_pipe_is_eof() -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    with pytest.raises(EOFError):
        protocol.read_job(read_fd)
    os.close(read_fd)


def test_a_renewal_is_one_message_of_one_byte() -> None:
    assert len(protocol.RENEWAL) == 1 and msgpack.unpackb(protocol.RENEWAL) == 0


def test_a_job_without_its_fields_is_refused() -> None:
    message = msgpack.unpackb(a_job().pack(), raw=False)
    del message["app_db"]
    with pytest.raises(protocol.ProtocolError, match="app_db"):
        Job.from_message(message)
    with pytest.raises(protocol.ProtocolError):
        Job.from_message([1, 2])


def test_events_read_back_as_sent() -> None:
    reader = protocol.reader()
    sent = [Started(), Progress(3.0, 10.0, "three"), Progress(1.0, None, None), LeaseExpired(45.5), Ended(2048)]
    reader.feed(b"".join(protocol.pack(protocol.event_message(e)) for e in sent))
    assert [protocol.read_event(m) for m in reader] == sent


@pytest.mark.parametrize(
    ("message", "event"),
    [
        ({"t": "progress", "done": "x", "total": [1], "message": 5}, Progress(0.0, None, "5")),
        ({"t": "progress"}, Progress(0.0, None, None)),
        ({"t": "ended", "rss_kb": -1}, Ended(None)),
        ({"t": "ended", "rss_kb": "big"}, Ended(None)),
        ({"t": "lease"}, LeaseExpired(None)),
        ({"t": "started", "extra": 1}, Started()),
        ({"t": "who knows"}, None),
        ([1, 2, 3], None),
        (b"bytes", None),
    ],
)
def test_what_the_task_may_write_reads_as_an_event_or_nothing(message: object, event: object) -> None:
    assert protocol.read_event(message) == event


def test_what_is_not_a_message_is_refused_by_the_reader() -> None:
    reader = protocol.reader()
    reader.feed(b"\xc1")  # never used in MessagePack
    with pytest.raises(Exception):  # noqa: B017 - msgpack's own error type
        list(reader)
