"""The daemon's decisions, driven by hand: ``decide``, ``Daemon.claim`` and
``Daemon.tick`` with a ``FakeClock`` and a real temporary store. Nothing sleeps
to let time pass; workers are real processes only where a test needs one."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import query, wait_until
from daemon_tasks.helpers import register

from bgproc import requests
from bgproc.clock import Clock, FakeClock
from bgproc.daemon import Daemon, DaemonConfig
from bgproc.daemon.reporter import Reporter
from bgproc.errors import StoreBusy, StoreConflict, StoreIOError
from bgproc.liveness import place as _place
from bgproc.liveness import proc_start as _proc_start
from bgproc.store.decide import decide
from bgproc.store.records import DaemonRecord
from bgproc.store.sqlite import SQLiteStore as Store
from bgproc.timing import TimingOptions

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the test tasks registered, copied for each test (registering
    imports the tasks: once is enough)."""
    db = tmp_path_factory.mktemp("template") / "bgproc.db"
    register(db)
    with Store.open(db) as store:
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[Store]:
    db = tmp_path / "data" / "bgproc.db"
    db.parent.mkdir(mode=0o700)
    db.write_bytes(template.read_bytes())
    db.chmod(0o600)
    with Store.open(db) as opened:
        yield opened


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


class Made:
    """Daemons made by a test, shut down after it (their workers with them)."""

    def __init__(self) -> None:
        self.daemons: list[Daemon] = []


@pytest.fixture
def made() -> Iterator[Made]:
    made = Made()
    yield made
    for daemon in made.daemons:
        for run in list(daemon.active.values()):
            daemon.workers.signal_group(run, signal.SIGKILL)
        if daemon.active or daemon.workers.spare is not None:
            daemon.clock = Clock()  # a real clock to wait for real processes
            daemon._shutdown()
        daemon.workers.stop_forkserver()


def make(made: Made, store: Store, clock: FakeClock, hostname: str | None = None, **config: Any) -> Daemon:
    config.setdefault("spare", False)
    config.setdefault("poll_s", 3600.0)
    config.setdefault("heartbeat_s", 3600.0)
    reporter = Reporter(io.StringIO(), live=False, clock=clock)
    daemon = Daemon(store, DaemonConfig(**config), clock=clock, reporter=reporter, hostname=hostname)
    made.daemons.append(daemon)
    return daemon


def forkserver_ready(daemon: Daemon) -> None:
    """With the fork server on: start it and wait until it is ready, so that the
    daemon's next runs are forked (until then they start as fresh interpreters)."""
    server = daemon.workers.forkserver
    if server is None:
        return
    daemon.workers.warm()
    wait_until(lambda: daemon._wait(0.05) or server.ready, 60)


def new_request(
    store: Store,
    when: datetime,
    task: str = "Noop",
    *,
    allow_overlap: bool = False,
    retries: int | None = None,
    retry_delay: str | None = None,
    recover: bool | None = None,
    **timing: Any,
) -> int:
    """A request made at ``when``, through the same code as ``bgproc schedule``."""
    planned = requests.plan(
        store, task, now=when, default_zone="UTC", timing=TimingOptions(**timing), allow_overlap=allow_overlap,
        retries=retries, retry_delay=retry_delay, recover=recover,
    )
    return requests.create(store, planned, when).id


def running_row(store: Store, request_id: int, now: datetime, daemon_id: str = "elsewhere:1:abcdef") -> int:
    """A run of ``request_id`` recorded as going (no process: only the row matters)."""
    with store.immediate():
        return store.insert_run(
            request_id=request_id, task="Noop", status="running", now=now, reason="schedule",
            planned_at=now, started_at=now, daemon_id=daemon_id,
        )


def runs(store: Store, request_id: int) -> list[dict[str, Any]]:
    return query(store.path, "SELECT * FROM runs WHERE request_id = ? ORDER BY id", request_id)


def request_row(store: Store, request_id: int) -> dict[str, Any]:
    return query(store.path, "SELECT * FROM requests WHERE id = ?", request_id)[0]


