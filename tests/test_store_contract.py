"""The store contract: every operation of ``bgproc.store.base.Store``, held to its
docstring, against every store.

A store under test is a parameter of the ``backend`` fixture: a fresh, empty
database (``target``), a way to open stores on it, and a way to hold the lock that
writers need from another connection. A second store is one module plus one
backend here; the tests do not change.
"""

from __future__ import annotations

import inspect
import re
import select
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pgserver
import pytest

from bgproc.clock import utcnow
from bgproc.errors import NotFound, RegistryError, StateError, StoreBusy, StoreError
from bgproc.store import LogWrite, Store, open_store
from bgproc.store.records import DaemonRecord, TaskRecord
from bgproc.timing import Timing

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ME, OTHER = "here:1:aaaaaa", "there:2:bbbbbb"


class SQLiteBackend:
    """A SQLite file in a private directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.target = f"sqlite://{tmp_path / 'data' / 'bgproc.db'}"

    def open(self) -> Store:
        return open_store(self.target)

    @contextmanager
    def hold_lock(self) -> Iterator[None]:
        conn = sqlite3.connect(self.target.removeprefix("sqlite://"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


class PostgresBackend:
    """A fresh database on the test server (``pgserver``), dropped afterwards."""

    server_clock = True  # heartbeats are the server's time

    def __init__(self, tmp_path: Path) -> None:
        self._database = pgserver.fresh_database()
        self.target = self._database.__enter__()

    def open(self) -> Store:
        return open_store(self.target)

    def hold_lock(self) -> AbstractContextManager[None]:
        return pgserver.lock_everything(self.target)

    def close(self) -> None:
        self._database.__exit__(None, None, None)


BACKENDS: dict[str, Callable[[Path], Any]] = {"sqlite": SQLiteBackend, "postgres": PostgresBackend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made = BACKENDS[request.param](tmp_path)
    yield made
    if hasattr(made, "close"):
        made.close()


@pytest.fixture
def store(backend: Any) -> Iterator[Store]:
    with backend.open() as opened:
        opened.jitter = lambda: 0.0
        yield opened


def task(name: str = "Noop", module: str = "app.tasks", **policy: Any) -> TaskRecord:
    return TaskRecord(
        name=name, import_path=f"{module}:{name}", module=module, search_path=None, params_type="app:P",
        fields=[], description="", timeout_s=60.0, **policy,
    )


def request(store: Store, timing: Timing | None = None, *, task_name: str = "Noop", due: datetime | None = T0,
            **options: Any) -> int:
    timing = timing or Timing(kind="now", zone="UTC", start=T0)
    return store.insert_request(
        task=task_name, params=b"\x80", timing=timing, next_run_at=due, timeout_s=None,
        allow_overlap=options.pop("allow_overlap", False), user="u", now=T0, **options,
    )


def every(seconds: float, start: datetime = T0) -> Timing:
    return Timing(kind="every", zone="UTC", start=start, interval=timedelta(seconds=seconds))


def daemon(daemon_id: str = ME, host: str = "here") -> DaemonRecord:
    return DaemonRecord(id=daemon_id, host=host, pid=1, started_at=T0, heartbeat_at=T0, stopped_at=None, workers=4)


@pytest.fixture
def noop(store: Store) -> Store:
    """The store with the task ``Noop`` registered (and ``Other``)."""
    store.save_modules([("app.tasks", [task("Noop"), task("Other")])], T0)
    return store


def claim(store: Store, at: datetime = T0, free: int = 4, who: str = ME, **kwargs: Any) -> list[int]:
    result = store.claim_due(who, at, at, free, registered=False, **kwargs)
    return [c.run_id for c in result.runs]


def one_run(store: Store, **options: Any) -> int:
    """A one-time request, claimed: its run's id."""
    request(store, **options)
    (run_id,) = claim(store, free=1)
    return run_id


