"""The system clock set back or forward under a running daemon, with a ``FakeClock``
whose wall time jumps while its monotonic time does not. Workers are real
processes; nothing sleeps to let time pass."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import test_daemon_tick as tick
from conftest import query
from test_daemon_tick import T0, Made, make, new_request, other_daemon, request_row, runs, t, wait_reaped

from bgproc import requests
from bgproc.clock import FakeClock
from bgproc.daemon import Daemon
from bgproc.store.decide import decide
from bgproc.store.sqlite import SQLiteStore as Store
from bgproc.timing import TimingOptions

HOUR = 3600.0

# The fake-clock daemon tests' fixtures: a database with the test tasks, daemons shut down after.
template, store, made = tick.template, tick.store, tick.made


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def other(store: Store) -> Iterator[Store]:
    """Another connection, as the command line's: its writes wake the daemon."""
    with Store.open(store.path) as opened:
        yield opened


def drive(daemon: Daemon, clock: FakeClock, seconds: float) -> None:
    """Run the daemon's loop for ``seconds`` of fake time: each wait advances the clock
    by what the loop asked for (and gives real workers a moment of real time)."""
    end = clock.monotonic() + seconds
    real_wait = daemon._wait

    def wait(timeout: float) -> None:
        clock.advance(max(0.0, min(timeout, end - clock.monotonic())))
        real_wait(min(timeout, 0.01))

    daemon._wait = wait  # type: ignore[method-assign]
    try:
        while clock.monotonic() < end:
            daemon._iterate()  # one pass, as ``Daemon.run`` makes them
            daemon._wait(daemon._pause)
    finally:
        daemon._wait = real_wait  # type: ignore[method-assign]


def executed(store: Store, request_id: int) -> list[dict[str, Any]]:
    return [r for r in runs(store, request_id) if r["status"] not in ("skipped", "missed")]


def make_request(other: Store, when: datetime, task: str = "Noop", **timing: Any) -> int:
    """``bgproc schedule`` through another connection, at ``when``."""
    planned = requests.plan(other, task, now=when, default_zone="UTC", timing=TimingOptions(**timing))
    record = requests.create(other, planned, when)
    return record.id


# ----------------------------------------------------------------------
# Set back


@pytest.mark.daemon
def test_clock_set_back_an_hour_does_not_stall_the_daemon(
    made: Made, store: Store, other: Store, clock: FakeClock
) -> None:
    minutely = make_request(other, T0, every="1m")
    daemon = make(made, store, clock, workers=2, poll_s=1.0, heartbeat_s=5.0)
    daemon._start()
    try:
        drive(daemon, clock, 30)
        assert [r["status"] for r in executed(store, minutely)] == ["success"]
        beats = daemon.membership.beats
        clock.jump(-HOUR)
        back = clock.now()
        drive(daemon, clock, 60)
        # Heartbeats go on (monotonic time), written with the new wall time.
        assert daemon.membership.beats >= beats + 10
        (row,) = query(store.path, "SELECT heartbeat_at FROM daemons WHERE id = ?", daemon.id)
        assert t(row["heartbeat_at"]) >= back  # type: ignore[operator]
        # A --now request and a manual run start at once.
        now_request = make_request(other, clock.now(), now=True)
        other.request_manual_run(minutely, clock.now())
        asked = clock.now()
        drive(daemon, clock, 2)
        (now_run,) = executed(store, now_request)
        manual = [r for r in executed(store, minutely) if r["reason"] == "manual"]
        assert len(manual) == 1
        for run in (now_run, manual[0]):
            assert asked <= t(run["started_at"]) <= asked + timedelta(seconds=2)  # type: ignore[operator]
        # The schedule's next slot comes when the clock reaches it again; none is run twice.
        assert [r["reason"] for r in executed(store, minutely)] == ["schedule", "manual"]
        clock.advance(HOUR - 60)  # the clock has caught up (the loop would have slept meanwhile)
        drive(daemon, clock, 60)
        scheduled = [r for r in executed(store, minutely) if r["reason"] != "manual"]
        assert [t(r["planned_at"]) for r in scheduled] == [T0, T0 + timedelta(minutes=1)]
        assert not [r for r in runs(store, minutely) if r["status"] == "missed"]
    finally:
        daemon._shutdown()


@pytest.mark.daemon
def test_a_fire_due_before_the_clock_was_set_back_runs_at_once(
    made: Made, store: Store, clock: FakeClock
) -> None:
    new_request(store, T0, "Hang", now=True)
    minutely = new_request(store, T0, every="1m", start=T0 + timedelta(seconds=1))
    daemon = make(made, store, clock, workers=1, kill_after_s=0.5)
    (hang_run,) = daemon.tick(clock.now())
    clock.advance(5)
    assert daemon.tick(clock.now()) == []  # due, but no free worker
    clock.jump(-HOUR)  # the wall clock reads 08:00:05 again
    store.request_cancel(hang_run, clock.now())
    daemon.supervisor.check_cancels()
    wait_reaped(daemon)
    (run_id,) = daemon.tick(clock.now())  # not an hour from now
    (run,) = executed(store, minutely)
    assert run["id"] == run_id and t(run["planned_at"]) == T0 + timedelta(seconds=1) and run["reason"] == "schedule"
    # Its next slot is after the time the clock had reached: never one it already had.
    assert t(request_row(store, minutely)["next_run_at"]) == T0 + timedelta(minutes=1, seconds=1)
    wait_reaped(daemon)
    assert daemon.tick(clock.now()) == []