def t(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_reaped(daemon: Daemon, timeout: float = 20.0) -> None:
    """Let the daemon's real workers end, reading their pipes meanwhile."""
    deadline = time.monotonic() + timeout
    while daemon.active:
        assert time.monotonic() < deadline, "workers did not end"
        daemon._wait(0.05)
        daemon.supervisor.reap()


# ----------------------------------------------------------------------
# Skips, catch-up, manual runs, one-time runs that wait


def test_recurring_slot_is_skipped_while_the_previous_run_goes(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, every="10s")
    assert t(request_row(store, request)["next_run_at"]) == T0
    going = running_row(store, request, T0 - timedelta(seconds=5))
    daemon = make(made, store, clock)
    clock.advance(1)
    assert daemon.claim(clock.now()) == []
    going_row, skipped = runs(store, request)
    assert going_row["id"] == going and going_row["status"] == "running"
    assert skipped["status"] == "skipped" and t(skipped["planned_at"]) == T0
    assert skipped["started_at"] is None
    assert skipped["detail"] == "the previous run was still going"
    assert t(request_row(store, request)["next_run_at"]) == T0 + timedelta(seconds=10)


def test_slots_skipped_behind_one_run_are_one_row(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, every="10s")
    running_row(store, request, T0 - timedelta(seconds=5))
    daemon = make(made, store, clock)
    for _ in range(3):  # slots at T0, +10 and +20, each skipped when it falls due
        clock.advance(1)
        daemon.claim(clock.now())
        clock.advance(9)
    clock.advance(15)  # +30 and +40 fall due together: one more pass skips both
    daemon.claim(clock.now())
    going, skipped = runs(store, request)
    assert going["status"] == "running" and skipped["status"] == "skipped"
    assert t(skipped["planned_at"]) == T0 and skipped["missed_count"] == 4  # after the first, as for missed
    assert t(skipped["missed_until"]) == T0 + timedelta(seconds=40)
    assert "5 slots skipped" in skipped["detail"]
    # Rescheduling never plans a slot that was skipped.
    assert store.last_planned_at(request) == T0 + timedelta(seconds=40)


def test_skip_counts_the_slots_it_skips_with_it(store: Store) -> None:
    request = store.get_request(new_request(store, T0, every="10s"))
    claim = decide(request, now=T0 + timedelta(seconds=25), due_by=T0 + timedelta(seconds=25), busy=True, free=4)
    assert claim.action == "skip" and claim.planned_at == T0
    assert "2 more slots after it" in claim.why
    assert claim.next_run_at == T0 + timedelta(seconds=30)
    overlapping = store.get_request(new_request(store, T0, every="10s", allow_overlap=True))
    assert decide(overlapping, now=T0, due_by=T0, busy=True, free=1).action == "start"


def test_catch_up_coalesces_the_missed_slots(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, every="10s")
    daemon = make(made, store, clock)
    clock.advance(35)  # slots at +0 (planned), +10, +20, +30 all passed
    ((run_id, record, task),) = daemon.claim(clock.now())
    assert record.id == request and task.name == "Noop"
    run, missed = runs(store, request)
    assert run["id"] == run_id and run["status"] == "running" and run["reason"] == "catch-up"
    assert t(run["planned_at"]) == T0 and t(run["started_at"]) == T0 + timedelta(seconds=35)
    assert run["daemon_id"] == daemon.id
    assert missed["status"] == "missed" and missed["missed_count"] == 3
    assert t(missed["planned_at"]) == T0 and t(missed["missed_until"]) == T0 + timedelta(seconds=30)
    assert f"coalesced into run {run_id}" in missed["detail"]
    assert t(request_row(store, request)["next_run_at"]) == T0 + timedelta(seconds=40)


def test_rows_a_daemon_writes_record_its_plain_host_name(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, every="10s")
    here = make(made, store, clock)
    here.register()
    clock.advance(35)
    here.claim(clock.now())  # a catch-up and its missed row
    elsewhere = make(made, store, clock, hostname="web 2")
    clock.advance(10)
    elsewhere.claim(clock.now())  # the next slot, skipped behind the run going
    run, missed, skipped = runs(store, request)
    assert (run["status"], missed["status"], skipped["status"]) == ("running", "missed", "skipped")
    assert run["host"] == missed["host"] == socket.gethostname()
    # The host a daemons row names first, so that old runs read alike (backfilled from it).
    assert store.get_daemon(here.id).host.split(" ")[0] == socket.gethostname()  # type: ignore[union-attr]
    assert skipped["host"] == "web_2" and elsewhere.id.startswith("web_2:")


def test_on_time_run_has_no_missed_row(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, every="10s")
    daemon = make(made, store, clock)
    clock.advance(9.5)
    assert len(daemon.claim(clock.now())) == 1
    (run,) = runs(store, request)
    assert run["reason"] == "schedule" and t(run["planned_at"]) == T0


def test_manual_run_leaves_the_timing_alone(made: Made, store: Store, clock: FakeClock) -> None:
    hourly = new_request(store, T0, every="1h", start=T0 + timedelta(hours=1))
    scheduled = new_request(store, T0, at=T0 + timedelta(seconds=5))
    store.request_manual_run(hourly, T0 + timedelta(seconds=1))
    daemon = make(made, store, clock, workers=4)
    clock.advance(10)
    claimed = daemon.claim(clock.now())
    assert [c[1].id for c in claimed] == [hourly, scheduled]  # oldest first: the manual at +1 s
    (manual,) = runs(store, hourly)
    assert manual["reason"] == "manual" and t(manual["planned_at"]) == T0 + timedelta(seconds=1)
    row = request_row(store, hourly)
    assert row["manual_at"] is None and row["status"] == "scheduled"
    assert t(row["next_run_at"]) == T0 + timedelta(hours=1)
    (once,) = runs(store, scheduled)
    assert once["reason"] == "schedule" and t(once["planned_at"]) == T0 + timedelta(seconds=5)
    assert request_row(store, scheduled)["status"] == "complete"


def test_manual_run_waits_for_the_previous_run(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, every="1h", start=T0 + timedelta(hours=1))
    going = running_row(store, request, T0)
    store.request_manual_run(request, T0)
    daemon = make(made, store, clock)
    clock.advance(1)
    assert daemon.claim(clock.now()) == []
    assert [r["id"] for r in runs(store, request)] == [going]
    assert store.next_due_at() == T0 + timedelta(hours=1)  # the waiting manual run is not "due"
    with store.immediate():
        store.finish_run(going, status="success", ended_at=clock.now())
    ((_, record, _),) = daemon.claim(clock.now())
    assert record.id == request and runs(store, request)[-1]["reason"] == "manual"


def test_one_time_run_waits_for_its_previous_run(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, now=True)
    going = running_row(store, request, T0 - timedelta(seconds=1))  # as if rescheduled while it ran
    daemon = make(made, store, clock)
    record = store.get_request(request)
    assert decide(record, now=T0, due_by=T0, busy=True, free=1).action == "wait"
    clock.advance(1)
    assert daemon.claim(clock.now()) == []
    assert [r["id"] for r in runs(store, request)] == [going]  # nothing skipped, nothing lost
    assert request_row(store, request)["status"] == "scheduled"
    # Nothing to do until that run ends: no busy loop, no polling.
    assert daemon.dispatcher.tick_at is None and not daemon.dispatcher.backlogged
    assert daemon._sleep_for(clock.now(), clock.monotonic()) > 60
    with store.immediate():
        store.finish_run(going, status="success", ended_at=clock.now())
    ((_, record, _),) = daemon.claim(clock.now())
    assert record.id == request and runs(store, request)[-1]["reason"] == "now"
    assert request_row(store, request)["status"] == "complete"


# ----------------------------------------------------------------------
# Worker slots, order, batches


def test_free_slots_limit_claims_oldest_first(made: Made, store: Store, clock: FakeClock) -> None:
    ids = [new_request(store, T0 + timedelta(seconds=i), now=True) for i in (3, 1, 2, 0)]
    daemon = make(made, store, clock, workers=2)
    clock.advance(10)
    first = daemon.claim(clock.now())
    assert [c[1].id for c in first] == [ids[3], ids[1]]  # planned +0 s, then +1 s
    # The other two wait for a worker: a run ending (or a database change) wakes the
    # daemon, not a timer.
    assert daemon.dispatcher.tick_at is None and not daemon.dispatcher.backlogged
    assert daemon._sleep_for(clock.now(), clock.monotonic()) > 60
    assert {request_row(store, i)["status"] for i in (ids[0], ids[2])} == {"scheduled"}
    daemon.active = {run_id: SimpleNamespace(reaped=False) for run_id, _, _ in first}  # type: ignore[misc]
    assert daemon.claim(clock.now()) == []  # no free slot
    daemon.active = {}
    assert [c[1].id for c in daemon.claim(clock.now())] == [ids[2], ids[0]]


def test_blocked_requests_do_not_hide_claimable_ones(made: Made, store: Store, clock: FakeClock) -> None:
    # More one-time requests waiting for their previous runs than a claim batch holds,
    # and one claimable behind them: it is claimed, and the daemon does not spin.
    blocked = [new_request(store, T0 + timedelta(seconds=i), now=True) for i in range(4)]
    for request in blocked:
        running_row(store, request, T0)
    last = new_request(store, T0 + timedelta(seconds=10), now=True)
    daemon = make(made, store, clock, workers=5, claim_batch=3)
    clock.advance(20)
    assert [c[1].id for c in daemon.claim(clock.now())] == [last]
    assert not daemon.dispatcher.backlogged
    assert daemon._sleep_for(clock.now(), clock.monotonic()) > 60


def test_more_due_than_a_batch_is_claimed_in_several_passes(made: Made, store: Store, clock: FakeClock) -> None:
    ids = [new_request(store, T0 + timedelta(seconds=i), now=True) for i in range(5)]
    daemon = make(made, store, clock, workers=10, claim_batch=2)
    clock.advance(10)
    passes = []
    while True:
        passes.append([c[1].id for c in daemon.claim(clock.now())])
        if not daemon.dispatcher.backlogged:
            break
        assert daemon._sleep_for(clock.now(), clock.monotonic()) == 0
    assert passes == [ids[0:2], ids[2:4], ids[4:5]]


@pytest.mark.daemon
def test_next_fire_sets_the_sleep(made: Made, store: Store, clock: FakeClock) -> None:
    new_request(store, T0, every="10s")
    daemon = make(made, store, clock)
    assert len(daemon.tick(clock.now())) == 1
    wait_reaped(daemon)
    clock.advance(1.25)
    # Woken exactly at the next fire: neither early (a busy loop) nor late (a poll).
    assert daemon._sleep_for(clock.now(), clock.monotonic()) == pytest.approx(8.75)


def test_without_the_fifo_the_database_is_polled_every_second(made: Made, store: Store, clock: FakeClock) -> None:
    wake = store.path.with_name(store.path.name + ".wake")
    wake.mkdir()
    wake.chmod(0o777)  # others could write: not trusted
    daemon = make(made, store, clock, poll_s=1.0, heartbeat_s=5.0)
    daemon._start()
    try:
        assert "no wake-up FIFO" in daemon.reporter.stream.getvalue()  # type: ignore[attr-defined]
        assert daemon._sleep_for(clock.now(), clock.monotonic()) <= 1.0
    finally:
        daemon._shutdown()


# ----------------------------------------------------------------------
# Requests that cannot be loaded or handled


def test_request_that_cannot_be_loaded_is_an_error_and_unscheduled(
    made: Made, store: Store, clock: FakeClock
) -> None:
    broken = new_request(store, T0, every="10s")
    fine = new_request(store, T0 + timedelta(seconds=1), now=True)
    with store.immediate():
        store.conn.execute("UPDATE requests SET timezone = 'Mars/Olympus_Mons' WHERE id = ?", (broken,))
    daemon = make(made, store, clock, workers=2)
    clock.advance(5)
    assert [c[1].id for c in daemon.claim(clock.now())] == [fine]
    (error,) = runs(store, broken)
    assert error["status"] == "error" and error["reason"] == "schedule"
    assert "Mars/Olympus_Mons" in error["detail"] and "unscheduled" in error["detail"]
    assert t(error["planned_at"]) == T0 and error["ended_at"]
    row = request_row(store, broken)
    assert row["status"] == "unscheduled" and row["next_run_at"] is None
    assert daemon.claim(clock.now()) == []  # not again
    assert len(runs(store, broken)) == 1


def test_request_that_fails_while_claimed_is_rolled_back_and_reported(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = new_request(store, T0, every="10s")
    fine = new_request(store, T0 + timedelta(seconds=1), every="10s")
    original = store.advance_request

    def advance(request_id: int, *args: Any) -> None:
        if request_id == broken:
            raise ValueError("cannot advance")
        original(request_id, *args)

    monkeypatch.setattr(store, "advance_request", advance)
    daemon = make(made, store, clock, workers=2)
    clock.advance(5)
    assert [c[1].id for c in daemon.claim(clock.now())] == [fine]
    (error,) = runs(store, broken)  # its half-written run row went with the savepoint
    assert error["status"] == "error" and "ValueError: cannot advance" in error["detail"]
    assert request_row(store, broken)["status"] == "unscheduled"


def test_a_schedule_past_the_calendars_end_is_complete_and_says_why(made: Made, store: Store) -> None:
    # Its next fire would overflow datetime: complete, said in one line, not a silent stop.
    late = datetime(9998, 12, 15, 9, 0, tzinfo=UTC)
    clock = FakeClock(late)
    request = new_request(store, late, monthly=True)
    daemon = make(made, store, clock)
    assert len(daemon.claim(clock.now())) == 1
    row = request_row(store, request)
    assert row["status"] == "complete" and row["next_run_at"] is None
    assert (
        f"request {request} (Noop) is complete: its next fire would fall after 9999-01-01, "
        "where bgproc's calendar ends"
    ) in daemon.reporter.stream.getvalue()  # type: ignore[attr-defined]


def test_a_schedule_past_its_finish_is_complete_and_says_why(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, daily=True, finish="2026-03-03T10:00")
    daemon = make(made, store, clock)
    clock.advance(86400)
    assert len(daemon.claim(clock.now())) == 1
    assert request_row(store, request)["status"] == "complete"
    assert (
        f"request {request} (Noop) is complete: its finish (2026-03-03 10:00:00 UTC) has passed"
    ) in daemon.reporter.stream.getvalue()  # type: ignore[attr-defined]


def test_a_runs_peak_memory_is_its_own_or_none() -> None:
    # ru_maxrss carries the daemon's own peak across fork and exec on Linux: it is
    # never reported as the run's, even when the worker's own peak could not be read.
    from types import SimpleNamespace

    from bgproc.daemon.active import ActiveRun
    from bgproc.daemon.runlog import RunLog

    run = ActiveRun(
        run_id=1, request_id=1, task="Noop", proc=None, output_fd=-1, events_fd=-1, lifeline_fd=-1,
        workdir="", timeout_s=1.0, deadline=0.0, log=RunLog(1024),
    )
    run.reaped, run.usage = True, SimpleNamespace(ru_maxrss=900_000, ru_utime=0.5, ru_stime=0.25)
    assert run.max_rss_kb() is None and run.cpu_s() == 0.75
    run.peak_rss_kb = 20_000
    assert run.max_rss_kb() == 20_000


def test_unregistered_task_is_an_error(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, now=True)
    with store.immediate():
        store.conn.execute("UPDATE tasks SET unregistered_at = ? WHERE name = 'Noop'", (T0.isoformat(),))
    daemon = make(made, store, clock)
    assert daemon.claim(clock.now()) == []
    (run,) = runs(store, request)
    assert run["status"] == "error" and "not registered" in run["detail"]


def test_a_claim_that_would_record_an_occurrence_twice_is_refused(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug that forgets to move the request on: the schema refuses the second run.
    request = new_request(store, T0, every="10s")
    monkeypatch.setattr(store, "advance_request", lambda *args: None)
    daemon = make(made, store, clock, workers=2)
    clock.advance(1)
    ((run_id, _, _),) = daemon.claim(clock.now())
    with store.immediate():
        store.finish_run(run_id, status="success", ended_at=clock.now())
    assert daemon.claim(clock.now()) == []
    first, error = runs(store, request)
    assert first["status"] == "success" and t(first["planned_at"]) == T0
    assert error["status"] == "error" and error["planned_at"] is None
    assert "is already recorded" in error["detail"] and "UNIQUE" in error["detail"]
    assert request_row(store, request)["status"] == "unscheduled"


# ----------------------------------------------------------------------
# The hot loop: what each pass asks the database


def test_idle_pass_asks_little(made: Made, store: Store, clock: FakeClock) -> None:
    new_request(store, T0, every="1h", start=T0 + timedelta(hours=1))
    daemon = make(made, store, clock, workers=2)
    daemon.reporter._live = True  # the status line is computed too
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        for _ in range(3):
            clock.advance(1)
            now, mono = clock.now(), clock.monotonic()
            if daemon.dispatcher.should_tick(now):
                daemon.tick(now)
            daemon._status_text()
            daemon._sleep_for(now, mono)
    finally:
        store.conn.set_trace_callback(None)
    due_reads = [s for s in statements if "next_run_at" in s]
    assert len(due_reads) == 1, statements  # once, then known until something changes
    assert not any("BEGIN" in s for s in statements)  # nothing due: no write lock


def test_claim_pass_uses_a_lean_query(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, every="10s")
    for _ in range(3):
        with store.immediate():
            store.insert_run(request_id=request, task="Noop", status="success", now=T0, started_at=T0)
    daemon = make(made, store, clock)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        assert len(daemon.claim(clock.now())) == 1
    finally:
        store.conn.set_trace_callback(None)
    assert not any("last_run" in s for s in statements), statements


def backlog(store: Store, request_id: int, count: int) -> None:
    """``count`` more requests like ``request_id``, due one microsecond apart after it."""
    with store.immediate():
        store.conn.executemany(
            "INSERT INTO requests (task, params, timing, timezone, start_at, finish_at, status, next_run_at, "
            "timeout_s, allow_overlap, user, created_at, updated_at) "
            "SELECT task, params, timing, timezone, start_at, finish_at, status, "
            "strftime('%Y-%m-%dT%H:%M:%S', next_run_at) || printf('.%06dZ', ?), timeout_s, allow_overlap, "
            "user, created_at, updated_at FROM requests WHERE id = ?",
            [(i, request_id) for i in range(1, count + 1)],
        )
        store.conn.execute("ANALYZE")


def claim_statements(daemon: Daemon, store: Store, now: datetime) -> tuple[list[str], int]:
    """The statements one claim pass runs (parameters bound), and the SQLite virtual
    machine steps they took: a measure of work that does not depend on the machine."""
    statements: list[str] = []
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    store.conn.set_trace_callback(statements.append)
    store.conn.set_progress_handler(step, 1)
    try:
        daemon.claim(now)
    finally:
        store.conn.set_trace_callback(None)
        store.conn.set_progress_handler(None, 1)
    return statements, steps[0]


def test_claim_reads_keys_from_indexes_and_sorts_no_rows(made: Made, store: Store, clock: FakeClock) -> None:
    # Every kind of due work at once: fires, a manual run, a one-time request waiting
    # for its run, a recurring one whose slot is skipped behind its run.
    backlog(store, new_request(store, T0, now=True), 50)
    store.request_manual_run(new_request(store, T0, every="1h", start=T0 + timedelta(hours=1)), T0)
    running_row(store, new_request(store, T0, now=True), T0)
    running_row(store, new_request(store, T0, every="10s"), T0)
    failed = new_request(store, T0, now=True, retries=1, retry_delay="1s")  # and a retry
    first = running_row(store, failed, T0)
    with store.immediate():
        store.advance_request(failed, None, T0)
        store.finish_run(first, status="error", ended_at=T0)
    daemon = make(made, store, clock, workers=4)
    clock.advance(60)
    statements, _ = claim_statements(daemon, store, clock.now())
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "requests" in s]
    plans = {sql: " | ".join(str(r[-1]) for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql)) for sql in reads}
    assert not [p for p in plans.values() if "TEMP B-TREE" in p], plans  # no due row copied and sorted
    for sql, plan in plans.items():
        assert "COMPOUND" not in plan and "SCAN r " not in plan + " " and "SCAN requests" not in plan, (sql, plan)
    used = " ".join(plans.values())
    assert "requests_due" in used and "requests_manual" in used and "INTEGER PRIMARY KEY" in used, plans
    assert "reruns_due" in used, plans


def test_a_claim_pass_costs_the_same_whatever_the_backlog(made: Made, store: Store, clock: FakeClock) -> None:
    # Work measured in SQLite's virtual machine steps, not time: the same on any machine.
    few = new_request(store, T0, now=True)
    backlog(store, few, 3)
    daemon = make(made, store, clock, workers=4)
    clock.advance(60)
    _, baseline = claim_statements(daemon, store, clock.now())
    many = new_request(store, T0 + timedelta(seconds=1), now=True)
    backlog(store, many, 3000)
    _, with_backlog = claim_statements(daemon, store, clock.now())
    assert with_backlog < 2 * baseline, (baseline, with_backlog)
    # Oldest first, as many as the free workers.
    assert [request_row(store, many + i)["status"] for i in range(5)] == ["complete"] * 4 + ["scheduled"]


# ----------------------------------------------------------------------
# Starting workers, recording outcomes


@pytest.mark.daemon
def test_a_run_that_cannot_start_is_an_error_and_the_others_start(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = new_request(store, T0, now=True)
    second = new_request(store, T0 + timedelta(microseconds=1), now=True)
    clock.advance(1)
    original, calls = store.set_run_pid, []

    def set_run_pid(run_id: int, pid: int) -> None:
        calls.append(pid)
        if len(calls) == 1:
            raise OSError(24, "Too many open files")
        original(run_id, pid)

    monkeypatch.setattr(store, "set_run_pid", set_run_pid)
    daemon = make(made, store, clock, workers=2)
    assert len(daemon.tick(clock.now())) == 2
    (failed,) = runs(store, first)
    assert failed["status"] == "error" and failed["ended_at"]
    assert "could not start the worker" in failed["detail"] and "Too many open files" in failed["detail"]
    wait_until(lambda: not os.path.exists(f"/proc/{calls[0]}"), 10)  # its worker went
    assert [r.request_id for r in daemon.active.values()] == [second]
    wait_reaped(daemon)
    assert runs(store, second)[0]["status"] == "success"
    daemon._shutdown()
    assert query(store.path, "SELECT COUNT(*) AS n FROM runs WHERE status = 'running'")[0]["n"] == 0


@pytest.mark.daemon
def test_a_run_whose_pid_the_database_refuses_starts_at_a_later_pass(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claimed run must not fail for a database that is busy for a moment: it
    starts once the database takes its pid, and holds its worker slot meanwhile."""
    first = new_request(store, T0, now=True)
    second = new_request(store, T0 + timedelta(microseconds=1), now=True)
    clock.advance(1)
    original, calls = store.set_run_pid, []

    def set_run_pid(run_id: int, pid: int) -> None:
        calls.append(pid)
        if len(calls) == 1:
            raise StoreIOError("disk I/O error")
        original(run_id, pid)

    monkeypatch.setattr(store, "set_run_pid", set_run_pid)
    daemon = make(made, store, clock, workers=1)
    assert len(daemon.tick(clock.now())) == 1
    assert not daemon.active and runs(store, first)[0]["status"] == "running"
    assert daemon.tick(clock.now()) == []  # its slot stays taken: the second waits
    clock.advance(5)
    daemon._iterate()  # the database is back: the run starts
    assert [r.request_id for r in daemon.active.values()] == [first]
    wait_reaped(daemon)
    assert runs(store, first)[0]["status"] == "success"
    assert runs(store, second) == [] or runs(store, second)[0]["status"] in ("running", "success")


@pytest.mark.daemon
def test_shutdown_interrupts_runs_still_recorded_running(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = new_request(store, T0, now=True)

    def fail(*args: Any, **kwargs: Any) -> bool:
        raise StoreIOError("disk I/O error")

    monkeypatch.setattr(store, "set_run_pid", fail)
    monkeypatch.setattr(store, "finish_run", fail)
    daemon = make(made, store, clock)
    daemon.register()
    assert len(daemon.tick(clock.now())) == 1
    assert runs(store, request)[0]["status"] == "running"  # the error could not be written
    daemon._shutdown()
    (run,) = runs(store, request)
    assert run["status"] == "interrupted" and "not re-run" in run["detail"]
    assert query(store.path, "SELECT stopped_at FROM daemons")[0]["stopped_at"]


@pytest.mark.daemon
def test_outcome_is_kept_when_writing_it_fails(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = new_request(store, T0, now=True)
    daemon = make(made, store, clock)
    daemon.tick(clock.now())
    (run,) = daemon.active.values()
    wait_until(lambda: os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT), 10)
    original = store.finish_run

    def finish_run(*args: Any, **kwargs: Any) -> bool:
        raise StoreBusy("database is locked")

    monkeypatch.setattr(store, "finish_run", finish_run)
    assert daemon.supervisor.reap() == 1  # reaped, its outcome kept
    assert run.reaped and run.outcome == "success" and daemon.active
    assert runs(store, request)[0]["status"] == "running"
    monkeypatch.setattr(store, "finish_run", original)
    assert daemon.supervisor.reap() == 0 and not daemon.active
    (done,) = runs(store, request)
    assert done["status"] == "success" and done["exit_code"] == 0, done["detail"]
    log = query(store.path, "SELECT head FROM run_logs WHERE run_id = ?", done["id"])[0]["head"]
    assert "noop done" in log


@pytest.mark.daemon
def test_shutdown_under_a_fake_clock_ends(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, "IgnoreTerm")
    daemon = make(made, store, clock, kill_after_s=2.0)
    daemon.tick(clock.now())
    (run,) = daemon.active.values()
    deadline = time.monotonic() + 15
    while "ignoring SIGTERM" not in run.log.last_line:
        assert time.monotonic() < deadline
        daemon._wait(0.05)
    stopper = threading.Thread(target=daemon._shutdown, daemon=True)
    stopper.start()
    stopper.join(20)
    assert not stopper.is_alive(), "shutdown did not end under a FakeClock"
    (done,) = runs(store, request)
    assert done["status"] == "interrupted" and done["signal"] == signal.SIGKILL


def test_reporter_and_follow_read_the_injected_clock(store: Store) -> None:
    from rich.console import Console

    from bgproc.cli.follow import follow_runs

    stream = io.StringIO()
    Reporter(stream, live=False, clock=FakeClock(T0)).event("hello")
    assert stream.getvalue() == f"{T0.astimezone():%Y-%m-%d %H:%M:%S} hello\n"

    class Stopping(FakeClock):
        sleeps = 0

        def sleep(self, seconds: float) -> None:
            self.sleeps += 1
            if self.sleeps == 5:
                raise KeyboardInterrupt
            super().sleep(seconds)

    stopping = Stopping(T0)
    follow_runs(store, {}, Console(file=io.StringIO(), width=100), clock=stopping)
    assert stopping.sleeps == 5 and stopping.monotonic() == pytest.approx(1.0)


# ----------------------------------------------------------------------
# Daemons watching each other


def other_daemon(store: Store, daemon_id: str, host: str, pid: int, beat: datetime) -> None:
    store.register_daemon(
        DaemonRecord(id=daemon_id, host=host, pid=pid, started_at=beat, heartbeat_at=beat, stopped_at=None, workers=1)
    )


def beat_other(store: Store, daemon_id: str, when: datetime) -> None:
    assert store.beat(daemon_id, when)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_live_daemon_here_is_never_declared_dead(
    made: Made, store: Store, clock: FakeClock, sleeper: subprocess.Popen
) -> None:
    # Its heartbeat is a day old (it was stopped, suspended, or its clock is wrong),
    # but its process runs on this machine: alive.
    request = new_request(store, T0, now=True)
    start = _proc_start(sleeper.pid)
    other_daemon(store, "here:1:aaaaaa", f"{_place()} pidstart={start}", sleeper.pid, T0 - timedelta(days=1))
    run_id = running_row(store, request, T0, daemon_id="here:1:aaaaaa")
    daemon = make(made, store, clock)
    daemon.register()
    for _ in range(30):
        clock.advance(5)
        daemon._beat(clock.now())
    assert runs(store, request)[0]["status"] == "running"
    # Once its process is gone it is declared dead at once.
    sleeper.kill()
    sleeper.wait()
    daemon.reap_dead_daemons(clock.now())
    (run,) = runs(store, request)
    assert run["id"] == run_id and run["status"] == "interrupted"
    assert "is no longer running" in run["detail"] and "not re-run" in run["detail"]


def test_a_pid_reused_by_another_process_is_dead(
    made: Made, store: Store, clock: FakeClock, sleeper: subprocess.Popen
) -> None:
    request = new_request(store, T0, now=True)
    start = _proc_start(sleeper.pid)
    assert start is not None
    other_daemon(store, "here:1:bbbbbb", f"{_place()} pidstart={start - 1}", sleeper.pid, T0)
    running_row(store, request, T0, daemon_id="here:1:bbbbbb")
    daemon = make(made, store, clock)
    daemon.reap_dead_daemons(clock.now())
    assert runs(store, request)[0]["status"] == "interrupted"


def test_same_host_name_elsewhere_is_judged_by_its_heartbeat(
    made: Made, store: Store, clock: FakeClock, sleeper: subprocess.Popen
) -> None:
    # Another container with the same host name: its pid means nothing here.
    request = new_request(store, T0, now=True)
    place = _place().split(" ")[0] + " boot=another-boot pidns=pid:[1]"
    other_daemon(store, "twin:1:cccccc", place, sleeper.pid, T0 + timedelta(hours=3))  # its clock is ahead
    running_row(store, request, T0, daemon_id="twin:1:cccccc")
    daemon = make(made, store, clock, heartbeat_s=5.0, heartbeat_expiry_s=60.0)
    daemon.register()
    for step in range(1, 13):  # 60 s of its heartbeat changing every 5 s: alive
        clock.advance(5)
        beat_other(store, "twin:1:cccccc", T0 - timedelta(hours=5) + timedelta(seconds=step))  # clock behind
        daemon._beat(clock.now())
    assert runs(store, request)[0]["status"] == "running"
    for _ in range(11):  # 55 s without a change: not yet
        clock.advance(5)
        daemon._beat(clock.now())
    assert runs(store, request)[0]["status"] == "running"
    clock.advance(5)
    daemon._beat(clock.now())
    (run,) = runs(store, request)
    assert run["status"] == "interrupted" and "stopped heartbeating" in run["detail"]
    assert query(store.path, "SELECT stopped_at FROM daemons WHERE id = 'twin:1:cccccc'")[0]["stopped_at"]


def test_no_expiry_while_this_daemon_could_not_write(made: Made, store: Store, clock: FakeClock) -> None:
    # Time that passed while our own heartbeats failed (a locked database, this daemon
    # suspended) proves nothing about the other daemon.
    request = new_request(store, T0, now=True)
    other_daemon(store, "far:1:dddddd", "faraway boot=x pidns=pid:[2]", 4242, T0)
    running_row(store, request, T0, daemon_id="far:1:dddddd")
    daemon = make(made, store, clock, heartbeat_expiry_s=60.0)
    daemon.reap_dead_daemons(clock.now())
    clock.advance(3600)
    daemon.reap_dead_daemons(clock.now())
    assert runs(store, request)[0]["status"] == "running"


def test_staleness_is_checked_again_under_the_write_lock(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = new_request(store, T0, now=True)
    other_daemon(store, "far:1:eeeeee", "faraway boot=x pidns=pid:[2]", 4242, T0)
    running_row(store, request, T0, daemon_id="far:1:eeeeee")
    daemon = make(made, store, clock, heartbeat_expiry_s=60.0)
    stale = store.live_daemons()  # read before it beat again
    daemon.membership.observed["far:1:eeeeee"] = (T0, clock.monotonic(), daemon.membership.beats)
    clock.advance(100)
    daemon.membership.beats += 20
    beat_other(store, "far:1:eeeeee", T0 + timedelta(seconds=95))
    monkeypatch.setattr(store, "live_daemons", lambda: stale)
    daemon.reap_dead_daemons(clock.now())
    assert runs(store, request)[0]["status"] == "running"
    assert store.get_daemon("far:1:eeeeee").stopped_at is None  # type: ignore[union-attr]


def test_runs_of_a_stopped_daemon_are_interrupted(made: Made, store: Store, clock: FakeClock) -> None:
    stopped, gone = new_request(store, T0, now=True), new_request(store, T0, now=True)
    other_daemon(store, "old:1:ffffff", "faraway", 4242, T0)
    store.stop_daemon("old:1:ffffff", T0)
    running_row(store, stopped, T0, daemon_id="old:1:ffffff")
    running_row(store, gone, T0, daemon_id="pruned:1:000000")  # no daemon row at all
    daemon = make(made, store, clock)
    daemon.reap_dead_daemons(clock.now())
    for request in (stopped, gone):
        (run,) = runs(store, request)
        assert run["status"] == "interrupted" and "had stopped" in run["detail"]


def test_daemon_declared_dead_claims_nothing_and_goes_on_under_a_new_id(
    made: Made, store: Store, clock: FakeClock
) -> None:
    daemon = make(made, store, clock)
    daemon.register()
    old = daemon.id
    with store.immediate():
        store.interrupt_daemon_runs(old, clock.now(), "interrupted: declared dead")
    assert not store.beat(old, clock.now())
    request = new_request(store, T0, now=True)
    assert daemon.claim(clock.now()) == []  # nothing claimed under the dead id
    assert runs(store, request) == []
    assert daemon.id != old and "declared dead" in daemon.reporter.stream.getvalue()  # type: ignore[attr-defined]
    ((run_id, _, _),) = daemon.claim(clock.now())
    assert runs(store, request)[0]["daemon_id"] == daemon.id
    assert store.beat(daemon.id, clock.now())


@pytest.mark.daemon
def test_daemon_declared_dead_stops_its_runs_and_the_record_stands(
    made: Made, store: Store, clock: FakeClock
) -> None:
    quick = new_request(store, T0, "Sleep", now=True)  # 0.2 s
    hang = new_request(store, T0, "Hang", now=True)
    daemon = make(made, store, clock, workers=2, kill_after_s=1.0)
    daemon.register()
    old = daemon.id
    assert len(daemon.tick(clock.now())) == 2
    # Another daemon declares this one dead while its runs go (this one was suspended).
    with store.immediate():
        store.interrupt_daemon_runs(old, clock.now(), "interrupted: daemon stopped heartbeating; not re-run")
    # The quick run ends: its success cannot replace the record, but its log says so.
    deadline = time.monotonic() + 15
    while any(r.request_id == quick for r in daemon.active.values()):
        assert time.monotonic() < deadline
        daemon._wait(0.05)
        daemon.supervisor.reap()
    daemon._beat(clock.now())  # learns it was declared dead
    assert daemon.id != old
    assert store.get_daemon(old).stopped_at is not None  # type: ignore[union-attr]
    assert store.get_daemon(daemon.id).stopped_at is None  # type: ignore[union-attr]
    (hanging,) = daemon.active.values()
    assert hanging.stop_reason == "interrupted"  # stopped: the record says it was
    daemon.clock = Clock()
    wait_reaped(daemon)
    for request_id, outcome in ((quick, "success"), (hang, "interrupted")):
        (run,) = runs(store, request_id)
        assert run["status"] == "interrupted" and "not re-run" in run["detail"]
        log = query(store.path, "SELECT head FROM run_logs WHERE run_id = ?", run["id"])[0]["head"]
        assert f"the run ended ({outcome}" in log and "after it had been recorded as ended" in log
    assert "declared dead" in daemon.reporter.stream.getvalue()  # type: ignore[attr-defined]


def test_stopped_daemons_are_pruned_after_a_week(made: Made, store: Store, clock: FakeClock) -> None:
    for name, age in (("old", 8), ("recent", 1)):
        other_daemon(store, name, "faraway", 1, T0 - timedelta(days=age))
        store.stop_daemon(name, T0 - timedelta(days=age))
    other_daemon(store, "ancient-live", "faraway", 1, T0 - timedelta(days=30))
    daemon = make(made, store, clock)
    daemon.membership.prune(clock.now())
    assert sorted(r["id"] for r in query(store.path, "SELECT id FROM daemons")) == ["ancient-live", "recent"]
    plan = " ".join(
        str(r) for r in store.conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM daemons WHERE stopped_at IS NULL ORDER BY started_at"
        )
    )
    assert "daemons_live" in plan


# ----------------------------------------------------------------------
# Second review: manual runs meeting slots, rescheduling after a run, a missing own row


def test_a_manual_run_that_meets_a_due_slot_skips_it_and_the_schedule_moves_on(
    made: Made, store: Store, clock: FakeClock
) -> None:
    request = new_request(store, T0, every="10s")
    store.request_manual_run(request, T0)
    daemon = make(made, store, clock, workers=2)
    clock.advance(1)
    ((_, record, _),) = daemon.claim(clock.now())
    manual, skipped = runs(store, request)
    assert manual["reason"] == "manual" and manual["status"] == "running"
    assert skipped["status"] == "skipped" and t(skipped["planned_at"]) == T0
    assert t(request_row(store, request)["next_run_at"]) == T0 + timedelta(seconds=10)
    assert daemon.dispatcher.tick_at == T0 + timedelta(seconds=10)  # not left sleeping behind a due slot


def test_a_manual_run_that_meets_a_due_slot_with_overlap_allowed_starts_both(
    made: Made, store: Store, clock: FakeClock
) -> None:
    request = new_request(store, T0, every="10s", allow_overlap=True)
    store.request_manual_run(request, T0)
    daemon = make(made, store, clock, workers=2)
    clock.advance(1)
    first = daemon.claim(clock.now())
    second = daemon.claim(clock.now())
    assert [c[1].id for c in first + second] == [request, request]
    assert sorted(r["reason"] for r in runs(store, request)) == ["manual", "schedule"]


def test_rescheduling_never_plans_a_slot_that_already_ran(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, every="1h")
    daemon = make(made, store, clock)
    clock.advance(1)
    (claimed,) = daemon.claim(clock.now())
    assert t(runs(store, request)[0]["planned_at"]) == T0
    clock.advance(5)
    moved = requests.reschedule(store, request, clock.now(), "UTC", TimingOptions(finish="2027-01-01T00:00"))
    assert moved.next_run_at == T0 + timedelta(hours=1)  # not T0 again, though within the grace
    requests.unschedule(store, request, clock.now())
    again = requests.reschedule(store, request, clock.now(), "UTC")
    assert again.next_run_at == T0 + timedelta(hours=1)


def test_a_daemon_whose_own_row_is_gone_claims_nothing(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, now=True)
    daemon = make(made, store, clock)
    daemon.register()
    store.conn.execute("DELETE FROM daemons WHERE id = ?", (daemon.id,))  # pruned long after a death
    clock.advance(1)
    daemon.claim(clock.now())
    assert runs(store, request) == []


# ----------------------------------------------------------------------
# Retries and recovery, by choice


def reruns(store: Store) -> list[dict[str, Any]]:
    return query(store.path, "SELECT * FROM reruns ORDER BY id")


def fail(store: Store, run_id: int, now: datetime, status: str = "error") -> None:
    """Record an outcome as the daemon does (the follow-up in the same transaction)."""
    with store.immediate():
        assert store.finish_run(run_id, status=status, ended_at=now)


@pytest.mark.daemon
def test_a_failed_run_is_retried_with_backoff_until_its_retries_are_spent(
    made: Made, store: Store, clock: FakeClock
) -> None:
    request = new_request(store, T0, "Raise", now=True, retries=2, retry_delay="10s")
    store.jitter = lambda: 0.0
    daemon = make(made, store, clock)
    for attempt, wait in ((1, 10), (2, 20), (3, None)):
        assert len(daemon.tick(clock.now())) == 1
        wait_reaped(daemon)  # a real worker raises; the daemon records the outcome
        run = runs(store, request)[-1]
        assert run["status"] == "error" and run["attempt"] == attempt
        assert run["reason"] == ("now" if attempt == 1 else "retry")
        if attempt > 1:
            assert run["retry_of"] == runs(store, request)[-2]["id"]
        if wait is None:
            assert "attempt 3 of 3: no retries left" in run["detail"] and reruns(store) == []
            break
        (rerun,) = reruns(store)
        assert rerun["run_id"] == run["id"] and rerun["attempt"] == attempt + 1
        assert t(rerun["due_at"]) == clock.now() + timedelta(seconds=wait)
        assert f"retry as attempt {attempt + 1} of 3" in run["detail"]
        # Not before it is due; the daemon sleeps until then.
        assert daemon.tick(clock.now()) == []
        assert daemon.dispatcher.tick_at == clock.now() + timedelta(seconds=wait)
        clock.advance(wait)
    assert [r["attempt"] for r in runs(store, request)] == [1, 2, 3]
    assert request_row(store, request)["status"] == "complete"  # a one-time request is retried all the same


@pytest.mark.daemon
def test_the_retry_is_written_with_the_outcome_or_not_at_all(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = new_request(store, T0, "Raise", now=True, retries=1, retry_delay="10s")
    daemon = make(made, store, clock)
    daemon.tick(clock.now())
    (run,) = daemon.active.values()
    wait_until(lambda: os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT), 10)
    original = store.follow_up

    def broken(*args: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "follow_up", broken)
    assert daemon.supervisor.reap() == 1  # reaped; its outcome waits
    assert runs(store, request)[0]["status"] == "running" and reruns(store) == []  # neither
    monkeypatch.setattr(store, "follow_up", original)
    assert daemon.supervisor.reap() == 0 and not daemon.active
    assert runs(store, request)[0]["status"] == "error" and len(reruns(store)) == 1  # both
    with pytest.raises(StoreConflict), store.immediate():  # and never twice
        store.conn.execute("UPDATE runs SET status = 'running' WHERE request_id = ?", (request,))
        store.finish_run(runs(store, request)[0]["id"], status="error", ended_at=clock.now())


def test_backoff_doubles_up_to_its_cap(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, now=True, retries=5, retry_delay="20m")
    store.jitter = lambda: 1.0  # the most jitter: a quarter more, the cap still holds
    daemon = make(made, store, clock)
    waits = []
    for _ in range(5):
        ((run_id, _, _),) = daemon.claim(clock.now())
        clock.advance(1)
        fail(store, run_id, clock.now(), "timeout")
        (rerun,) = reruns(store)
        waits.append((t(rerun["due_at"]) - clock.now()).total_seconds() / 60)
        clock.advance((t(rerun["due_at"]) - clock.now()).total_seconds())
    assert waits == [25, 50, 60, 60, 60]
    assert [r["attempt"] for r in runs(store, request)] == [1, 2, 3, 4, 5]


@pytest.mark.daemon
def test_never_a_retry_of_a_cancelled_run(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, "Hang", now=True, retries=3, retry_delay="1s")
    daemon = make(made, store, clock, kill_after_s=1.0)
    ((run_id),) = daemon.tick(clock.now())
    store.request_cancel(run_id, clock.now())
    daemon.supervisor.check_cancels()
    wait_reaped(daemon)
    (run,) = runs(store, request)
    assert run["status"] == "cancelled" and "retry" not in (run["detail"] or "")
    assert reruns(store) == []


def test_a_retry_waits_behind_the_running_run_and_counts_as_the_requests_run(
    made: Made, store: Store, clock: FakeClock
) -> None:
    request = new_request(store, T0, every="10s", retries=1, retry_delay="15s")
    store.jitter = lambda: 0.0
    daemon = make(made, store, clock, workers=4)
    clock.advance(1)
    ((first, _, _),) = daemon.claim(clock.now())
    clock.advance(1)
    fail(store, first, clock.now())  # retry due at +17
    clock.advance(8)
    ((slot, _, _),) = daemon.claim(clock.now())  # the slot at +10 starts meanwhile
    clock.advance(7)
    assert daemon.claim(clock.now()) == []  # +17: the retry waits for the slot's run
    assert store.next_due_at(after=clock.now()) == T0 + timedelta(seconds=20)  # waiting is not "due"
    clock.advance(1)
    with store.immediate():
        store.finish_run(slot, status="success", ended_at=clock.now())
    ((retry, _, _),) = daemon.claim(clock.now())
    row = runs(store, request)[-1]
    assert (row["id"], row["reason"], row["retry_of"], row["attempt"]) == (retry, "retry", first, 2)
    assert t(row["planned_at"]) == T0 + timedelta(seconds=17)
    clock.advance(2)
    assert daemon.claim(clock.now()) == []  # +20: the retry is the request's run: the slot is skipped
    assert runs(store, request)[-1]["status"] == "skipped"
    assert store.last_planned_at(request) == T0 + timedelta(seconds=20)  # retries are not slots


def test_a_retry_waits_for_a_free_worker(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, now=True, retries=1, retry_delay="1s")
    store.jitter = lambda: 0.0
    daemon = make(made, store, clock, workers=1)
    ((run_id, _, _),) = daemon.claim(clock.now())
    fail(store, run_id, clock.now())
    clock.advance(5)
    daemon.active = {99: SimpleNamespace(reaped=False)}  # type: ignore[dict-item]
    assert daemon.claim(clock.now()) == [] and len(reruns(store)) == 1
    daemon.active = {}
    ((retry, record, _),) = daemon.claim(clock.now())
    assert record.id == request and reruns(store) == []


def test_unscheduling_stops_retries_and_an_unregistered_task_is_not_retried(
    made: Made, store: Store, clock: FakeClock
) -> None:
    store.jitter = lambda: 0.0
    daemon = make(made, store, clock, workers=4)
    recurring = new_request(store, T0, every="1h", retries=3, retry_delay="1s")
    pending = new_request(store, T0, now=True, retries=3, retry_delay="1s")
    orphan = new_request(store, T0, now=True, retries=3, retry_delay="1s")
    once = new_request(store, T0, now=True, retries=3, retry_delay="1s")
    claimed = {record.id: run_id for run_id, record, _ in daemon.claim(clock.now())}
    # Unscheduled while its run goes, even a one-time request already complete: the
    # failure is not retried.
    for request in (recurring, once):
        requests.unschedule(store, request, clock.now())
        fail(store, claimed[request], clock.now())
        assert "not retried: its request was unscheduled" in runs(store, request)[0]["detail"]
    # A one-time request (complete) with a retry waiting can be unscheduled: the retry goes.
    fail(store, claimed[pending], clock.now())
    fail(store, claimed[orphan], clock.now())
    assert {r["request_id"] for r in reruns(store)} == {pending, orphan}
    requests.unschedule(store, pending, clock.now())
    assert request_row(store, pending)["status"] == "unscheduled"
    # Its task unregistered before the retry is due: dropped, and the failed run says so.
    with store.immediate():
        store.conn.execute("UPDATE tasks SET unregistered_at = ? WHERE name = 'Noop'", (T0.isoformat(),))
    clock.advance(5)
    assert daemon.claim(clock.now()) == []
    assert reruns(store) == [] and len(runs(store, orphan)) == 1
    assert "retry dropped: task 'Noop' is no longer registered" in runs(store, orphan)[0]["detail"]
    assert [len(runs(store, r)) for r in (recurring, pending, once)] == [1, 1, 1]


def test_an_interrupted_run_is_recovered_once_when_it_opted_in(made: Made, store: Store, clock: FakeClock) -> None:
    recovering = new_request(store, T0, now=True, recover=True)
    default = new_request(store, T0, now=True)
    other_daemon(store, "old:1:ffffff", "faraway", 4242, T0)
    first = running_row(store, recovering, T0, daemon_id="old:1:ffffff")
    plain = running_row(store, default, T0, daemon_id="old:1:ffffff")
    with store.immediate():  # claimed: complete
        for request in (recovering, default):
            store.advance_request(request, None, T0)
    store.stop_daemon("old:1:ffffff", T0)
    daemon = make(made, store, clock)
    clock.advance(1)
    daemon.reap_dead_daemons(clock.now())  # its runs: interrupted
    assert "not re-run" in runs(store, default)[0]["detail"]
    interrupted = runs(store, recovering)[0]
    assert interrupted["status"] == "interrupted" and "not re-run" not in interrupted["detail"]
    assert "to be recovered" in interrupted["detail"]
    ((run_id, record, _),) = daemon.claim(clock.now())  # due at once
    recovery = runs(store, recovering)[-1]
    assert (recovery["id"], recovery["reason"], recovery["retry_of"], recovery["attempt"]) == (
        run_id, "recovery", first, 1,
    )
    assert [r["id"] for r in runs(store, default)] == [plain]
    # A recovery run that is itself interrupted is not recovered again.
    with store.immediate():
        store.interrupt_daemon_runs(daemon.id, clock.now(), "interrupted: daemon stopped; not re-run")
    assert "not recovered again" in runs(store, recovering)[-1]["detail"] and reruns(store) == []
    assert daemon.claim(clock.now()) == [] and len(runs(store, recovering)) == 2


# ----------------------------------------------------------------------
# The application database


class _OnAServer:
    """The store as a daemon sees one kept on a server: no file (``path`` None)."""

    path = None

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_the_application_database_is_bgproc_app_db_else_the_file_else_none(tmp_path: Path) -> None:
    import logging

    from bgproc.errors import NoAppDatabase
    from bgproc.task import NO_APP_DB, Connection, application_db

    app, own = tmp_path / "app.db", tmp_path / "data" / "bgproc.db"
    assert application_db(own, str(app)) == application_db(None, str(app)) == str(app)
    assert application_db(own, None) == application_db(own, "") == str(own)
    assert application_db(None, None) is None and application_db(None, "") is None  # a database on a server
    assert application_db(None, "app.db") == os.path.abspath("app.db")
    connection = Connection(run_id=1, request_id=1, user="u", app_db_path="", log=logging.getLogger("t"))
    with pytest.raises(NoAppDatabase) as raised:
        connection.db  # noqa: B018 - the access is the test
    assert str(raised.value) == NO_APP_DB and "BGPROC_APP_DB=" in NO_APP_DB
    assert not hasattr(connection, "db")  # absent, as a task can check


def test_progress_refuses_what_it_cannot_show_in_the_task() -> None:
    import logging
    from decimal import Decimal
    from fractions import Fraction

    from bgproc.task import Connection

    told: list[tuple[Any, ...]] = []
    connection = Connection(
        run_id=1, request_id=1, user="u", app_db_path="", log=logging.getLogger("t"),
        on_progress=lambda *event: told.append(event),
    )
    for done, total in (("a", None), (None, None), (True, 10), (1, "10"), (Decimal(1), None), (1, [2])):
        with pytest.raises(TypeError, match=r"connection\.progress: (done|total) must be a number"):
            connection.progress(done, total)  # type: ignore[arg-type]
    for done, total in ((math.nan, 10), (1, math.nan), (math.inf, None), (1, -math.inf), (-1, 10), (1, -2)):
        with pytest.raises(ValueError, match=r"connection\.progress: (done|total) must be a finite number"):
            connection.progress(done, total)
    assert told == []
    connection.progress(3, 10, "three")
    connection.progress(Fraction(1, 2), 0)
    connection.progress(0)
    assert told == [(3.0, 10.0, "three"), (0.5, 0.0, None), (0.0, None, None)]
    assert all(type(n) is float for event in told for n in event[:2] if n is not None)


@pytest.mark.daemon
def test_on_a_server_without_bgproc_app_db_connection_db_is_the_runs_error(
    made: Made, store: Store, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BGPROC_APP_DB", raising=False)
    refused = new_request(store, T0, "AppRow", now=True)
    daemon = make(made, _OnAServer(store), clock)  # type: ignore[arg-type]
    assert len(daemon.tick(clock.now())) == 1
    wait_reaped(daemon)
    (run,) = runs(store, refused)
    log = query(store.path, "SELECT head || tail AS log FROM run_logs WHERE run_id = ?", run["id"])[0]["log"]
    assert run["status"] == "error"
    assert "NoAppDatabase: connection.db: no application database" in log and "set BGPROC_APP_DB=" in log
    assert "rows" not in {r["name"] for r in query(store.path, "SELECT name FROM sqlite_master")}
    # Set, it is the application database.
    monkeypatch.setenv("BGPROC_APP_DB", str(tmp_path / "app.db"))
    written = new_request(store, T0, "AppRow", now=True)
    daemon = make(made, _OnAServer(store), clock)  # type: ignore[arg-type]
    assert len(daemon.tick(clock.now())) == 1
    wait_reaped(daemon)
    (run,) = runs(store, written)
    assert run["status"] == "success"
    assert query(tmp_path / "app.db", "SELECT run_id FROM rows") == [{"run_id": run["id"]}]


def test_a_daemon_elsewhere_is_judged_by_the_databases_clock_where_it_keeps_one() -> None:
    # PostgreSQL's rows say how long each daemon has been silent by the server's clock:
    # the expiry applies to that, for a daemon and a command alike, however the
    # heartbeat's own value (another host's wall clock) reads here.
    from bgproc.daemon.membership import why_dead

    far = DaemonRecord(
        id="far:1:aaaaaa", host="faraway boot=x pidns=pid:[2]", pid=4242, started_at=T0,
        heartbeat_at=T0 + timedelta(hours=3), stopped_at=None, workers=1, silent_s=59.0,
    )
    judged = {"here": "nowhere", "mono": 0.0, "seen": {}, "own_beats": 0}
    assert why_dead(far, **judged, expiry_s=60.0) is None  # type: ignore[arg-type]
    why = why_dead(dataclasses.replace(far, silent_s=61.0), **judged, expiry_s=60.0)  # type: ignore[arg-type]
    assert why is not None and why.startswith("stopped heartbeating (no heartbeat for 61s by the database's clock")