def statuses(store: Store, request_id: int) -> list[tuple[str, str | None]]:
    return [(r.status, r.reason) for r in reversed(store.list_runs(request_id=request_id))]


# ----------------------------------------------------------------------
# The store itself


def test_opened_again_from_its_target_it_is_the_same_database(backend: Any, noop: Store) -> None:
    with open_store(noop.target) as again:
        assert [t.name for t in again.list_tasks()] == ["Noop", "Other"]
    assert noop.path is None or noop.path.exists()


def test_changes_moves_when_another_store_commits(backend: Any, noop: Store) -> None:
    before = noop.changes()
    assert noop.changes() == before
    with backend.open() as other:
        request(other)
    assert noop.changes() != before


def test_a_notifier_wakes_a_select_when_another_store_changes_requests(backend: Any, noop: Store) -> None:
    notifier = noop.listen("d1")
    if notifier is None:
        pytest.skip("no wake-ups on this platform")
    try:
        assert select.select([notifier.fileno()], [], [], 0)[0] == []
        with backend.open() as other:
            request(other)
        assert select.select([notifier.fileno()], [], [], 5)[0] == [notifier.fileno()]
        notifier.drain()
        assert select.select([notifier.fileno()], [], [], 0)[0] == []
        notifier.notify()  # a notifier wakes the listeners too, itself included
        assert select.select([notifier.fileno()], [], [], 5)[0] == [notifier.fileno()]
    finally:
        notifier.close()


def test_an_untouched_database_raises_no_problem(noop: Store) -> None:
    assert noop.watch().check() is None


def test_a_lock_held_elsewhere_is_named_busy_and_nothing_is_written(backend: Any, noop: Store) -> None:
    noop.set_busy_timeout(20)
    with backend.hold_lock(), pytest.raises(StoreBusy) as refused:
        request(noop)
    assert str(refused.value).startswith("the database is busy (") and "another connection holds its lock" in str(
        refused.value
    )
    assert refused.value.condition.startswith("database busy (") and not refused.value.fatal
    assert noop.list_requests(include_all=True) == []


# ----------------------------------------------------------------------
# Tasks


def test_modules_are_saved_as_a_batch(noop: Store) -> None:
    assert [t.name for t in noop.list_tasks()] == ["Noop", "Other"]
    assert noop.find_task_by_import_path("app.tasks:Other") == noop.get_task("Other")
    waiting = request(noop, task_name="Other")
    # Other left the module: unregistered (its request unscheduled), and named.
    assert noop.save_modules([("app.tasks", [task("Noop")])], T0) == [["Other"]]
    assert noop.get_task("Other") is None and noop.get_task("Other", include_unregistered=True) is not None
    assert noop.get_request(waiting).status == "unscheduled"
    with pytest.raises(RegistryError, match="already registered from module app.tasks"):
        noop.save_modules([("elsewhere", [task("Brand"), task("Noop", "elsewhere")])], T0)
    assert noop.get_task("Brand") is None and noop.get_task("Noop").module == "app.tasks"  # type: ignore[union-attr]
    # A task that moves between two modules of one batch is updated.
    assert noop.save_modules([("app.tasks", []), ("app.new", [task("Noop", "app.new")])], T0) == [[], []]
    assert noop.get_task("Noop").module == "app.new"  # type: ignore[union-attr]


def test_unregistering_a_task_unschedules_its_requests(noop: Store) -> None:
    scheduled, pending = request(noop), request(noop, task_name="Other")
    assert noop.pending_request_params("Noop") == [(scheduled, b"\x80")]
    assert noop.unregister_task("Noop", T0) == 1
    assert noop.get_request(scheduled).status == "unscheduled" and noop.pending_request_params("Noop") == []
    assert noop.get_request(pending).status == "scheduled"
    with pytest.raises(NotFound, match="bgproc tasks"):
        noop.unregister_task("Noop", T0)


# ----------------------------------------------------------------------
# Requests