@pytest.mark.daemon
def test_a_run_across_the_clock_set_back_ends_after_it_started(made: Made, store: Store, clock: FakeClock) -> None:
    request = new_request(store, T0, now=True)
    daemon = make(made, store, clock)
    clock.advance(1)
    daemon.tick(clock.now())
    clock.advance(2)
    clock.jump(-HOUR)  # while the run goes
    wait_reaped(daemon)
    (run,) = runs(store, request)
    assert run["status"] == "success"
    # Its end is its start plus the time it took, not the wall clock's reading.
    assert t(run["started_at"]) == T0 + timedelta(seconds=1)
    assert t(run["ended_at"]) == T0 + timedelta(seconds=3)


def test_a_slot_claimed_once_the_clock_is_behind_it_moves_the_request_past_it(store: Store) -> None:
    # `daemon --once` claims what was due when it started; the clock may be set back since.
    record = store.get_request(new_request(store, T0, every="1m"))
    behind, started = T0 - timedelta(hours=1), T0 + timedelta(seconds=5)
    for busy in (False, True):
        claim = decide(record, now=behind, due_by=started, busy=busy, free=1)
        assert claim.action == ("skip" if busy else "start") and claim.planned_at == T0
        assert claim.next_run_at == T0 + timedelta(minutes=1)  # not T0 again


@pytest.mark.daemon
def test_clock_set_back_runs_no_slot_twice(made: Made, store: Store, clock: FakeClock) -> None:
    minutely = new_request(store, T0, every="1m")
    daily = new_request(store, T0, daily=True, start=T0)
    daemon = make(made, store, clock, workers=2)
    for _ in range(2):  # 09:00 and 09:01
        daemon.tick(clock.now())
        wait_reaped(daemon)
        clock.advance(60)
    clock.advance(10)
    clock.jump(-HOUR)  # 09:02:10 -> 08:02:10
    counts = []
    for _ in range(70):  # a tick a minute, until the clock is past 09:11
        daemon.tick(clock.now())
        wait_reaped(daemon)
        counts.append(len(executed(store, minutely)))
        clock.advance(60)
    # Nothing while the clock is back in the hour it had seen; then each slot once, in order.
    assert counts[:58] == [2] * 58 and counts[-1] == 12
    planned = [t(r["planned_at"]) for r in executed(store, minutely)]
    assert planned == [T0 + timedelta(minutes=m) for m in range(12)]
    assert [t(r["planned_at"]) for r in executed(store, daily)] == [T0]
    assert not [r for r in runs(store, minutely) if r["status"] == "missed"]


# ----------------------------------------------------------------------
# Set forward


@pytest.mark.daemon
def test_clock_set_forward_a_day_is_one_catch_up_per_request(made: Made, store: Store, clock: FakeClock) -> None:
    timings: dict[str, dict[str, Any]] = {
        "every": {"every": "1m"},
        "hourly": {"hourly": True, "start": T0},
        "daily": {"daily": True, "start": T0},
        "cron": {"cron": "*/5 * * * *"},
    }
    ids = {name: new_request(store, T0, **timing) for name, timing in timings.items()}
    hang = new_request(store, T0, "Hang", every="1m")  # busy across the jump
    with store.immediate():
        store.conn.execute("UPDATE requests SET timeout_s = 30 WHERE id = ?", (hang,))
    other_daemon(store, "far:1:aaaaaa", "faraway boot=x pidns=pid:[2]", 4242, T0)
    daemon = make(made, store, clock, workers=8, kill_after_s=0.5)
    daemon.register()
    assert len(daemon.tick(clock.now())) == 5
    daemon._beat(clock.now())
    wait_reaped_except(daemon, hang)
    clock.advance(10)
    clock.jump(86400)
    daemon.supervisor.enforce_deadlines(clock.monotonic())
    daemon._beat(clock.now())
    assert len(daemon.tick(clock.now())) == 4
    for name, request in ids.items():
        rows = runs(store, request)[1:]
        ran = [r for r in rows if r["status"] not in ("missed",)]
        missed = [r for r in rows if r["status"] == "missed"]
        assert len(ran) == 1 and len(missed) <= 1, name
        assert t(request_row(store, request)["next_run_at"]) > clock.now(), name  # type: ignore[operator]
    assert [r["reason"] for r in executed(store, ids["every"])] == ["schedule", "catch-up"]
    assert runs(store, ids["every"])[-1]["missed_count"] == 24 * 60 - 1
    # The run going across the jump: not past its timeout (monotonic), its slots one skipped row.
    (going, skipped) = runs(store, hang)
    assert going["status"] == "running" and skipped["status"] == "skipped"
    assert skipped["missed_count"] == 24 * 60 - 1
    # The other daemon: its heartbeat did not change for no time at all.
    assert store.get_daemon("far:1:aaaaaa").stopped_at is None  # type: ignore[union-attr]
    wait_reaped_except(daemon, hang)
    assert daemon.tick(clock.now()) == []  # no burst


def wait_reaped_except(daemon: Daemon, request_id: int) -> None:
    import time

    deadline = time.monotonic() + 20
    while any(run.request_id != request_id for run in daemon.active.values()):
        assert time.monotonic() < deadline, "workers did not end"
        daemon._wait(0.05)
        daemon.supervisor.reap()