def test_a_request_reads_back_as_it_was_made(noop: Store) -> None:
    timing = Timing(kind="weekly", zone="Europe/Berlin", start=T0, finish=T0 + timedelta(days=30), weekdays=(0, 4))
    made = request(noop, timing, due=timing.due_from(T0), retries=2, recover=True)
    record = noop.get_request(made)
    assert (record.timing, record.next_run_at, record.status, record.user) == (
        timing, timing.due_from(T0), "scheduled", "u"
    )
    assert (record.retries, record.retry_delay_s, record.recover, record.policy().retries) == (2, None, True, 2)
    with pytest.raises(NotFound, match="bgproc requests --all"):
        noop.get_request(made + 1)


def test_requests_are_listed_scheduled_first_by_id(noop: Store) -> None:
    first, second, third = request(noop), request(noop), request(noop)
    noop.set_request_schedule(second, status="unscheduled", next_run_at=None, now=T0)
    assert [r.id for r in noop.list_requests()] == [first, third]
    assert [r.id for r in noop.list_requests(include_all=True)] == [first, second, third]
    assert [r.id for r in noop.list_requests(include_all=True, limit=2)] == [first, second]


def test_a_schedule_changes_only_from_the_expected_status(noop: Store) -> None:
    made = request(noop)
    with pytest.raises(StateError, match=f"request {made} is scheduled"):
        noop.set_request_schedule(made, status="scheduled", next_run_at=T0, now=T0, expect_status=("unscheduled",))
    noop.set_request_schedule(
        made, status="scheduled", next_run_at=T0 + timedelta(hours=1), now=T0, timing=every(60),
        policy={"retries": 3, "recover": True},
    )
    record = noop.get_request(made)
    assert (record.timing, record.next_run_at, record.retries, record.recover) == (
        every(60), T0 + timedelta(hours=1), 3, True
    )
    with pytest.raises(NotFound):
        noop.set_request_schedule(made + 1, status="unscheduled", next_run_at=None, now=T0)


def test_unscheduling_is_refused_as_a_whole(noop: Store) -> None:
    made, done = request(noop), request(noop)
    noop.set_request_schedule(done, status="complete", next_run_at=None, now=T0)
    with pytest.raises(StateError, match="not scheduled; nothing to unschedule"):
        noop.unschedule_requests([made, done], T0)
    with pytest.raises(NotFound):
        noop.unschedule_requests([made, done + 1], T0)
    assert noop.get_request(made).status == "scheduled"
    noop.request_manual_run(done, T0)  # a manual run asked for is something to unschedule
    noop.unschedule_requests([made, done], T0)
    assert [noop.get_request(i).status for i in (made, done)] == ["unscheduled", "complete"]
    assert noop.get_request(done).manual_at is None and noop.next_due_at() is None


def test_a_manual_run_is_asked_for_once_and_claimed_as_manual(noop: Store) -> None:
    made = request(noop, every(3600), due=T0 + timedelta(hours=1))
    assert noop.request_manual_run(made, T0).manual_at == T0
    assert noop.request_manual_run(made, T0 + timedelta(seconds=5)).manual_at == T0  # asked already
    assert noop.next_due_at() == T0
    assert len(claim(noop, T0 + timedelta(seconds=5))) == 1
    assert statuses(noop, made) == [("running", "manual")]
    assert noop.get_request(made).next_run_at == T0 + timedelta(hours=1)  # its timing untouched
    with pytest.raises(NotFound):
        noop.request_manual_run(made + 1, T0)


def test_next_due_leaves_out_what_waits_for_a_run_going(noop: Store) -> None:
    once = request(noop)
    later = request(noop, every(60, T0 + timedelta(minutes=5)), due=T0 + timedelta(minutes=5))
    assert noop.next_due_at() == T0 and noop.next_due_at(after=T0) == T0 + timedelta(minutes=5)
    claim(noop)
    noop.request_manual_run(once, T0)  # waits for the run going
    assert noop.next_due_at() == T0 + timedelta(minutes=5)
    assert noop.get_request(later).next_run_at == T0 + timedelta(minutes=5)


# ----------------------------------------------------------------------
# Claiming


def test_nothing_due_takes_no_write_lock(backend: Any, noop: Store) -> None:
    request(noop, every(60, T0 + timedelta(minutes=1)), due=T0 + timedelta(minutes=1))
    with backend.hold_lock():
        result = noop.claim_due(ME, T0, T0, 4)
    assert result.runs == [] and result.next_due == T0 + timedelta(minutes=1) and not result.more


def test_a_due_request_is_claimed_as_a_running_run_and_moved_on(noop: Store) -> None:
    once, recurring = request(noop), request(noop, every(60))
    result = noop.claim_due(ME, T0, T0, 4, registered=False)
    assert [c.request.id for c in result.runs] == [once, recurring]
    assert [c.task.name for c in result.runs] == ["Noop", "Noop"]
    assert noop.get_request(once).status == "complete"
    assert noop.get_request(recurring).next_run_at == T0 + timedelta(minutes=1)
    assert result.next_due == T0 + timedelta(minutes=1) and not result.more
    run = noop.get_run(result.runs[0].run_id)
    assert (run.status, run.reason, run.daemon_id, run.planned_at, run.started_at) == ("running", "now", ME, T0, T0)
    assert [r.id for r in noop.running_runs(ME)] == [c.run_id for c in result.runs] and noop.running_runs(OTHER) == []
    assert any(f"claimed run {run.id}" in event for event in result.events)
    assert noop.last_planned_at(recurring) == T0


def test_claims_are_oldest_first_within_the_free_workers(noop: Store) -> None:
    ids = [request(noop, due=T0 + timedelta(seconds=s)) for s in (2, 0, 1)]
    later = T0 + timedelta(seconds=5)
    first = noop.claim_due(ME, later, later, 2, registered=False)
    # No worker left: the rest waits for one to end, not for a time.
    assert [c.request.id for c in first.runs] == [ids[1], ids[2]] and not first.more and first.next_due is None
    assert noop.claim_due(ME, later, later, 0, registered=False).runs == []
    request(noop, due=T0 + timedelta(seconds=3))
    # Workers left, but the batch was full: claim again at once.
    batch = noop.claim_due(ME, later, later, 3, limit=1, registered=False)
    assert [c.request.id for c in batch.runs] == [ids[0]] and batch.more


def test_a_slot_behind_a_run_going_is_skipped_and_a_one_time_request_waits(noop: Store) -> None:
    recurring, once = request(noop, every(10)), request(noop)
    claim(noop)
    noop.request_manual_run(once, T0 + timedelta(seconds=10))
    later = T0 + timedelta(seconds=35)
    assert claim(noop, later) == []
    assert statuses(noop, recurring) == [("running", "schedule"), ("skipped", "schedule")]
    skipped = noop.list_runs(request_id=recurring, status="skipped")[0]
    assert (skipped.planned_at, skipped.missed_count) == (T0 + timedelta(seconds=10), 2)
    assert statuses(noop, once) == [("running", "now")]
    assert noop.get_request(recurring).next_run_at == T0 + timedelta(seconds=40)


def test_overlap_allowed_runs_beside_the_run_going(noop: Store) -> None:
    made = request(noop, every(10), allow_overlap=True)
    claim(noop)
    assert len(claim(noop, T0 + timedelta(seconds=10))) == 1
    assert statuses(noop, made) == [("running", "schedule"), ("running", "schedule")]


def test_slots_missed_while_no_daemon_ran_are_one_catch_up(noop: Store) -> None:
    made = request(noop, every(10))
    assert len(claim(noop, T0 + timedelta(seconds=45))) == 1
    assert statuses(noop, made) == [("running", "catch-up"), ("missed", None)]
    missed = noop.list_runs(request_id=made, status="missed")[0]
    assert (missed.missed_count, missed.missed_until) == (4, T0 + timedelta(seconds=40))


def test_a_task_no_longer_registered_gets_an_error_run(noop: Store) -> None:
    made = request(noop)
    noop.unregister_task("Noop", T0)
    noop.request_manual_run(made, T0)
    result = noop.claim_due(ME, T0, T0, 4, registered=False)
    assert result.runs == [] and any("is not registered" in event for event in result.events)
    (run,) = noop.list_runs(request_id=made)
    assert run.status == "error" and "register its module again" in (run.detail or "")


def test_a_daemon_declared_dead_claims_nothing(noop: Store) -> None:
    noop.register_daemon(daemon())
    request(noop)
    noop.interrupt_daemon_runs(ME, T0, "interrupted: declared dead")
    result = noop.claim_due(ME, T0, T0, 4)
    assert result.declared_dead and result.runs == [] and noop.running_runs() == []
    noop.register_daemon(daemon(OTHER))
    assert len(noop.claim_due(OTHER, T0, T0, 4).runs) == 1


def test_each_slot_is_claimed_once_by_two_stores_on_one_database(backend: Any, noop: Store) -> None:
    made = [request(noop, due=T0 + timedelta(microseconds=i)) for i in range(40)]
    recurring = [request(noop, every(1)) for _ in range(5)]
    claimed: dict[str, list[int]] = {ME: [], OTHER: []}
    failures: list[BaseException] = []

    def claimer(who: str) -> None:
        try:
            with backend.open() as mine:
                for second in range(6):
                    at = T0 + timedelta(seconds=second)
                    while runs := mine.claim_due(who, at, at, 3, registered=False).runs:
                        claimed[who] += [run.run_id for run in runs]
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=claimer, args=(who,)) for who in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert len(claimed[ME]) + len(claimed[OTHER]) == len(set(claimed[ME]) | set(claimed[OTHER]))
    for request_id in made:
        assert [s for s, _ in statuses(noop, request_id)] == ["running"]
    for request_id in recurring:  # one run, then each later slot counted once
        rows = noop.list_runs(request_id=request_id)
        assert sum(1 + (r.missed_count or 0) for r in rows if r.status != "missed") == 6


# ----------------------------------------------------------------------
# Runs


def test_an_outcome_is_recorded_once_with_the_rest_of_its_log(noop: Store) -> None:
    run_id = one_run(noop)
    noop.set_run_pid(run_id, 4242)
    noop.write_logs([LogWrite(run_id=run_id, append_head="a\n", dropped=0, progress=(1, 2, "half"))])
    running = noop.get_run(run_id)
    assert (running.pid, running.log, running.progress_done, running.progress_message) == (4242, "a\n", 1, "half")
    last = LogWrite(run_id=run_id, append_head="b\n", tail="z\n", dropped=7)
    assert noop.finish_run(run_id, status="success", ended_at=T0 + timedelta(seconds=3), exit_code=0, log=last)
    again = LogWrite(run_id=run_id, append_head="c\n", tail="z\n", dropped=7)
    assert not noop.finish_run(run_id, status="error", ended_at=T0 + timedelta(seconds=9), log=again)
    done = noop.get_run(run_id)
    assert (done.status, done.exit_code, done.duration_s()) == ("success", 0, 3)
    assert done.log == "a\nb\nc\n[... 7 bytes of log dropped ...]\nz\n"
    assert noop.running_runs() == []


def test_a_log_write_without_its_log_leaves_the_log(noop: Store) -> None:
    run_id = one_run(noop)
    noop.write_logs([LogWrite(run_id=run_id, append_head="a\n", tail="t\n", dropped=3)])
    noop.write_logs([LogWrite(run_id=run_id, progress=(5, None, None))])
    run = noop.get_run(run_id)
    assert (run.log_head, run.log_tail, run.log_dropped, run.progress_done) == ("a\n", "t\n", 3, 5)


def test_a_failed_run_is_retried_as_a_linked_run(noop: Store) -> None:
    made = request(noop, retries=1, retry_delay_s=30.0)
    (first,) = claim(noop)
    assert noop.finish_run(first, status="error", ended_at=T0, exit_code=1)
    assert "retry as attempt 2 of 2" in (noop.get_run(first).detail or "")
    assert noop.next_due_at() == T0 + timedelta(seconds=30)
    assert claim(noop, T0 + timedelta(seconds=29)) == []
    (retry,) = claim(noop, T0 + timedelta(seconds=30))
    record = noop.get_run(retry)
    assert (record.reason, record.attempt, record.retry_of, record.request_id) == ("retry", 2, first, made)
    assert noop.get_run(first).followed_by == retry
    noop.finish_run(retry, status="error", ended_at=T0 + timedelta(seconds=31))
    assert "no retries left" in (noop.get_run(retry).detail or "") and noop.next_due_at() is None


def test_a_request_with_a_retry_or_recovery_waiting_says_so_and_is_listed(noop: Store) -> None:
    recovered = request(noop, recover=True)
    other = request(noop)
    retried = request(noop, every(3600), retries=2, retry_delay_s=30.0)
    first, second, third = claim(noop)
    assert noop.get_request(recovered).follow_up_at is None
    noop.finish_run(first, status="interrupted", ended_at=T0)
    noop.finish_run(second, status="interrupted", ended_at=T0)
    noop.finish_run(third, status="error", ended_at=T0)
    waiting = noop.get_request(recovered)
    assert (waiting.status, waiting.next_run_at) == ("complete", None)
    assert (waiting.follow_up_reason, waiting.follow_up_at) == ("recovery", T0)
    again = noop.get_request(retried)
    assert (again.follow_up_reason, again.follow_up_at) == ("retry", T0 + timedelta(seconds=30))
    assert noop.get_request(other).follow_up_at is None
    assert [r.id for r in noop.list_requests()] == [recovered, retried]  # the other is complete, nothing waits
    (recovery,) = claim(noop, T0, free=1)
    noop.finish_run(recovery, status="success", ended_at=T0)
    assert noop.get_request(recovered).follow_up_at is None
    assert [r.id for r in noop.list_requests()] == [retried]


def test_a_cancel_is_asked_for_a_running_run_only(noop: Store) -> None:
    run_id = one_run(noop)
    assert noop.cancel_requested([run_id]) == []
    assert noop.request_cancel(run_id, T0).cancel_requested_at == T0
    assert noop.cancel_requested([run_id, run_id + 1]) == [run_id]
    noop.finish_run(run_id, status="cancelled", ended_at=T0)
    with pytest.raises(StateError, match="is cancelled, not running"):
        noop.request_cancel(run_id, T0)
    with pytest.raises(NotFound, match="bgproc monitor"):
        noop.request_cancel(run_id + 1, T0)
    with pytest.raises(NotFound):
        noop.get_run(run_id + 1)


def test_runs_are_listed_newest_first_by_every_filter(noop: Store) -> None:
    first, other = request(noop), request(noop, task_name="Other")
    (a, b) = claim(noop)
    noop.finish_run(a, status="error", ended_at=T0)
    assert [r.id for r in noop.list_runs()] == [b, a]
    assert [r.id for r in noop.list_runs(status="error")] == [a]
    assert [r.id for r in noop.list_runs(task="Other")] == [b]
    assert [r.id for r in noop.list_runs(request_id=first)] == [a]
    assert [r.id for r in noop.list_runs(limit=1)] == [b]
    assert noop.list_runs(since=T0 + timedelta(seconds=1)) == []
    assert noop.list_runs(request_id=other, with_log=True)[0].log == ""


def test_every_row_a_pass_writes_records_its_host_and_runs_are_listed_by_host(noop: Store) -> None:
    recurring, gone = request(noop, every(10)), request(noop, task_name="Other")
    noop.unregister_task("Other", T0)
    noop.request_manual_run(gone, T0)
    # alpha: a catch-up with its missed row, and an error row (its task is gone).
    (going,) = claim(noop, T0 + timedelta(seconds=25), host="alpha")
    # beta: the next slot, skipped behind the run going.
    assert claim(noop, T0 + timedelta(seconds=35), who=OTHER, host="beta") == []
    rows = {(r.status, r.reason): r for r in noop.list_runs()}
    assert set(rows) == {("running", "catch-up"), ("missed", None), ("error", "manual"), ("skipped", "schedule")}
    assert {key: r.host for key, r in rows.items()} == {
        ("running", "catch-up"): "alpha", ("missed", None): "alpha", ("error", "manual"): "alpha",
        ("skipped", "schedule"): "beta",
    }
    assert [r.id for r in noop.list_runs(host="beta")] == [rows["skipped", "schedule"].id]
    assert [r.status for r in noop.list_runs(host="alpha", request_id=recurring)] == ["missed", "running"]
    assert [r.id for r in noop.list_runs(host="alpha", status="running")] == [going]
    assert noop.list_runs(host="alpha", task="Noop", limit=1)[0].status == "missed"
    assert noop.list_runs(host="alph") == [] and noop.list_runs(host="beta", status="running") == []
    assert noop.get_run(going).host == "alpha"
    # A pass that names no host records none.
    request(noop)
    (unknown,) = claim(noop, T0 + timedelta(seconds=26))
    assert noop.get_run(unknown).host is None


# ----------------------------------------------------------------------
# Daemons


def test_a_daemon_beats_until_it_is_recorded_stopped(backend: Any, noop: Store) -> None:
    noop.register_daemon(daemon())
    assert noop.beat(ME, T0 + timedelta(seconds=5))
    beaten = noop.get_daemon(ME)
    assert beaten is not None
    # Where the database keeps the time, a silent row is a dead daemon's for any judge:
    # a daemon cut off from it must stop its runs first (the daemon's fence).
    assert noop.heartbeats_expire is bool(getattr(backend, "server_clock", False))
    if getattr(backend, "server_clock", False):
        # The database keeps the time: the heartbeat is its clock's, and the row says
        # how long ago that was by the same clock.
        server_now = utcnow() + timedelta(seconds=noop.clock_offset(utcnow))
        assert abs((beaten.heartbeat_at - server_now).total_seconds()) < 5
        assert beaten.silent_s is not None and 0 <= beaten.silent_s < 5
    else:
        assert beaten.heartbeat_at == T0 + timedelta(seconds=5) and beaten.silent_s is None
        assert noop.clock_offset(utcnow) == 0.0
    assert [d.id for d in noop.live_daemons()] == [ME]
    request(noop, recover=True)
    (run_id,) = claim(noop)
    assert noop.interrupt_daemon_runs(ME, T0 + timedelta(seconds=9), "interrupted: gone; not re-run") == [run_id]
    run = noop.get_run(run_id)
    assert run.status == "interrupted" and run.detail == "interrupted: gone; to be recovered: started again once"
    assert not noop.beat(ME, T0 + timedelta(seconds=10)) and noop.live_daemons() == []
    assert noop.get_daemon(ME).stopped_at == T0 + timedelta(seconds=9)  # type: ignore[union-attr]
    (recovery,) = claim(noop, T0 + timedelta(seconds=10))
    assert noop.get_run(recovery).reason == "recovery"
    assert noop.prune_daemons(T0 + timedelta(seconds=9)) == 0
    assert noop.prune_daemons(T0 + timedelta(seconds=10)) == 1 and noop.get_daemon(ME) is None


def test_settling_interrupts_what_dead_daemons_left_running(backend: Any, noop: Store) -> None:
    for who in (ME, OTHER):
        noop.register_daemon(daemon(who))
        request(noop)
    (mine,) = claim(noop, who=ME, free=1)
    (theirs,) = claim(noop, who=OTHER, free=1)
    notifier = noop.listen("d2")
    judged: list[str] = []

    def judge(other: DaemonRecord) -> str | None:
        judged.append(other.id)
        return "is no longer running" if other.id != ME else None

    settled = noop.settle_orphans(T0, judge, daemon=OTHER)  # the caller is never judged
    assert settled.dead == [] and judged == [ME] and {d.id for d in settled.live} == {ME, OTHER}
    settled = noop.settle_orphans(T0, judge)
    assert [(d.id, d.why, d.runs) for d in settled.dead] == [(OTHER, "is no longer running", [theirs])]
    assert noop.get_run(theirs).detail == f"interrupted: daemon {OTHER} is no longer running; not re-run"
    assert noop.get_run(mine).status == "running" and noop.get_daemon(OTHER).stopped_at == T0  # type: ignore[union-attr]
    if notifier is not None:  # what waited for those runs may start now: daemons are woken
        assert select.select([notifier.fileno()], [], [], 5)[0] == [notifier.fileno()]
        notifier.close()
    with backend.hold_lock():  # nothing to settle: no write lock taken
        assert noop.settle_orphans(T0, judge).dead == []


def test_settling_judges_again_under_the_lock(noop: Store) -> None:
    noop.register_daemon(daemon(OTHER))
    request(noop)
    claim(noop, who=OTHER)
    answers = iter(["stopped heartbeating", None])  # it beat between the two looks
    assert noop.settle_orphans(T0, lambda other: next(answers)).dead == []
    assert noop.running_runs()[0].status == "running"


def test_settling_interrupts_runs_left_under_a_daemon_that_stopped(noop: Store) -> None:
    request(noop)
    (run_id,) = claim(noop, who="never:1:recorded")  # no daemon row: it is gone
    assert noop.settle_orphans(T0, lambda other: None, daemon="never:1:recorded").orphans == []
    settled = noop.settle_orphans(T0, lambda other: None)
    assert settled.orphans == [(run_id, "never:1:recorded")]
    assert "had stopped while the run was recorded running; not re-run" in (noop.get_run(run_id).detail or "")


# ----------------------------------------------------------------------
# The contract covers the interface


def test_every_operation_of_the_interface_is_exercised_here() -> None:
    source = inspect.getsource(inspect.getmodule(test_every_operation_of_the_interface_is_exercised_here))
    operations = {name for name in vars(Store) if not name.startswith("_")} - {"jitter"}
    missing = {name for name in operations if not re.search(rf"\.{name}\b", source)}
    assert not missing, f"operations no test here calls: {sorted(missing)}"


def test_a_target_that_names_no_store_is_refused_in_one_line(tmp_path: Path) -> None:
    for target, said in [
        ("postgresql://u@127.0.0.1:1/db", "cannot connect to postgresql://u@127.0.0.1:1/db"),
        ("postgres://u:secret@127.0.0.1:1/db", r"cannot connect to postgres://u:\*\*\*@127.0.0.1:1/db \("),
        ("mysql://u@h/db", "unknown database URL scheme 'mysql'"),
        ("sqlite://host/path", "write it as sqlite:///ABSOLUTE/PATH"),
    ]:
        with pytest.raises(StoreError, match=said):
            open_store(target)
    assert not list(tmp_path.iterdir())


def test_without_psycopg_a_postgresql_url_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # importing it fails, as when it is not installed
    for name in [name for name in sys.modules if name.startswith("bgproc.store.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(StoreError) as refused:
        open_store("postgresql://u@h/db")
    assert str(refused.value) == (
        "a PostgreSQL database (--db / BGPROC_DB) needs the store's `postgres` extra: pip install 'bgproc[postgres]'"
    )
